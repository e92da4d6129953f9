from expertalign.jobs import runtime, sentences

runtime.start_job(snakemake.log[0], threads=snakemake.threads)
sentences.negative_bank(
    snakemake.input.sentences,
    snakemake.output.bank,
    size=snakemake.params.size,
    seed=snakemake.params.seed,
    version=snakemake.params.version,
    config=snakemake.config,  # hashed into the bank's metadata
)
