from expertalign.jobs import analysis, runtime

runtime.start_job(snakemake.log[0])
analysis.baseline_figure(
    snakemake.input.table,
    snakemake.output.figure,
    taus=snakemake.params.taus,
    human_reference=snakemake.params.human_reference,
)
