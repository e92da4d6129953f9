from expertalign import steps
from expertalign.models import gpus_requested, require_gpu

steps.setup_logging(snakemake.log[0], snakemake.threads)
# Asked for a GPU but none is visible: stop now rather than run on the CPU in float32.
require_gpu(gpus_requested(snakemake.resources), snakemake.rule)
# Speed settings (batch_size) come from the config, not params, so tuning them reruns nothing.
steps.generate_sentences(
    snakemake.params.concept,
    snakemake.output.sentences,
    provided=snakemake.params.provided,
    settings={**snakemake.config["sentences"], **snakemake.params.settings},
)
