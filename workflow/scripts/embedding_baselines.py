from expertalign.jobs import analysis, runtime

runtime.start_job(
    snakemake.log[0],
    threads=snakemake.threads,
    gpus=snakemake.resources,
    rule=snakemake.rule,
)
analysis.embedding_baselines(
    snakemake.params.model,
    snakemake.wildcards.revision,
    snakemake.params.words,
    snakemake.output.pairs,
    weights_record=snakemake.input.model,
    config=snakemake.config,  # hashed into the file; accept_revision_change (not a param)
)
