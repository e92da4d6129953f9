rule pilot:
    input:
        sentences=lambda wildcards: pilot_sentence_files(),
        bank=lambda wildcards: pilot_bank(),
        model=prefetched_pilot,
    output:
        summary=report(
            f"{RESULTS}/tables/pilot_stability.csv",
            caption="../report/pilot.rst",
            category="Pilot",
        ),
        sizes=f"{RESULTS}/tables/pilot_set_sizes.csv",
        figure=report(
            f"{RESULTS}/figures/pilot_stability.png",
            caption="../report/pilot.rst",
            category="Pilot",
        ),
        sizes_figure=report(
            f"{RESULTS}/figures/pilot_set_sizes.png",
            caption="../report/pilot_set_sizes.rst",
            category="Pilot",
        ),
    log:
        f"{RESULTS}/logs/pilot.log",
    benchmark:
        f"{RESULTS}/benchmarks/pilot.tsv"
    conda:
        "../../envs/expertalign.yaml"
    threads: 2
    params:
        model=lambda wildcards: canonical(pilot_model_spec()),
        revision=lambda wildcards: pilot_model_spec().get("revisions", ["main"])[-1],
        concepts=lambda wildcards: pilot_concepts(),
        disjoint=pilot_disjoint(),
        pilot=pilot_settings(),
        settings=canonical({"max_length": config["experts"]["max_length"]}),
        negatives_mode=config["negatives"]["mode"],
    script:
        "../scripts/pilot.py"
