from expertalign.jobs import alignment, runtime

runtime.start_job(snakemake.log[0])
alignment.similarity(
    snakemake.input.experts,
    snakemake.output.pairs,
    snakemake.output.sizes,
    taus=snakemake.params.taus,
)
