from expertalign.jobs import analysis, runtime

runtime.start_job(snakemake.log[0])
settings = snakemake.params.settings
analysis.spp(
    snakemake.input.experts,
    snakemake.params.words,
    snakemake.params.spp_dir,
    final=snakemake.params.final,
    pairs_file=snakemake.input.spp_pairs[0] if snakemake.input.spp_pairs else None,
    n_per_level=settings["n_per_level"],
    seed=settings["seed"],
    split=settings["split"],
    tau=settings["tau"],
    interaction=settings["interaction"],
    pairs_out=snakemake.output.pairs,
    model_out=snakemake.output.model,
    figure_out=snakemake.output.figure,
)
