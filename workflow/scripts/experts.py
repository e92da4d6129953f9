from expertalign.jobs import experts, runtime

runtime.start_job(
    snakemake.log[0],
    threads=snakemake.threads,
    gpus=snakemake.resources,
    rule=snakemake.rule,
)
# max_tokens (a speed setting) comes from the config, not params, so tuning it reruns nothing.
experts.experts(
    snakemake.input.sentences,
    snakemake.input.bank,
    snakemake.output.experts,
    model=snakemake.params.model,
    revision=snakemake.wildcards.revision,
    concepts=snakemake.params.concepts,
    n_negatives=snakemake.params.n_negatives,
    settings={**snakemake.config["experts"], **snakemake.params.settings},
    weights_record=snakemake.input.model,
    # the config's hash goes into the shard, and its model entry may accept a moved revision
    # (accept_revision_change: read here, not a param, so setting it reruns nothing)
    config=snakemake.config,
    leave_out=snakemake.params.settings.get("too_few") == "leave_out",
    words=snakemake.params.words,
    vectors_output=snakemake.output.vectors,
)
