from expertalign.analysis import steps
from expertalign.steps import setup_logging

setup_logging(snakemake.log[0])
steps.baseline_figure(
    snakemake.input.table,
    snakemake.output.figure,
    tau=snakemake.params.tau,
    human_reference=snakemake.params.human_reference,
)
