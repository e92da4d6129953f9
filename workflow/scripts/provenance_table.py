from expertalign.jobs import analysis, runtime

runtime.start_job(snakemake.log[0])
analysis.provenance_table(
    snakemake.input.experts,
    snakemake.input.baselines,
    snakemake.output.table,
)
