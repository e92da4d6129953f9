from expertalign.jobs import pilot, runtime

runtime.start_job(
    snakemake.log[0],
    threads=snakemake.threads,
    gpus=snakemake.resources,
    rule=snakemake.rule,
)
settings = snakemake.params.pilot
pilot.pilot(
    snakemake.input.sentences,
    snakemake.input.bank[0] if snakemake.input.bank else None,
    spec=snakemake.params.model,
    revision=snakemake.params.revision,
    concepts=snakemake.params.concepts,
    n_positives=settings["n_positives"],
    n_negatives=settings["n_negatives"],
    taus=snakemake.config["experts"]["taus"],
    k=settings["folds"],
    seed=settings["seed"],
    disjoint=snakemake.params.disjoint,
    # max_tokens is a speed setting, read from the config so that tuning it reruns nothing
    settings={
        **snakemake.params.settings,
        "max_tokens": snakemake.config["experts"]["max_tokens"],
    },
    negatives_mode=snakemake.params.negatives_mode,
    summary_out=snakemake.output.summary,
    sizes_out=snakemake.output.sizes,
    figure_out=snakemake.output.figure,
    sizes_figure_out=snakemake.output.sizes_figure,
)
