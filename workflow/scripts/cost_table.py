from expertalign.jobs import analysis, runtime

runtime.start_job(snakemake.log[0])
analysis.cost_table(
    snakemake.input.benchmarks,
    snakemake.params.shard_sizes,
    snakemake.output.table,
    summary_out=snakemake.output.summary,
    predicted_hours=snakemake.params.predicted_hours,
)
