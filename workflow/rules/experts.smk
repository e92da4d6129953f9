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
        model=model_spec,
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
    params:
        model=model_spec,
        concepts=lambda wildcards: shard_concepts(wildcards.shard),
        n_negatives=config["negatives"]["n_negatives"],
        settings=config["experts"],
    script:
        "../scripts/experts.py"
