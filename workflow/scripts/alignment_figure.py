from expertalign import steps

steps.setup_logging(snakemake.log[0])
steps.alignment_figure(
    snakemake.input.table,
    snakemake.output.figure,
    human_reference=snakemake.params.human_reference,
    revisions=snakemake.params.revisions,
)
