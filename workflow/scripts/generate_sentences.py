from expertalign.jobs import runtime, sentences

# Asked for a GPU but none is visible: stop now rather than run on the CPU in float32.
runtime.start_job(
    snakemake.log[0], threads=snakemake.threads, gpus=snakemake.resources, rule=snakemake.rule
)
batch = snakemake.params.batch
sentences.make_sentences(
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
