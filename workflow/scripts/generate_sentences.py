from expertalign.models import gpus_requested, require_gpu
from expertalign.sentence_jobs import make_sentences
from expertalign.steps import setup_logging

setup_logging(snakemake.log[0], snakemake.threads)
# Asked for a GPU but none is visible: stop now rather than run on the CPU in float32.
require_gpu(gpus_requested(snakemake.resources), snakemake.rule)
batch = snakemake.params.batch
make_sentences(
    batch["concepts"],
    snakemake.output.batch,
    settings=snakemake.params.settings,
    fingerprints=batch["fingerprints"],
    fallback_fingerprints=batch["fallback_fingerprints"],
    resume_dir=batch["resume_dir"],
    provided=batch["provided"],
    fallback=batch["fallback"],
    data_dir=snakemake.params.data_dir,
)
