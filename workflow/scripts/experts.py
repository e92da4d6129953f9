from expertalign import steps

steps.setup_logging(snakemake.log[0], snakemake.threads)
steps.experts(
    snakemake.input.sentences,
    snakemake.input.bank,
    snakemake.output.experts,
    model=snakemake.params.model,
    revision=snakemake.wildcards.revision,
    concepts=snakemake.params.concepts,
    n_negatives=snakemake.params.n_negatives,
    settings=snakemake.params.settings,
)
