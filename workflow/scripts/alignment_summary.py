from expertalign import steps

steps.setup_logging(snakemake.log[0])
steps.alignment_summary(
    snakemake.input.tables, snakemake.output.parquet, snakemake.output.csv
)
