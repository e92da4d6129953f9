"""The jobs a campaign consists of, as the workflow declares them, and the states a job can be in.

    >>> from expertalign.status.jobs import expected_jobs
    >>> jobs = expected_jobs(Campaign(config))      # every job, done or not, in workflow order
    >>> job = jobs[0]
    >>> job.rule, job.outputs, job.log, job.benchmark
    >>> job.slurm_comment                           # how the SLURM plugin names its submission

The jobs are enumerated from :class:`expertalign.plan.Campaign` and :mod:`expertalign.paths`, as
``workflow/rules/*.smk`` declare their outputs, logs and benchmarks (``tests/test_status.py``
checks that every rule of the workflow is covered). What the plan cannot see: outputs that exist
but would rerun (changed params or code, stale sentence fingerprints) count as done.
"""

from __future__ import annotations

from dataclasses import dataclass

from expertalign import paths
from expertalign.plan import PILOT_POOLS, Campaign

__all__ = ["STATES", "Job", "JobStatus", "expected_jobs"]

# What each state means: the package doc (expertalign.status).
STATES = ("done", "running", "queued", "failed", "incomplete", "todo")


@dataclass(frozen=True)
class Job:
    """One job the campaign consists of, as the workflow declares it."""

    rule: str
    model: str  # the row's model: a model name, "sentences: SOURCE", or "" (the whole run)
    checkpoint: str
    wildcards: tuple[tuple[str, str], ...]  # in the order of the output pattern
    outputs: tuple[str, ...]  # the job is done when all exist
    log: str
    benchmark: str
    size: int = 1  # units of work (concepts) for the time estimate
    # the outputs as Snakemake records them (incomplete markers, locks), when not ``outputs``
    # (a sentence batch: its temporary folder)
    recorded: tuple[str, ...] = ()
    # older sentence batch names carry a digest: "gpu-002-b41df56d1e"
    suffixed: bool = False

    @property
    def marks(self) -> tuple[str, ...]:
        """The paths Snakemake's incomplete markers and locks name for this job."""
        return self.recorded or self.outputs

    @property
    def slurm_comment(self) -> str:
        """The comment the SLURM plugin gives this job's submission."""
        values = "_".join(v for _, v in self.wildcards).replace("/", "_")
        return f"rule_{self.rule}_wildcards_{values}" if values else f"rule_{self.rule}"

    def describe(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.wildcards)


@dataclass
class JobStatus:
    """One job in one of :data:`STATES`, with what showed it."""

    job: Job
    state: str
    seconds: float | None = None  # benchmark seconds (a finished job)
    error: str | None = None  # first error line (failed)
    error_log: str | None = None  # the log it was found in
    slurm: str | None = None  # "JOBID STATE" from squeue or sacct
    elapsed: float | None = None  # seconds since it started (running)


def _wildcards(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(values.items())


def expected_jobs(campaign: Campaign) -> list[Job]:
    """Every job of the campaign (done or not), in the workflow's order, with the outputs, log
    and benchmark paths that ``workflow/rules/*.smk`` give it (logs ``{results}/logs/RULE/``
    and benchmarks ``{results}/benchmarks/RULE/`` + the wildcard values joined by ``/``)."""
    R = campaign.results
    config = campaign.config
    jobs: list[Job] = []

    def add(rule, model="", checkpoint="", wildcards=(), outputs=(), **kw):
        tail = "/".join(v for _, v in wildcards)
        kw.setdefault("log", f"{R}/logs/{rule}/{tail}.log" if tail else f"{R}/logs/{rule}.log")
        kw.setdefault(
            "benchmark",
            f"{R}/benchmarks/{rule}/{tail}.tsv" if tail else f"{R}/benchmarks/{rule}.tsv",
        )
        jobs.append(Job(rule, model, checkpoint, wildcards, tuple(outputs), **kw))

    for source, revision in paths.config_models(config):
        slug = paths.source_slug(source)
        outputs = [paths.prefetch_marker(R, slug, revision)]
        add("prefetch", slug, revision, _wildcards(slug=slug, revision=revision), outputs)

    for name, spec in campaign.sentence_sets.items():
        label = "pilot pools" if name == PILOT_POOLS else f"sentences: {name}"
        for batch, members in campaign.sentence_blocks(name).items():
            rule = "generate_sentences" if batch.startswith("gpu-") else "collect_sentences"
            wildcards = _wildcards(sentence_set=name, batch=batch)
            outputs = [spec.outputs[c] for c in members]
            batch_dir = paths.sentence_batch_dir(R, name, batch)
            add(rule, label, "", wildcards, outputs, size=len(members), recorded=(batch_dir,),
                suffixed=True)  # fmt: skip
        for concept, output in spec.outputs.items():
            if name == PILOT_POOLS:
                add("pilot_sentences_from_batch", label, "", _wildcards(concept=concept), [output])
            else:
                wildcards = _wildcards(source=name, concept=concept)
                add("sentences_from_batch", label, "", wildcards, [output])
    version = config["negatives"]["bank_version"]
    for source in campaign.sources:
        outputs = [paths.bank_file(R, source, version)]
        add("negative_bank", f"sentences: {source}", "", _wildcards(source=source), outputs)
    add("sentence_diversity", outputs=[f"{R}/tables/sentence_diversity.csv"])

    for model in campaign.models:
        add("units_table", model, "", _wildcards(model=model), [paths.units_file(R, model)])
    for model, rev in campaign.model_revisions():
        rule = campaign.gpu_rule("experts", model)
        for source in campaign.sources:
            for shard in campaign.shard_ids(model):
                wildcards = _wildcards(source=source, model=model, revision=rev, shard=shard)
                outputs = [
                    paths.expert_shard(R, source, model, rev, shard),
                    paths.word_vectors_file(R, source, model, rev, shard),
                ]
                add(rule, model, rev, wildcards, outputs,
                    size=len(campaign.shard_concepts(shard, model)),
                    log=paths.expert_log(R, source, model, rev, shard),
                    benchmark=paths.expert_benchmark(R, source, model, rev, shard))  # fmt: skip
        outputs = [paths.baselines_file(R, model, rev)]
        add("embedding_baselines", model, rev, _wildcards(model=model, revision=rev), outputs)
        for source in campaign.sources:
            outputs = [paths.similarity_file(R, source, model, rev, t) for t in ("pairs", "sizes")]
            add("similarity", model, rev, _wildcards(source=source, model=model, revision=rev),
                outputs)  # fmt: skip
        for source in campaign.sources:
            for judgment in campaign.judgments:
                wildcards = _wildcards(source=source, judgment=judgment, model=model, revision=rev)
                outputs = [
                    paths.alignment_table(R, source, judgment, model, rev, suffix)
                    for suffix in ("", "-vs-baselines")
                ]
                add("alignment", model, rev, wildcards, outputs)
        if campaign.has_domains():
            outputs = [paths.domains_table(R, model, rev), f"{R}/figures/domains/{model}-{rev}.png"]
            add("domains", model, rev, _wildcards(model=model, revision=rev), outputs)

    # once per run
    if config["pilot"]["enabled"]:
        outputs = [f"{R}/tables/pilot_{t}.csv" for t in ("stability", "set_sizes")]
        outputs += [f"{R}/figures/pilot_{f}.png" for f in ("stability", "set_sizes")]
        add("pilot", paths.pilot_model_spec(config)["name"], outputs=outputs)
    tables = ("set_sizes", "checkpoint_stability", "expert_distribution",
              "experts_by_layer_submodule")  # fmt: skip
    figures = ("specialized", "broader", "specific")
    add(
        "development",
        outputs=[
            *(f"{R}/tables/{t}.csv" for t in tables),
            *(f"{R}/figures/expert_development_{f}.png" for f in figures),
        ],
    )
    if config["spp"]["enabled"]:
        outputs = [f"{R}/tables/spp_{t}.csv" for t in ("overlap", "mixed_model")]
        add("spp", outputs=[*outputs, f"{R}/figures/spp_overlap.png"])
    if config["causal"]["enabled"]:  # per source, model (final checkpoint) and part
        for model in campaign.models:
            rev = campaign.revisions(model)[-1]
            rule = campaign.gpu_rule("causal", model)
            for source in campaign.causal_sources():
                for part in campaign.causal_parts():
                    wildcards = _wildcards(source=source, model=model, revision=rev, part=part)
                    output = paths.causal_file(R, source, model, rev, part)
                    add(rule, model, rev, wildcards, [output])
        outputs = [f"{R}/tables/causal{t}.csv" for t in ("", "_overlap")]
        add("causal_summary", outputs=[*outputs, f"{R}/figures/causal.png"])
    add("cost_table", outputs=[f"{R}/tables/cost.csv", f"{R}/tables/campaign_summary.csv"])
    add("alignment_summary", outputs=[f"{R}/tables/alignment.{e}" for e in ("parquet", "csv")])
    outputs = [f"{R}/tables/experts_vs_baselines.{e}" for e in ("parquet", "csv")]
    add("comparison_summary", outputs=outputs)
    add("alignment_figure", outputs=[f"{R}/figures/alignment.png"])
    add("baseline_figure", outputs=[f"{R}/figures/baselines.png"])
    add("provenance_table", outputs=[f"{R}/tables/provenance.csv"])
    if campaign.has_domains():
        add("domains_summary", outputs=[f"{R}/tables/domains.{e}" for e in ("parquet", "csv")])
    return jobs
