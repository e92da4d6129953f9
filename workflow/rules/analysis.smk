rule embedding_baselines:
    input:
        vectors=baseline_word_vectors,
    output:
        pairs=paths.baselines_file(RESULTS, "{model}", "{revision}"),
    log:
        f"{RESULTS}/logs/embedding_baselines/{{model}}/{{revision}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/embedding_baselines/{{model}}/{{revision}}.tsv"
    conda:
        "../../envs/expertalign.yaml"
    script:
        "../scripts/embedding_baselines.py"


rule domains:
    input:
        experts=expert_shards,
        concepts=config["concepts"],
    output:
        table=paths.domains_table(RESULTS, "{model}", "{revision}"),
        figure=report(
            f"{RESULTS}/figures/domains/{{model}}-{{revision}}.png",
            caption="../report/domains_figure.rst",
            category="Domains",
            labels={"model": "{model}", "checkpoint": "{revision}"},
        ),
    log:
        f"{RESULTS}/logs/domains/{{model}}/{{revision}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/domains/{{model}}/{{revision}}.tsv"
    conda:
        "../../envs/expertalign.yaml"
    params:
        taus=TAUS,
        n_perm=config["analysis"]["n_permutations"],
        seed=config["analysis"]["seed"],
        null=config["analysis"]["domain_null"],
    script:
        "../scripts/domains.py"


rule domains_summary:
    input:
        tables=per_run(paths.domains_table(RESULTS, "{model}", "{revision}")),
    output:
        parquet=f"{RESULTS}/tables/domains.parquet",
        csv=report(
            f"{RESULTS}/tables/domains.csv",
            caption="../report/domains_table.rst",
            category="Domains",
        ),
    log:
        f"{RESULTS}/logs/domains_summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/domains_summary.tsv"
    conda:
        "../../envs/expertalign.yaml"
    script:
        "../scripts/concat_tables.py"


rule development:
    input:
        experts=all_expert_shards(),
        units=[paths.units_file(RESULTS, model) for model in MODELS],
    output:
        sizes=report(
            f"{RESULTS}/tables/set_sizes.csv",
            caption="../report/set_sizes.rst",
            category="Development",
        ),
        stability=report(
            f"{RESULTS}/tables/checkpoint_stability.csv",
            caption="../report/stability.rst",
            category="Development",
        ),
        distribution=report(
            f"{RESULTS}/tables/expert_distribution.csv",
            caption="../report/distribution.rst",
            category="Development",
        ),
        sizes_figure=report(
            f"{RESULTS}/figures/set_sizes.png",
            caption="../report/set_sizes.rst",
            category="Development",
        ),
        distribution_figure=report(
            f"{RESULTS}/figures/expert_distribution.png",
            caption="../report/distribution.rst",
            category="Development",
        ),
        stability_figure=report(
            f"{RESULTS}/figures/checkpoint_stability.png",
            caption="../report/stability.rst",
            category="Development",
        ),
        development_figure=report(
            f"{RESULTS}/figures/expert_development.png",
            caption="../report/expert_development.rst",
            category="Development",
        ),
        layer_submodule=report(
            f"{RESULTS}/tables/experts_by_layer_submodule.csv",
            caption="../report/layer_submodule.rst",
            category="Development",
        ),
        layer_submodule_figure=report(
            f"{RESULTS}/figures/experts_by_layer_submodule.png",
            caption="../report/layer_submodule.rst",
            category="Development",
        ),
        specialized_figure=report(
            f"{RESULTS}/figures/expert_development_specialized.png",
            caption="../report/expert_development_specialized.rst",
            category="Development",
        ),
        broader_figure=report(
            f"{RESULTS}/figures/expert_development_broader.png",
            caption="../report/expert_development_groups.rst",
            category="Development",
            labels={"concepts": "broader"},
        ),
        specific_figure=report(
            f"{RESULTS}/figures/expert_development_specific.png",
            caption="../report/expert_development_groups.rst",
            category="Development",
            labels={"concepts": "specific"},
        ),
    log:
        f"{RESULTS}/logs/development.log",
    benchmark:
        f"{RESULTS}/benchmarks/development.tsv"
    conda:
        "../../envs/expertalign.yaml"
    params:
        units=lambda wildcards, input: dict(zip(MODELS, input.units)),
        taus=TAUS,
        revisions={name: m.get("revisions", ["main"]) for name, m in MODELS.items()},
        n_boot=config["alignment"]["n_boot"],
        seed=config["analysis"]["seed"],
        concept_groups=concept_groups(),
    script:
        "../scripts/development.py"


rule spp:
    input:
        experts=spp_expert_shards(),
        spp_pairs=spp_pairs_file(),
        spp=spp_files(),
    output:
        pairs=report(
            f"{RESULTS}/tables/spp_overlap.csv",
            caption="../report/spp.rst",
            category="Semantic priming",
        ),
        model=report(
            f"{RESULTS}/tables/spp_mixed_model.csv",
            caption="../report/spp.rst",
            category="Semantic priming",
        ),
        figure=report(
            f"{RESULTS}/figures/spp_overlap.png",
            caption="../report/spp.rst",
            category="Semantic priming",
        ),
    log:
        f"{RESULTS}/logs/spp.log",
    benchmark:
        f"{RESULTS}/benchmarks/spp.tsv"
    conda:
        "../../envs/expertalign.yaml"
    params:
        words=lambda wildcards: concept_words(),
        spp_dir=lambda wildcards, input: str(Path(input.spp[0]).parent),
        final=spp_final_checkpoints(),
        settings=canonical(config["spp"]),
    script:
        "../scripts/spp.py"


rule cost_table:
    input:
        benchmarks=all_expert_benchmarks(),
    output:
        table=report(
            f"{RESULTS}/tables/cost.csv",
            caption="../report/cost.rst",
            category="Cost",
        ),
        summary=report(
            f"{RESULTS}/tables/campaign_summary.csv",
            caption="../report/campaign_summary.rst",
            category="Cost",
        ),
    log:
        f"{RESULTS}/logs/cost_table.log",
    benchmark:
        f"{RESULTS}/benchmarks/cost_table.tsv"
    conda:
        "../../envs/expertalign.yaml"
    params:
        shard_sizes={
            model: {
                shard: len(shard_concepts(shard, model)) for shard in shard_ids(model)
            }
            for model in MODELS
        },
        # the plan's prediction, from the paper's App. K costs (expertalign.forecast)
        predicted_hours=predicted_expert_hours(CAMPAIGN),
    script:
        "../scripts/cost_table.py"


rule baseline_figure:
    input:
        table=f"{RESULTS}/tables/alignment.parquet",
    output:
        figure=report(
            f"{RESULTS}/figures/baselines.png",
            caption="../report/baselines.rst",
            category="Alignment",
        ),
    log:
        f"{RESULTS}/logs/baseline_figure.log",
    benchmark:
        f"{RESULTS}/benchmarks/baseline_figure.tsv"
    conda:
        "../../envs/expertalign.yaml"
    params:
        taus=TAUS,
        human_reference=config["alignment"]["human_reference"],
    script:
        "../scripts/baseline_figure.py"


# Which weights every result came from (expertalign.provenance): the Hub commit and weights
# hash each expert shard and baseline file recorded, against the current prefetch records.
rule provenance_table:
    input:
        experts=[
            expert_shard(source, model, revision, shard)
            for source in SENTENCE_SOURCES
            for model, revision in model_revisions()
            for shard in shard_ids(model)
        ],
        baselines=[paths.baselines_file(RESULTS, m, r) for m, r in model_revisions()],
    output:
        table=report(
            f"{RESULTS}/tables/provenance.csv",
            caption="../report/provenance.rst",
            category="Provenance",
        ),
    log:
        f"{RESULTS}/logs/provenance_table.log",
    benchmark:
        f"{RESULTS}/benchmarks/provenance_table.tsv"
    conda:
        "../../envs/expertalign.yaml"
    script:
        "../scripts/provenance_table.py"


localrules:
    provenance_table,
