from expertalign.jobs import analysis, runtime

runtime.start_job(snakemake.log[0])
analysis.development(
    snakemake.input.experts,
    snakemake.params.units,
    taus=snakemake.params.taus,
    revisions=snakemake.params.revisions,
    n_boot=snakemake.params.n_boot,
    seed=snakemake.params.seed,
    sizes_out=snakemake.output.sizes,
    stability_out=snakemake.output.stability,
    distribution_out=snakemake.output.distribution,
    sizes_figure=snakemake.output.sizes_figure,
    distribution_figure=snakemake.output.distribution_figure,
    concept_groups=snakemake.params.concept_groups,
    stability_figure=snakemake.output.stability_figure,
    development_figure=snakemake.output.development_figure,
    layer_submodule_out=snakemake.output.layer_submodule,
    layer_submodule_figure=snakemake.output.layer_submodule_figure,
    specialized_figure=snakemake.output.specialized_figure,
    group_figures={
        "broader": snakemake.output.broader_figure,
        "specific": snakemake.output.specific_figure,
    },
)
