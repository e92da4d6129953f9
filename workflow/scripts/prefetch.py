from expertalign.jobs import runtime, sentences

runtime.start_job(snakemake.log[0], threads=snakemake.threads, offline=False)

from expertalign.fetch import naming_config_keys  # noqa: E402 - after start_job (see runtime)
from expertalign.models import ModelNotFoundError  # noqa: E402

source = snakemake.params.source
try:
    sentences.prefetch(source, snakemake.wildcards.revision, snakemake.output.marker)
except ModelNotFoundError as err:
    # which config entry to correct; the model's own message says what is wrong with it
    raise naming_config_keys(err, snakemake.config, source) from None
