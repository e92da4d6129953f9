from expertalign.jobs import experts, runtime

runtime.start_job(snakemake.log[0])
experts.units_table(snakemake.params.model, snakemake.params.revision, snakemake.output.units)
