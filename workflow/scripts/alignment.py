from expertalign.jobs import alignment, runtime

runtime.start_job(snakemake.log[0])
alignment.alignment(
    [snakemake.input.pairs, snakemake.input.baselines],
    snakemake.output.table,
    snakemake.output.comparison,
    judgment=snakemake.params.judgment,
    judgment_name=snakemake.wildcards.judgment,
    data_dir=snakemake.params.data_dir,
    words=snakemake.params.concepts,
    n_boot=snakemake.params.n_boot,
    seed=snakemake.params.seed,
    model=snakemake.wildcards.model,
    revision=snakemake.wildcards.revision,
    source=snakemake.wildcards.source,
    sentence_files=list(snakemake.input.sentences),
)
