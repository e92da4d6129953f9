from expertalign.jobs import analysis, runtime

runtime.start_job(snakemake.log[0], threads=snakemake.threads, rule=snakemake.rule)
analysis.embedding_baselines(
    snakemake.input.vectors,
    snakemake.output.pairs,
    config=snakemake.config,  # hashed into the file's metadata (not a param)
)
