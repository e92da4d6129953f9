rule prefetch:
    output:
        marker=f"{RESULTS}/prefetch/{{slug}}/{{revision}}.json",
    log:
        f"{RESULTS}/logs/prefetch/{{slug}}/{{revision}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/prefetch/{{slug}}/{{revision}}.tsv"
    conda:
        "../../envs/expertalign.yaml"
    params:
        source=lambda wildcards: SOURCES[wildcards.slug],
    script:
        "../scripts/prefetch.py"


rule generate_sentences:
    input:
        generator=prefetched_generator,
        provided=provided_input,
    output:
        sentences=sentence_file("{concept}"),
    log:
        f"{RESULTS}/logs/generate_sentences/{{concept}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/generate_sentences/{{concept}}.tsv"
    conda:
        "../../envs/expertalign.yaml"
    threads: 1
    params:
        concept=lambda wildcards: concept_row(wildcards.concept),
        provided=lambda wildcards: provided_sentences(wildcards.concept),
        settings=generation_settings,
    script:
        "../scripts/generate_sentences.py"


rule negative_bank:
    input:
        sentences=bank_sources,
    output:
        bank=bank_file(),
    log:
        f"{RESULTS}/logs/negative_bank.log",
    benchmark:
        f"{RESULTS}/benchmarks/negative_bank.tsv"
    conda:
        "../../envs/expertalign.yaml"
    params:
        size=config["negatives"]["bank_size"],
        seed=config["negatives"]["seed"],
        version=config["negatives"]["bank_version"],
    script:
        "../scripts/negative_bank.py"
