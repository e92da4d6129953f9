rule prefetch:
    output:
        marker=paths.prefetch_marker(RESULTS, "{slug}", "{revision}"),
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
        generator=batch_generator,
        provided=batch_provided,
        fallback=batch_fallback,
    output:
        batch=temp(directory(sentence_batch_dir("{sentence_set}", "{batch}"))),
    log:
        f"{RESULTS}/logs/generate_sentences/{{sentence_set}}/{{batch}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/generate_sentences/{{sentence_set}}/{{batch}}.tsv"
    wildcard_constraints:
        batch=r"gpu-.*",
    conda:
        "../../envs/expertalign.yaml"
    threads: 1
    params:
        batch=batch_params,
        settings=batch_settings,
        data_dir=config["data_dir"],
    script:
        "../scripts/generate_sentences.py"


# The same job for batches that need no GPU: a corpus, provided files, or a generator behind an
# OpenAI-compatible server.
use rule generate_sentences as collect_sentences with:
    log:
        f"{RESULTS}/logs/collect_sentences/{{sentence_set}}/{{batch}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/collect_sentences/{{sentence_set}}/{{batch}}.tsv"
    wildcard_constraints:
        batch=r"cpu-.*",


rule sentences_from_batch:
    input:
        batch=batch_of_sentence_file,
    output:
        sentences=sentence_file("{source}", "{concept}"),
    log:
        f"{RESULTS}/logs/sentences_from_batch/{{source}}/{{concept}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/sentences_from_batch/{{source}}/{{concept}}.tsv"
    wildcard_constraints:
        concept=planned_sentence_files(),
    localrule: True
    conda:
        "../../envs/expertalign.yaml"
    script:
        "../scripts/sentences_from_batch.py"


rule pilot_sentences_from_batch:
    input:
        batch=batch_of_sentence_file,
    output:
        sentences=pilot_sentence_file("{concept}"),
    log:
        f"{RESULTS}/logs/pilot_sentences_from_batch/{{concept}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/pilot_sentences_from_batch/{{concept}}.tsv"
    wildcard_constraints:
        concept=planned_pilot_pools(),
    localrule: True
    conda:
        "../../envs/expertalign.yaml"
    script:
        "../scripts/sentences_from_batch.py"


rule sentence_diversity:
    input:
        sentences=all_sentence_files(),
    output:
        table=report(
            f"{RESULTS}/tables/sentence_diversity.csv",
            caption="../report/sentence_diversity.rst",
            category="Sentences",
        ),
    log:
        f"{RESULTS}/logs/sentence_diversity.log",
    benchmark:
        f"{RESULTS}/benchmarks/sentence_diversity.tsv"
    localrule: True
    conda:
        "../../envs/expertalign.yaml"
    params:
        sources=list(SENTENCE_SOURCES),
    script:
        "../scripts/sentence_diversity.py"


rule negative_bank:
    input:
        sentences=bank_sources,
    output:
        bank=bank_file(),
    log:
        f"{RESULTS}/logs/negative_bank/{{source}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/negative_bank/{{source}}.tsv"
    conda:
        "../../envs/expertalign.yaml"
    params:
        size=source_bank_size,
        seed=config["negatives"]["seed"],
        version=config["negatives"]["bank_version"],
    script:
        "../scripts/negative_bank.py"
