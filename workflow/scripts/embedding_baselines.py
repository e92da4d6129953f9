from expertalign.analysis import steps
from expertalign.models import gpus_requested, require_gpu
from expertalign.steps import setup_logging

setup_logging(snakemake.log[0], snakemake.threads)
# Asked for a GPU but none is visible: stop now rather than run on the CPU in float32.
require_gpu(gpus_requested(snakemake.resources), snakemake.rule)
steps.embedding_baselines(
    snakemake.params.model,
    snakemake.wildcards.revision,
    snakemake.params.words,
    snakemake.output.pairs,
)
