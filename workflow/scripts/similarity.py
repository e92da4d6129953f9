from expertalign import steps

steps.setup_logging(snakemake.log[0])
steps.similarity(
    snakemake.input.experts,
    snakemake.output.pairs,
    snakemake.output.sizes,
    taus=snakemake.params.taus,
)
