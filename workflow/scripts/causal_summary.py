from expertalign.jobs import causal, runtime

runtime.start_job(snakemake.log[0])
causal.causal_summary(
    snakemake.input.tables,
    snakemake.output.table,
    snakemake.output.overlap,
    snakemake.output.figure,
    judged_k=snakemake.params.judged_k,
    n_boot=snakemake.params.n_boot,
)
