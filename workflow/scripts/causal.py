from expertalign.jobs import causal, runtime

runtime.start_job(
    snakemake.log[0],
    threads=snakemake.threads,
    gpus=snakemake.resources,
    rule=snakemake.rule,
)
# max_tokens (a speed setting) and data_dir come from the config, not params: changing them
# reruns nothing (the MEN files themselves are inputs)
causal.causal(
    snakemake.input.sentences,
    snakemake.input.bank,
    snakemake.params.words,
    snakemake.input.prompts,
    snakemake.output.effects,
    source=snakemake.wildcards.source,
    model=snakemake.params.model,
    revision=snakemake.wildcards.revision,
    concepts=snakemake.params.concepts,
    part=snakemake.params.part,
    n_negatives=snakemake.params.n_negatives,
    expert_settings={**snakemake.config["experts"], **snakemake.params.expert_settings},
    settings=snakemake.params.settings,
    judgment=snakemake.params.judgment,
    data_dir=snakemake.config["data_dir"],
    weights_record=snakemake.input.model,
    config=snakemake.config,
    leave_out=snakemake.params.expert_settings.get("too_few") == "leave_out",
)
