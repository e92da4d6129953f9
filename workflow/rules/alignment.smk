rule similarity:
    input:
        experts=expert_shards,
    output:
        pairs=paths.similarity_file(
            RESULTS, "{source}", "{model}", "{revision}", "pairs"
        ),
        sizes=paths.similarity_file(
            RESULTS, "{source}", "{model}", "{revision}", "sizes"
        ),
    log:
        f"{RESULTS}/logs/similarity/{{source}}/{{model}}/{{revision}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/similarity/{{source}}/{{model}}/{{revision}}.tsv"
    conda:
        "../../envs/expertalign.yaml"
    params:
        taus=TAUS,
    script:
        "../scripts/similarity.py"


rule alignment:
    input:
        pairs=paths.similarity_file(
            RESULTS, "{source}", "{model}", "{revision}", "pairs"
        ),
        baselines=paths.baselines_file(RESULTS, "{model}", "{revision}"),
        judgments=judgment_files,
        # which concepts took a fallback source's sentences (their column `source`)
        sentences=lambda wildcards: [
            sentence_file(wildcards.source, concept)
            for shard in shard_ids(wildcards.model)
            for concept in shard_concepts(shard, wildcards.model)
        ],
    output:
        table=paths.alignment_table(
            RESULTS, "{source}", "{judgment}", "{model}", "{revision}"
        ),
        comparison=paths.alignment_table(
            RESULTS, "{source}", "{judgment}", "{model}", "{revision}", "-vs-baselines"
        ),
    log:
        f"{RESULTS}/logs/alignment/{{source}}/{{judgment}}/{{model}}/{{revision}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/alignment/{{source}}/{{judgment}}/{{model}}/{{revision}}.tsv"
    conda:
        "../../envs/expertalign.yaml"
    params:
        judgment=lambda wildcards: canonical(JUDGMENTS[wildcards.judgment]),
        data_dir=config["data_dir"],
        concepts=lambda wildcards: dict(zip(CONCEPTS["concept"], CONCEPTS["word"])),
        n_boot=config["alignment"]["n_boot"],
        seed=config["alignment"]["seed"],
    script:
        "../scripts/alignment.py"


rule alignment_summary:
    input:
        tables=alignment_tables(),
    output:
        parquet=f"{RESULTS}/tables/alignment.parquet",
        csv=report(
            f"{RESULTS}/tables/alignment.csv",
            caption="../report/alignment_table.rst",
            category="Alignment",
        ),
    log:
        f"{RESULTS}/logs/alignment_summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/alignment_summary.tsv"
    conda:
        "../../envs/expertalign.yaml"
    script:
        "../scripts/concat_tables.py"


rule comparison_summary:
    input:
        tables=alignment_tables("-vs-baselines"),
    output:
        parquet=f"{RESULTS}/tables/experts_vs_baselines.parquet",
        csv=report(
            f"{RESULTS}/tables/experts_vs_baselines.csv",
            caption="../report/comparison_table.rst",
            category="Alignment",
        ),
    log:
        f"{RESULTS}/logs/comparison_summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/comparison_summary.tsv"
    conda:
        "../../envs/expertalign.yaml"
    script:
        "../scripts/concat_tables.py"


rule alignment_figure:
    input:
        table=f"{RESULTS}/tables/alignment.parquet",
    output:
        figure=report(
            f"{RESULTS}/figures/alignment.png",
            caption="../report/alignment_figure.rst",
            category="Alignment",
        ),
    log:
        f"{RESULTS}/logs/alignment_figure.log",
    benchmark:
        f"{RESULTS}/benchmarks/alignment_figure.tsv"
    conda:
        "../../envs/expertalign.yaml"
    params:
        models=[m["name"] for m in config["models"]],
        revisions=[r for _, r in model_revisions()],
        human_reference=config["alignment"]["human_reference"],
    script:
        "../scripts/alignment_figure.py"
