from expertalign.jobs import alignment, runtime

runtime.start_job(snakemake.log[0])
alignment.concat_tables(snakemake.input.tables, snakemake.output.parquet, snakemake.output.csv)
