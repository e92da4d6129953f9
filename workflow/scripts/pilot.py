from expertalign.analysis import steps
from expertalign.models import gpus_requested, require_gpu
from expertalign.steps import setup_logging

setup_logging(snakemake.log[0], snakemake.threads)
# Asked for a GPU but none is visible: stop now rather than run on the CPU in float32.
require_gpu(gpus_requested(snakemake.resources), snakemake.rule)
settings = snakemake.params.pilot
steps.pilot(
    snakemake.input.sentences,
    snakemake.input.bank[0] if snakemake.input.bank else None,
    spec=snakemake.params.model,
    revision=snakemake.params.revision,
    concepts=snakemake.params.concepts,
    n_positives=settings["n_positives"],
    n_negatives=settings["n_negatives"],
    taus=snakemake.config["experts"]["taus"],
    k=settings["folds"],
    seed=settings["seed"],
    disjoint=snakemake.params.disjoint,
    settings=snakemake.params.settings,
    negatives_mode=snakemake.params.negatives_mode,
    summary_out=snakemake.output.summary,
    sizes_out=snakemake.output.sizes,
    figure_out=snakemake.output.figure,
)
