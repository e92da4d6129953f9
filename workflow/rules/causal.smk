# The causal check of the experts (docs/ANALYSES.md, "Causal check of the experts"): one job per
# sentence source x model x final checkpoint, on the GPU on a cluster, and one summary.
rule causal:
    input:
        sentences=causal_sentences,
        bank=bank_file(),
        model=prefetched_model,
        concepts=config["concepts"],
        men=causal_judgment_files(),
        prompts=config["causal"]["prompts"],
    output:
        effects=paths.causal_file(RESULTS, "{source}", "{model}", "{revision}"),
    log:
        f"{RESULTS}/logs/causal/{{source}}/{{model}}/{{revision}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/causal/{{source}}/{{model}}/{{revision}}.tsv"
    conda:
        "../../envs/expertalign.yaml"
    threads: 2
    params:
        model=model_load_spec,
        concepts=lambda wildcards: causal_concepts(),
        n_negatives=source_n_negatives,
        expert_settings=source_expert_settings,
        settings=lambda wildcards: CAMPAIGN.causal_settings(),
        judgment=lambda wildcards: causal_judgment(),
    script:
        "../scripts/causal.py"


rule causal_summary:
    input:
        tables=causal_tables(),
    output:
        table=report(
            f"{RESULTS}/tables/causal.csv",
            caption="../report/causal.rst",
            category="Causal check",
        ),
        overlap=report(
            f"{RESULTS}/tables/causal_overlap.csv",
            caption="../report/causal.rst",
            category="Causal check",
        ),
        figure=report(
            f"{RESULTS}/figures/causal.png",
            caption="../report/causal.rst",
            category="Causal check",
        ),
    log:
        f"{RESULTS}/logs/causal_summary.log",
    benchmark:
        f"{RESULTS}/benchmarks/causal_summary.tsv"
    conda:
        "../../envs/expertalign.yaml"
    params:
        judged_k=config["causal"]["cross_k"],
        n_boot=config["causal"]["n_boot"],
    script:
        "../scripts/causal_summary.py"


localrules:
    causal_summary,
