rule units_table:
    input:
        model=prefetched_units_model,
    output:
        units=paths.units_file(RESULTS, "{model}"),
    log:
        f"{RESULTS}/logs/units_table/{{model}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/units_table/{{model}}.tsv"
    conda:
        "../../envs/expertalign.yaml"
    params:
        model=model_load_spec,
        revision=lambda wildcards: MODELS[wildcards.model].get("revisions", ["main"])[0],
    script:
        "../scripts/units_table.py"


rule experts:
    input:
        sentences=shard_sentences,
        bank=bank_file(),
        model=prefetched_model,
    output:
        experts=expert_shard("{source}", "{model}", "{revision}", "{shard}"),
        vectors=paths.word_vectors_file(
            RESULTS, "{source}", "{model}", "{revision}", "{shard}"
        ),
    log:
        paths.expert_log(RESULTS, "{source}", "{model}", "{revision}", "{shard}"),
    benchmark:
        paths.expert_benchmark(RESULTS, "{source}", "{model}", "{revision}", "{shard}")
    wildcard_constraints:
        model=expert_models_pattern(large=False),
    conda:
        "../../envs/expertalign.yaml"
    threads: 2
    resources:
        mem_mb=expert_resource("mem_mb"),
        gpu_mem_mb=expert_resource("gpu_mem_mb"),
        runtime=expert_resource("runtime"),
    params:
        model=model_load_spec,
        concepts=lambda wildcards: shard_concepts(wildcards.shard, wildcards.model),
        words=shard_words,
        n_negatives=source_n_negatives,
        settings=source_expert_settings,
    script:
        "../scripts/experts.py"


# The same job for models that need more GPU memory than experts.standard_gpu_mem_mb (Pythia-12b
# on A100 40 GB cards): a rule of its own, so that a profile can send it to larger cards.
use rule experts as experts_large with:
    wildcard_constraints:
        model=expert_models_pattern(large=True),
