from expertalign import steps

steps.setup_logging(snakemake.log[0], snakemake.threads)
steps.generate_sentences(
    snakemake.params.concept,
    snakemake.output.sentences,
    provided=snakemake.params.provided,
    settings=snakemake.params.settings,
)
