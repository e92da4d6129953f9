rule units_table:
    input:
        model=lambda wildcards: prefetched(
            MODELS[wildcards.model]["source"],
            MODELS[wildcards.model].get("revisions", ["main"])[0],
        ),
    output:
        units=f"{RESULTS}/units/{{model}}.parquet",
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
        experts=f"{RESULTS}/experts/{{model}}/{{revision}}/shard-{{shard}}.arrow",
    log:
        f"{RESULTS}/logs/experts/{{model}}/{{revision}}/shard-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/experts/{{model}}/{{revision}}/shard-{{shard}}.tsv"
    conda:
        "../../envs/expertalign.yaml"
    threads: 2
    resources:
        mem_mb=expert_resource("mem_mb"),
        gpu_mem_mb=expert_resource("gpu_mem_mb"),
        runtime=expert_resource("runtime"),
    params:
        model=model_load_spec,
        concepts=lambda wildcards: shard_concepts(wildcards.shard),
        n_negatives=config["negatives"]["n_negatives"],
        settings=expert_settings(),
    script:
        "../scripts/experts.py"
