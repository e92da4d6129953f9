from expertalign.jobs import alignment, runtime

runtime.start_job(snakemake.log[0])
alignment.alignment_figure(
    snakemake.input.table,
    snakemake.output.figure,
    human_reference=snakemake.params.human_reference,
)
