"""What a campaign will cost, predicted from its plan before anything is queued.

    >>> from expertalign.config import load_config
    >>> from expertalign.forecast import forecast, format_forecast
    >>> fc = forecast(Campaign(load_config("config/paper.yaml")))           # documented model
    >>> fc = forecast(campaign, measured="results")    # per-concept costs measured in a run
    >>> print(format_forecast(fc))                      # the table and its totals
    >>> fc.table                                        # one row per rule x model x checkpoint

Each row is one rule at one (model, checkpoint) (or the whole run, for rules that are not per
model): jobs, SLURM submissions (local rules submit nothing), whether they need a GPU and which
tier (``experts_large`` goes to the large cards), GPU-hours predicted, the sum of the jobs' time
limits, host memory per job and the disk the outputs take.

Where the predictions come from (column ``basis``):

* ``measured``: the expert jobs' own benchmark files of a run of this model (``measured=`` a
  results folder, e.g. the calibration run of one shard per model on the site; see
  :func:`calibration_targets`): seconds per concept, the mean over its measured shards.
* ``paper``: the paper's App. K cost per concept on an A100 (8 s for Pythia-70m, 27 s for 1b,
  136 s for 12b), interpolated log-log in the parameter count
  (:func:`expertalign.resources.published_seconds_per_concept`), scaled by
  ``sentences.n_positives + negatives.bank_size`` against the paper's 400 + 1,000 sentences, plus
  loading the weights at :data:`LOAD_BYTES_PER_SECOND` per job. For the causal check: its
  forward passes counted by :func:`expertalign.resources.causal_work`, every sentence at that
  per-sentence rate and every sampling step at :data:`DECODE_BYTES_PER_SECOND`
  (:func:`expertalign.resources.causal_job_seconds`).
* ``decode``: sentence generation, by a memory-bandwidth model of sampling (each decoding step
  reads the generator's weights once: :data:`DECODE_BYTES_PER_SECOND`), for the lists one
  concept needs (``ceil(n_positives / 10)`` lists of ``max_new_tokens`` in batches of
  ``batch_size``, times :data:`GENERATION_ROUNDS` for the rounds that refill rejected lines).
* ``load``: jobs whose cost is loading a model once (baselines).
* ``cpu``: reductions, which take no GPU time.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from expertalign import paths
from expertalign.plan import PILOT_POOLS, Campaign
from expertalign.resources import DECODE_BYTES_PER_SECOND
from expertalign.resources import PAPER_SENTENCES_PER_CONCEPT as _PAPER_SENTENCES

__all__ = [
    "Forecast",
    "forecast",
    "format_forecast",
    "measured_seconds_per_concept",
    "calibration_targets",
    "predicted_expert_hours",
    "LOAD_BYTES_PER_SECOND",
    "DECODE_BYTES_PER_SECOND",
    "GENERATION_ROUNDS",
    "GOAL_GPU_HOURS",
    "forward_floor_hours",
]

# Reading weights from a node's cache into GPU memory (an assumption, not measured on a cluster).
LOAD_BYTES_PER_SECOND = 1.0e9
# Sampling rounds per concept: the first, plus rounds that refill rejected lines (assumed 1.5).
GENERATION_ROUNDS = 1.5
# The causal check's rules (their GPU-hours are reported apart from the goal's campaign).
CAUSAL_RULES = ("causal", "causal_large")
# The project's performance goal for config/paper.yaml, generation included (README, Performance).
GOAL_GPU_HOURS = 40.0
# The forward-pass floor: tokens per sentence (the default run's sentences, SmolLM2's tokenizer:
# Brown 26.1 on average, the embedded generator's 12.5), and the share of an A100's 312 TFLOP/s
# bf16 peak a batched forward pass reaches (an assumption).
TOKENS_PER_SENTENCE = 24
A100_BF16_FLOPS = 312e12
FORWARD_UTILISATION = 0.4
_LOCAL_RULES = {
    "prefetch",
    "sentences_from_batch",
    "pilot_sentences_from_batch",
    "sentence_diversity",
    "alignment_summary",
    "comparison_summary",
    "alignment_figure",
    "baseline_figure",
    "domains_summary",
    "cost_table",
    "provenance_table",
    "causal_summary",
}
_COLUMNS = [
    "rule",
    "model",
    "checkpoint",
    "jobs",
    "submissions",
    "gpu",
    "gpu_hours",
    "limit_hours",
    "mem_mb",
    "disk_gb",
    "basis",
]


@dataclass(frozen=True)
class Forecast:
    """The plan's predicted cost: the table (see the module doc) and what sums it up."""

    table: pd.DataFrame
    generator_loads: int
    hub_cache_gb: float
    measured_models: tuple[str, ...]
    #: model -> GPU-hours of its expert jobs' forward passes alone (:func:`forward_floor_hours`)
    floor_hours: dict[str, float] = field(default_factory=dict)

    @property
    def totals(self) -> dict[str, float]:
        t = self.table
        return {
            "jobs": int(t["jobs"].sum()),
            "submissions": int(t["submissions"].sum()),
            "gpu_hours": float(t["gpu_hours"].sum()),
            "limit_hours": float(t.loc[t["gpu"] != "", "limit_hours"].sum()),
            "disk_gb": float(t["disk_gb"].sum()),
        }


def _shape(campaign: Campaign, model: str):
    return _source_shape(campaign.models[model]["source"])


@functools.cache
def _source_shape(source: str):
    """A model's shape (None where neither the cache nor the reference configs know it)."""
    from expertalign.resources import model_shape

    try:
        return model_shape(source)
    except ValueError:
        return None


def measured_seconds_per_concept(
    campaign: Campaign, results: str | Path
) -> dict[tuple[str, str], float]:
    """(model, sentence source) -> seconds per concept of its expert jobs, from a run's benchmark
    files (the mean of every measured shard's seconds over its concepts); shards are sized by
    this campaign's layout (a calibration run uses the same config). Sentences of another
    source can cost more (Brown's are longer than generated ones), so each source is measured
    on its own; a pair without a measurement takes, in order, the model's mean over its measured
    sources, then a measured model of the same architecture (a random-init twin takes its
    trained model's cost). Pairs with nothing to go on are left out."""
    root = Path(results) / "benchmarks" / "experts"
    samples: dict[tuple[str, str], list[float]] = {}
    for path in sorted(root.glob("*/*/*/shard-*.tsv")):
        run = paths.parse_run(path)
        if run.model not in campaign.models or run.source not in campaign.sources:
            continue
        n = len(campaign.shard_concepts(run.shard, run.model))
        seconds = pd.read_csv(path, sep="\t")["s"].mean()
        if n:
            samples.setdefault((run.model, run.source), []).append(float(seconds) / n)
    measured = {key: sum(v) / len(v) for key, v in samples.items()}

    def of_model(model: str) -> list[float]:
        return [v for (m, _), v in measured.items() if m == model]

    filled = dict(measured)
    for model, spec in campaign.models.items():
        own = of_model(model)
        twins = [m for m in campaign.models if campaign.models[m]["source"] == spec["source"]]
        for source in campaign.sources:
            if (model, source) in filled:
                continue
            twin_costs = [measured[(m, source)] for m in twins if (m, source) in measured]
            if twin_costs:
                filled[(model, source)] = twin_costs[0]
            elif own:
                filled[(model, source)] = sum(own) / len(own)
    return filled


def calibration_targets(campaign: Campaign) -> list[str]:
    """The expert shards a calibration run makes: the first shard of each distinct model source
    (trained weights, at its last checkpoint), for each sentence source."""
    seen, targets = set(), []
    for name, spec in campaign.models.items():
        if spec["source"] in seen or spec.get("random_init"):
            continue
        seen.add(spec["source"])
        revision = campaign.revisions(name)[-1]
        targets += [
            paths.expert_shard(campaign.results, source, name, revision, "0000")
            for source in campaign.sources
        ]
    return targets


def _paper_seconds_per_concept(campaign: Campaign, model: str) -> float | None:
    from expertalign.resources import published_seconds_per_concept

    shape = _shape(campaign, model)
    if shape is None:
        return None
    sentences = campaign.n_positives() + campaign.bank_rows()
    return published_seconds_per_concept(shape.n_parameters) * sentences / _PAPER_SENTENCES


def _load_seconds(campaign: Campaign, model: str) -> float:
    shape = _shape(campaign, model)
    return 0.0 if shape is None else shape.n_parameters * 2 / LOAD_BYTES_PER_SECOND


def _generation_seconds_per_concept(settings: dict) -> float:
    shape = _source_shape(settings["generator"])
    # a 7B generator (Mistral-7B's size) when its config is not known here
    n_parameters = shape.n_parameters if shape else 7.2e9
    lists = math.ceil(settings["n_positives"] / 10)
    batches = math.ceil(lists / settings["batch_size"])
    steps = batches * settings["max_new_tokens"] * GENERATION_ROUNDS
    return steps * n_parameters * 2 / DECODE_BYTES_PER_SECOND


def _causal_costs(campaign: Campaign, model: str) -> tuple[float, list[int], dict[str, int]]:
    """GPU seconds of one source's causal jobs on ``model`` at the paper's rate
    (:func:`expertalign.resources.causal_job_seconds`, loading included; 0 if its shape is
    unknown), each part's time limit, and the largest part's resources."""
    from expertalign.resources import causal_job_seconds

    shape = _shape(campaign, model)
    parts = [len(concepts) for concepts in campaign.causal_parts().values()]
    limits = [campaign.causal_job_resources(model, n)["runtime"] for n in parts]
    sizes = campaign.causal_job_resources(model, max(parts))
    if shape is None:
        return 0.0, limits, sizes
    seconds = sum(
        causal_job_seconds(shape, campaign.causal_work(shape.n_units, n_part))
        + _load_seconds(campaign, model)
        for n_part in parts
    )
    return seconds, limits, sizes


def forecast(campaign: Campaign, measured: str | Path | None = None) -> Forecast:
    """The cost table of ``campaign`` (see the module doc); ``measured``: a results folder whose
    expert benchmark files replace the paper's per-concept costs for the models they cover."""
    rows: list[dict] = []
    per_concept = measured_seconds_per_concept(campaign, measured) if measured else {}
    sources = list(campaign.sources)
    n_concepts = len(campaign.concept_ids)
    profile_limits = {
        "embedding_baselines": 30,
        "generate_sentences": 240,
        "pilot": 240,
    }

    def add(rule, model="", checkpoint="", *, jobs, gpu="", gpu_hours=0.0, limit_min=60,
            mem_mb=4000, disk_bytes=0.0, basis="cpu"):  # fmt: skip
        if not jobs:
            return
        rows.append(
            {
                "rule": rule,
                "model": model,
                "checkpoint": checkpoint,
                "jobs": jobs,
                "submissions": 0 if rule in _LOCAL_RULES else jobs,
                "gpu": gpu,
                "gpu_hours": gpu_hours,
                "limit_hours": jobs * limit_min / 60,
                "mem_mb": mem_mb,
                "disk_gb": disk_bytes / 1e9,
                "basis": basis,
            }
        )

    # sentences: one job per planned batch, each concept moved out to its own file
    generator_loads = 0
    for name, spec in campaign.sentence_sets.items():
        planned = campaign.planned_batches(name)
        gpu_batches = {b: m for b, m in planned.items() if b.startswith("gpu-")}
        generator_loads += len(gpu_batches)
        made = sum(len(m) for m in gpu_batches.values())
        seconds = made * _generation_seconds_per_concept(spec.settings) if gpu_batches else 0.0
        label = "pilot pools" if name == PILOT_POOLS else f"sentences: {name}"
        add("generate_sentences", label, jobs=len(gpu_batches), gpu="standard",
            gpu_hours=seconds / 3600, limit_min=profile_limits["generate_sentences"],
            mem_mb=64000, basis="decode")  # fmt: skip
        add("collect_sentences", label, jobs=len(planned) - len(gpu_batches))
        move = "pilot_sentences_from_batch" if name == PILOT_POOLS else "sentences_from_batch"
        add(move, label, jobs=sum(len(m) for m in planned.values()), mem_mb=0)
    for source in sources:
        add("negative_bank", f"sentences: {source}", jobs=1, mem_mb=16000)
    add("sentence_diversity", jobs=1, mem_mb=0)

    # per model and checkpoint
    for model, revision in campaign.model_revisions():
        large = campaign.needs_large_gpu(model)
        shape = _shape(campaign, model)
        shards = campaign.shard_ids(model)
        load = _load_seconds(campaign, model)
        measured_here = [per_concept.get((model, source)) for source in sources]
        basis = "measured" if all(v is not None for v in measured_here) else "paper"
        spc = _paper_seconds_per_concept(campaign, model)
        if basis == "measured":  # loading is inside the measured job times
            seconds = n_concepts * sum(measured_here)
        else:
            seconds = len(sources) * (n_concepts * (spc or 0.0) + len(shards) * load)
        limit = sum(
            campaign.expert_job_resources(model, len(campaign.shard_concepts(s, model)))["runtime"]
            for s in shards
        )
        sizes = campaign.expert_job_resources(model, campaign.shard_size_of(model))
        ap_bytes = (shape.n_units if shape else 0) * n_concepts * 4 * len(sources)
        add(campaign.gpu_rule("experts", model), model, revision,
            jobs=len(sources) * len(shards), gpu="large" if large else "standard",
            gpu_hours=seconds / 3600, limit_min=limit / len(shards) if shards else 0,
            mem_mb=sizes["mem_mb"], disk_bytes=ap_bytes,
            basis=basis if basis == "measured" or spc is not None else "unknown")  # fmt: skip
        # a CPU reduction of the word vectors the expert jobs write
        add("embedding_baselines", model, revision, jobs=1,
            limit_min=profile_limits["embedding_baselines"], mem_mb=8000,
            disk_bytes=n_concepts**2 * 24)  # fmt: skip
        add("similarity", model, revision, jobs=len(sources), mem_mb=8000)
        add("alignment", model, revision, jobs=len(sources) * len(campaign.judgments),
            mem_mb=16000)  # fmt: skip
        if campaign.has_domains():
            add("domains", model, revision, jobs=1, mem_mb=8000)
    for model in campaign.models:
        add("units_table", model, jobs=1, mem_mb=8000)

    # once per run
    config = campaign.config
    add("prefetch", jobs=len(paths.config_models(config)), mem_mb=0)
    if config["pilot"]["enabled"]:
        pilot = paths.pilot_model_spec(config)
        add("pilot", pilot["name"], jobs=1, gpu="standard", gpu_hours=0.0,
            limit_min=profile_limits["pilot"], mem_mb=64000, basis="unknown")  # fmt: skip
    add("development", jobs=1, mem_mb=16000)
    if config["spp"]["enabled"]:
        add("spp", jobs=1, mem_mb=8000)
    if config["causal"]["enabled"]:  # GPU jobs per source, model (final checkpoint) and part
        checked = campaign.causal_sources()
        for model in campaign.models:
            seconds, limits, sizes = _causal_costs(campaign, model)
            large = campaign.needs_large_gpu(model)
            add(campaign.gpu_rule("causal", model), model, campaign.revisions(model)[-1],
                jobs=len(checked) * len(limits), gpu="large" if large else "standard",
                gpu_hours=len(checked) * seconds / 3600, limit_min=sum(limits) / len(limits),
                mem_mb=sizes["mem_mb"], basis="paper" if seconds else "unknown")  # fmt: skip
        add("causal_summary", jobs=1, mem_mb=0)
    for rule in ("cost_table", "alignment_summary", "comparison_summary", "alignment_figure",
                 "baseline_figure", "provenance_table"):  # fmt: skip
        add(rule, jobs=1, mem_mb=0)
    if campaign.has_domains():
        add("domains_summary", jobs=1, mem_mb=0)

    table = pd.DataFrame(rows, columns=_COLUMNS)
    return Forecast(
        table=table,
        generator_loads=generator_loads,
        hub_cache_gb=_hub_cache_bytes(campaign) / 1e9,
        measured_models=tuple(sorted({model for model, _ in per_concept})),
        floor_hours=forward_floor_hours(campaign),
    )


def predicted_expert_hours(campaign: Campaign) -> dict[str, float]:
    """Model -> GPU-hours of all its expert jobs (every source and checkpoint) by the paper's
    App. K costs (the ``paper`` basis), whatever exists already: what the campaign summary
    compares the GPU-hours used with."""
    hours = {}
    for model in campaign.models:
        per_concept = _paper_seconds_per_concept(campaign, model)
        if per_concept is None:
            continue
        shards = len(campaign.shard_ids(model))
        seconds = len(campaign.concept_ids) * per_concept + shards * _load_seconds(campaign, model)
        hours[model] = round(
            seconds * len(campaign.sources) * len(campaign.revisions(model)) / 3600, 6
        )
    return hours


def forward_floor_hours(campaign: Campaign) -> dict[str, float]:
    """Model -> GPU-hours of only its expert jobs' forward passes (2 x parameters FLOPs per
    token, :data:`TOKENS_PER_SENTENCE` tokens per sentence: every concept's positives and each
    shard's bank rows, at :data:`FORWARD_UTILISATION` of an A100's bf16 peak), every source and
    checkpoint: what no implementation of the method can beat on that card."""
    hours = {}
    n_positives = campaign.n_positives()
    for model in campaign.models:
        shape = _shape(campaign, model)
        if shape is None:
            continue
        sentences = (
            len(campaign.concept_ids) * n_positives
            + len(campaign.shard_ids(model)) * campaign.bank_rows()
        )
        flops = 2 * shape.n_parameters * sentences * TOKENS_PER_SENTENCE
        runs = len(campaign.sources) * len(campaign.revisions(model))
        hours[model] = runs * flops / (A100_BF16_FLOPS * FORWARD_UTILISATION) / 3600
    return hours


def _hub_cache_bytes(campaign: Campaign) -> float:
    """Weights of every (source, revision) a config loads, at 2 bytes per parameter (the
    checkpoints' half-precision files); the embedded model is shipped, not fetched."""
    total = 0.0
    for source, _revision in paths.config_models(campaign.config):
        shape = _source_shape(source)
        if source != "embedded" and shape is not None:
            total += shape.n_parameters * 2
    return total


def format_forecast(fc: Forecast) -> str:
    """The table (GPU rules per model and checkpoint, other rules summed) and its totals."""
    t = fc.table.copy()
    shown = t[(t["gpu"] != "") | (t["model"] == "")].copy()
    cpu = t[(t["gpu"] == "") & (t["model"] != "")]
    if len(cpu):
        grouped = cpu.groupby("rule", sort=False).agg(
            jobs=("jobs", "sum"),
            submissions=("submissions", "sum"),
            limit_hours=("limit_hours", "sum"),
            mem_mb=("mem_mb", "max"),
            disk_gb=("disk_gb", "sum"),
        )
        grouped = grouped.reset_index().assign(
            model="(all)", checkpoint="", gpu="", gpu_hours=0.0, basis="cpu"
        )
        shown = pd.concat([shown, grouped[shown.columns]], ignore_index=True)
    shown["gpu_hours"] = shown["gpu_hours"].map(lambda v: f"{v:.2f}")
    shown["limit_hours"] = shown["limit_hours"].map(lambda v: f"{v:.1f}")
    shown["disk_gb"] = shown["disk_gb"].map(lambda v: f"{v:.3f}")
    totals = fc.totals
    by_model = (
        t[t["rule"].str.startswith("experts")].groupby("model", sort=False)["gpu_hours"].sum()
    )
    causal_hours = float(t.loc[t["rule"].isin(CAUSAL_RULES), "gpu_hours"].sum())
    campaign_hours = totals["gpu_hours"] - causal_hours
    lines = [
        shown.to_string(index=False),
        "",
        f"jobs {totals['jobs']:,}, SLURM submissions {totals['submissions']:,}",
        f"GPU-hours predicted {totals['gpu_hours']:,.1f} (expert jobs by model: "
        + ", ".join(f"{m} {h:,.1f}" for m, h in by_model.items())
        + (f"; the causal check {causal_hours:,.1f}" if causal_hours else "")
        + f"); GPU jobs' time limits add up to {totals['limit_hours']:,.1f} h",
        f"generator loads {fc.generator_loads:,}; disk written {totals['disk_gb']:,.1f} GB "
        f"(AP files, baselines); Hugging Face cache {fc.hub_cache_gb:,.1f} GB",
        f"performance goal: under {GOAL_GPU_HOURS:.0f} GPU-hours with generation, the causal "
        f"check (an addition to the paper) aside; this plan predicts {campaign_hours:,.1f} "
        f"({campaign_hours / GOAL_GPU_HOURS:.1f}x the goal); "
        f"the expert jobs' forward-pass floor is {sum(fc.floor_hours.values()):,.1f} GPU-hours "
        f"({TOKENS_PER_SENTENCE} tokens per sentence at {FORWARD_UTILISATION:.0%} of an A100's "
        "bf16 peak)",
        "per-concept costs: "
        + (
            f"measured for {', '.join(fc.measured_models)}, the paper's App. K for the rest"
            if fc.measured_models
            else "the paper's App. K (A100), scaled to this config's sentences per concept"
        ),
    ]
    return "\n".join(lines)
