from expertalign.jobs import analysis, runtime

runtime.start_job(snakemake.log[0])
analysis.domains(
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
