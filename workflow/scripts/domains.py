from expertalign.analysis import steps
from expertalign.steps import setup_logging

setup_logging(snakemake.log[0])
steps.domains(
    snakemake.input.experts,
    snakemake.input.concepts,
    snakemake.output.table,
    snakemake.output.figure,
    taus=snakemake.params.taus,
    n_perm=snakemake.params.n_perm,
    seed=snakemake.params.seed,
    model=snakemake.wildcards.model,
    revision=snakemake.wildcards.revision,
    null=snakemake.params.null,
)
