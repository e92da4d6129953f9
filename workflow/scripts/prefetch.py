from expertalign import steps

steps.setup_logging(snakemake.log[0], offline=False)
steps.prefetch(
    snakemake.params.source, snakemake.wildcards.revision, snakemake.output.marker
)
