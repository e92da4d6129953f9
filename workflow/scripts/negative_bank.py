from expertalign import steps

steps.setup_logging(snakemake.log[0])
steps.negative_bank(
    snakemake.input.sentences,
    snakemake.output.bank,
    size=snakemake.params.size,
    seed=snakemake.params.seed,
    version=snakemake.params.version,
)
