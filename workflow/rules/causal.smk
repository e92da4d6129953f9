# The causal check of the experts (docs/ANALYSES.md, "Causal check of the experts"): jobs per
# sentence source x model x final checkpoint, one per part of causal.concepts_per_job concepts,
# on the GPU on a cluster, and one summary.
rule causal:
    input:
        sentences=causal_sentences,
        bank=bank_file(),
        model=prefetched_model,
        men=causal_judgment_files(),
        prompts=config["causal"]["prompts"],
    output:
        effects=paths.causal_file(
            RESULTS, "{source}", "{model}", "{revision}", "{part}"
        ),
    log:
        f"{RESULTS}/logs/causal/{{source}}/{{model}}/{{revision}}/{{part}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/causal/{{source}}/{{model}}/{{revision}}/{{part}}.tsv"
    wildcard_constraints:
        model=expert_models_pattern(large=False),
    conda:
        "../../envs/expertalign.yaml"
    threads: 2
    resources:
        mem_mb=causal_resource("mem_mb"),
        gpu_mem_mb=causal_resource("gpu_mem_mb"),
        runtime=causal_resource("runtime"),
    params:
        model=model_load_spec,
        concepts=lambda wildcards: causal_concepts(),
        part=lambda wildcards: causal_part(wildcards.part),
        words=lambda wildcards: CAMPAIGN.causal_words(),
        n_negatives=source_n_negatives,
        expert_settings=source_expert_settings,
        settings=lambda wildcards: CAMPAIGN.causal_settings(),
        judgment=lambda wildcards: causal_judgment(),
    script:
        "../scripts/causal.py"


# The same job for the models whose expert jobs need the large cards (experts_large): a causal
# job holds the same weights and bank, so it goes to the same cards.
use rule causal as causal_large with:
    wildcard_constraints:
        model=expert_models_pattern(large=True),


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
