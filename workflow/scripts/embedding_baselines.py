from expertalign.analysis import steps
from expertalign.steps import setup_logging

setup_logging(snakemake.log[0], snakemake.threads)
steps.embedding_baselines(
    snakemake.params.model,
    snakemake.wildcards.revision,
    snakemake.params.words,
    snakemake.output.pairs,
)
