from expertalign import steps

steps.setup_logging(snakemake.log[0])
steps.units_table(snakemake.params.model, snakemake.params.revision, snakemake.output.units)
