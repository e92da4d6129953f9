from expertalign.analysis import steps
from expertalign.steps import setup_logging

setup_logging(snakemake.log[0], snakemake.threads)
settings = snakemake.params.pilot
steps.pilot(
    snakemake.input.sentences,
    snakemake.input.bank,
    spec=snakemake.params.model,
    revision=snakemake.params.revision,
    concepts=snakemake.params.concepts,
    n_positives=settings["n_positives"],
    n_negatives=settings["n_negatives"],
    taus=snakemake.config["experts"]["taus"],
    k=settings["folds"],
    seed=settings["seed"],
    settings=snakemake.params.settings,
    summary_out=snakemake.output.summary,
    sizes_out=snakemake.output.sizes,
    figure_out=snakemake.output.figure,
)
