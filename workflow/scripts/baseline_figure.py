from expertalign.jobs import analysis, runtime

runtime.start_job(snakemake.log[0])
analysis.baseline_figure(
    snakemake.input.table,
    snakemake.output.figure,
    tau=snakemake.params.tau,
    human_reference=snakemake.params.human_reference,
)
