from expertalign import steps
from expertalign.models import gpus_requested, require_gpu

steps.setup_logging(snakemake.log[0], snakemake.threads)
# Asked for a GPU but none is visible: stop now rather than run on the CPU in float32.
require_gpu(gpus_requested(snakemake.resources), snakemake.rule)
# max_tokens (a speed setting) comes from the config, not params, so tuning it reruns nothing.
steps.experts(
    snakemake.input.sentences,
    snakemake.input.bank,
    snakemake.output.experts,
    model=snakemake.params.model,
    revision=snakemake.wildcards.revision,
    concepts=snakemake.params.concepts,
    n_negatives=snakemake.params.n_negatives,
    settings={**snakemake.config["experts"], **snakemake.params.settings},
)
