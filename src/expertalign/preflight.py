"""Pre-flight of a SLURM site: would sbatch accept every kind of job of a campaign?

Before thousands of jobs are queued, each distinct resource request of the plan (one per rule
and distinct resources, at attempt 1 and at the retry's attempt 2) is turned into the sbatch
options that snakemake-executor-plugin-slurm would submit, and given to ``sbatch --test-only``,
which answers without queueing anything: ``sbatch: Job N to start at ...`` when the site can run
it, an error such as ``Requested node configuration is not available`` or ``Invalid partition
name specified`` when it cannot (a GPU type, partition, constraint, memory or CPU count the site
lacks)::

    $ expertalign preflight --configfile config/paper.yaml [--profile profiles/slurm]
    ...
    FAILED experts attempt 2 [pythia-1b (100 concepts), pythia-1b-random (100 concepts)]: gpu,
      gpu a100_80gb:1, 12048 MB, gpu_mem 65256 MB, 284 min, cpus 8  ->  allocation failure:
      Requested node configuration is not available
           sbatch --test-only -p gpu -t 284 --mem 12048 --cpus-per-task=8 --gpus=a100_80gb:1 ...
           site: partition 'gpu' has no GPU of type 'a100_80gb' (its GPUs: a100)
    OK     units_table attempt 2: cpu, 16000 MB, 60 min, cpus 1  ->  sbatch: Job 43 to start at ...
    ...

(one line per request; wrapped here). From Python::

    from expertalign.preflight import Request, preflight
    [result] = preflight([Request("experts", {"mem_mb": 27700, "runtime": 88}, attempt=2)])
    result.ok, result.message, result.hint, result.command

How a request becomes sbatch options is Snakemake's and the plugin's own code, not a copy of it:
the profile is read by Snakemake's profile parser (YTE rendering included), its
``default-resources``, the rule's own resources and its ``set-resources`` are merged in
Snakemake's order (later wins) and evaluated by Snakemake's resource evaluator with the
request's ``attempt`` and threads (``set-threads``), and the options are built by the plugin's
``get_submit_command`` and ``set_gres_string`` (``--partition``, ``-t``, ``--mem``,
``--cpus-per-task``, ``--gpus=<model>:<n>`` or ``--gres``, ``-C``, ``--qos``, ``-A``, and the
profile's ``slurm-qos``/``slurm-reservation``). What the plugin decides at run time is not
reproduced: a partition chosen by ``slurm-partition-config``, an account guessed from ``sacct``
(without ``slurm_account`` no ``-A`` is sent and sbatch uses the default account), nodes
excluded after failures.

``sbatch --test-only`` checks that a node of the partition has what the job asks for (GPU type,
memory, CPUs, features); how far it checks accounts, QoS and their limits depends on the site's
accounting (without accounting, any account and QoS pass). A refused request also gets a
``hint`` from ``sinfo`` naming what the site lacks (sbatch's own message rarely does), and a
time limit beyond the partition's MaxTime is reported even where sbatch accepts it.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any

__all__ = [
    "DEFAULT_PROFILE",
    "SLURM_RULES",
    "Request",
    "PreflightResult",
    "read_profile",
    "job_resources",
    "sbatch_options",
    "resource_options",
    "preflight",
    "distinct_requests",
    "format_results",
    "main_preflight",
]

DEFAULT_PROFILE = "profiles/slurm/config.yaml"
# The workflow's rules that run as SLURM jobs (every other rule is a localrule). `experts` and
# `experts_large` are sized per model by the campaign; `collect_sentences` gets the profile's
# default-resources (it is not under set-resources).
SLURM_RULES = (
    "generate_sentences",
    "collect_sentences",
    "negative_bank",
    "units_table",
    "experts",
    "experts_large",
    "embedding_baselines",
    "pilot",
    "similarity",
    "alignment",
    "domains",
    "development",
    "spp",
    "causal",
    "causal_large",
)
EXPERT_RULES = ("experts", "experts_large")
# Rules whose jobs size their own resources from the campaign (scaled with the attempt).
SIZED_RULES = (*EXPERT_RULES, "causal", "causal_large")
# Threads a rule declares itself (used where the profile's set-threads does not name it).
RULE_THREADS = {"experts": 2, "experts_large": 2, "pilot": 2, "causal": 2, "causal_large": 2}
# The resources of an expert or causal job that its rule scales with the attempt
# (workflow/rules/common.smk, expert_resource and causal_resource: the campaign's size times
# `attempt`).
EXPERT_SCALED = ("mem_mb", "gpu_mem_mb", "runtime")


@dataclass(frozen=True)
class Request:
    """One kind of job: ``rule`` with the rule's own ``resources`` at ``attempt`` (the values
    its ``resources:`` directive gives at that attempt, before the profile's are merged in),
    ``threads`` where the profile's set-threads does not name the rule, and ``label``: what it
    stands for (models, shard sizes)."""

    rule: str
    resources: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 1
    threads: int | None = None
    label: str = ""


@dataclass
class PreflightResult:
    """What ``sbatch --test-only`` said of one request."""

    request: Request
    resources: dict[str, Any]
    options: list[str]
    ok: bool
    message: str
    hint: str = ""

    @property
    def command(self) -> str:
        """The sbatch call to try by hand: the request's options without the plugin's job
        name, log file and comment placeholders."""
        return shlex.join(
            ["sbatch", "--test-only", *resource_options(self.options), "--wrap", "true"]
        )


# Options of the plugin's call that name the job rather than what it asks for (with a value).
PLACEHOLDER_OPTIONS = ("--job-name", "--output", "--comment", "-D")


def resource_options(options: Sequence[str]) -> list[str]:
    """``options`` without ``--parsable``, ``--export=ALL``, ``--wrap`` and the job name, log
    file, comment and working directory the plugin adds to every call: what the job asks for."""
    kept: list[str] = []
    skip = False
    for option in options:
        if skip:
            skip = False
            continue
        if option in PLACEHOLDER_OPTIONS or option == "--wrap":
            skip = True
            continue
        if option in ("--parsable", "--export=ALL") or option.startswith("--wrap="):
            continue
        kept.append(option)
    return kept


def _as_request(item: Request | Sequence[Any]) -> Request:
    if isinstance(item, Request):
        return item
    return Request(*item)


def _profile_file(profile: str | Path) -> Path:
    path = Path(profile)
    if path.is_dir():
        path = path / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"SLURM profile not found: {profile}")
    return path


@dataclass(frozen=True)
class _Profile:
    settings: dict[str, Any]
    default_resources: Any  # snakemake.resources.Resources
    set_resources: dict[str, Any]
    set_threads: dict[str, Any]


@cache
def _read_profile(path: Path, mtime: float) -> _Profile:
    from snakemake.cli import parse_set_resources, parse_set_threads
    from snakemake.profiles import ProfileConfigFileParser
    from snakemake.resources import Resources

    with path.open() as stream:
        parsed = dict(ProfileConfigFileParser().parse(stream))
    defaults = parsed.get("default-resources")
    # as `--default-resources`: on top of Snakemake's own defaults; without it, the bare set
    default_resources = (
        Resources.parse(defaults, defaults="full", allow_expressions=True)
        if defaults
        else Resources.default("bare")
    )
    return _Profile(
        settings=parsed,
        default_resources=default_resources,
        set_resources=parse_set_resources(parsed.get("set-resources")),
        set_threads=parse_set_threads(parsed.get("set-threads")),
    )


def read_profile(profile: str | Path = DEFAULT_PROFILE) -> _Profile:
    """The profile as Snakemake reads it (a directory means its ``config.yaml``)."""
    path = _profile_file(profile).resolve()
    return _read_profile(path, path.stat().st_mtime)


def _evaluate(resource: Any, rule: str, attempt: int, threads: int | None) -> Any:
    """``resource`` evaluated as Snakemake evaluates a job's resources (its expression or
    function gets the arguments it names of these)."""
    from snakemake.iocontainers import InputFiles, Wildcards

    kwargs: dict[str, Any] = {
        "wildcards": Wildcards(),
        "input": InputFiles(),
        "attempt": attempt,
        "rulename": rule,
        "async_run": asyncio.run,
    }
    if threads is not None:
        kwargs["threads"] = threads
    return resource.evaluate(**kwargs)


def job_resources(
    rule: str,
    resources: Mapping[str, Any] | None = None,
    attempt: int = 1,
    *,
    threads: int | None = None,
    profile: str | Path = DEFAULT_PROFILE,
) -> tuple[dict[str, Any], int]:
    """The resources and threads a job of ``rule`` gets at ``attempt``: the profile's
    default-resources, updated by the rule's own ``resources``, updated by the profile's
    set-resources for the rule (Snakemake's order), each evaluated as Snakemake evaluates them
    (expressions of ``attempt`` and ``threads``). Threads: set-threads, else ``threads``, else 1."""
    from snakemake.resources import Resources

    prof = read_profile(profile)
    merged = prof.default_resources.copy()
    if resources:
        merged.update(Resources.from_mapping(dict(resources)))
    merged.update(prof.set_resources.get(rule, {}))
    cores = prof.set_threads.get(rule)
    if cores is not None:
        n_threads = _evaluate(cores, rule, attempt, None).value
    else:
        n_threads = threads if threads is not None else 1
    if not isinstance(n_threads, int):
        raise ValueError(f"rule {rule}: threads must be an integer, got {n_threads!r}")
    values = {
        name: value
        for name, value in merged.expand_items(
            constraints={},
            evaluate=lambda res: _evaluate(res, rule, attempt, n_threads),
            skip={"_cores", "_nodes"},
        )
        if value is not None
    }
    return values, n_threads


class _JobResources(dict):
    """A job's resources as the plugin reads them: ``.get(name)`` and ``.name``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as err:
            raise AttributeError(name) from err


def sbatch_options(
    rule: str,
    resources: Mapping[str, Any] | None = None,
    attempt: int = 1,
    *,
    threads: int | None = None,
    profile: str | Path = DEFAULT_PROFILE,
) -> tuple[list[str], dict[str, Any]]:
    """The options (after ``sbatch``) that the SLURM executor plugin would submit a job of
    ``rule`` with at ``attempt``, built by the plugin's own functions, and the evaluated
    resources. The plugin's job name, log file and comment are fixed placeholders here
    (``--output /dev/null``)."""
    try:
        from snakemake_executor_plugin_slurm.submit_string import get_submit_command
        from snakemake_executor_plugin_slurm.utils import set_gres_string
        from snakemake_executor_plugin_slurm.validation import validate_slurm_extra
    except ImportError as err:  # pragma: no cover - the [slurm] extra is missing
        raise ImportError(
            'the pre-flight needs snakemake-executor-plugin-slurm: pip install -e ".[slurm]"'
        ) from err

    values, n_threads = job_resources(rule, resources, attempt, threads=threads, profile=profile)
    job = SimpleNamespace(name=rule, threads=n_threads, resources=_JobResources(values))
    validate_slurm_extra(job)
    settings = read_profile(profile).settings
    account = values.get("slurm_account")
    partition = values.get("slurm_partition")
    params = {
        "run_uuid": "expertalign-preflight",
        "slurm_logfile": "/dev/null",
        "comment_str": f"rule_{rule}",
        "account": f" -A {shlex.quote(str(account))}" if account else "",
        "partition": f" -p {shlex.quote(str(partition))}" if partition else "",
        "workdir": None,
    }
    executor_settings = SimpleNamespace(
        requeue=_flag(settings.get("slurm-requeue")),
        no_requeue=_flag(settings.get("slurm-no-requeue")),
        qos=settings.get("slurm-qos"),
        reservation=settings.get("slurm-reservation"),
    )
    call = get_submit_command(job, params, settings=executor_settings)
    call += set_gres_string(job)
    argv = shlex.split(call)
    assert argv[0] == "sbatch", argv
    return argv[1:], values


def _flag(value: Any) -> bool:
    return str(value).lower() in ("true", "1", "yes") if value is not None else False


# --------------------------------------------------------------------------- site facts


@dataclass
class _Partition:
    name: str
    gpu_types: set[str] = field(default_factory=set)
    gres: set[str] = field(default_factory=set)
    max_mem_mb: int = 0
    max_cpus: int = 0
    features: set[str] = field(default_factory=set)
    max_minutes: int | None = None  # the partition's MaxTime; None: unlimited or unknown


def _site_partitions(sinfo: str = "sinfo") -> dict[str, _Partition] | None:
    """Per partition: GPU types, memory and CPUs of its largest node, node features; None when
    sinfo does not answer."""
    try:
        out = subprocess.run(
            [sinfo, "-h", "-N", "-o", "%P|%G|%m|%c|%f|%l"],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    partitions: dict[str, _Partition] = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 6:
            continue
        name, gres, mem, cpus, features, limit = parts
        part = partitions.setdefault(name.rstrip("*"), _Partition(name.rstrip("*")))
        for item in gres.split(","):
            item = item.split("(")[0]
            if not item or item == "null":
                continue
            fields = item.split(":")
            part.gres.add(item)
            if fields[0] == "gpu" and len(fields) == 3:
                part.gpu_types.add(fields[1])
        part.max_mem_mb = max(part.max_mem_mb, _int(mem))
        part.max_cpus = max(part.max_cpus, _int(cpus))
        part.features |= {f for f in features.split(",") if f and f != "(null)"}
        part.max_minutes = slurm_minutes(limit)
    return partitions


def slurm_minutes(text: str) -> int | None:
    """A SLURM time limit as sinfo prints it (``infinite``, ``2-00:00:00``, ``12:00:00``,
    ``30:00`` = minutes:seconds, ``45``) in whole minutes (seconds round up); None when
    unlimited or not a time."""
    text = text.strip()
    if not text or text.lower() in ("infinite", "unlimited", "n/a", "none"):
        return None
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        if not day_text.isdigit():
            return None
        days = int(day_text)
    fields = text.split(":")
    if not all(f.isdigit() for f in fields) or not 1 <= len(fields) <= 3:
        return None
    numbers = [int(f) for f in fields]
    if len(numbers) == 3:
        hours, minutes, seconds = numbers
    elif len(numbers) == 2 and days:  # days-hours:minutes
        (hours, minutes), seconds = numbers, 0
    elif len(numbers) == 2:  # minutes:seconds
        hours, (minutes, seconds) = 0, numbers
    else:
        hours, minutes, seconds = (numbers[0], 0, 0) if days else (0, numbers[0], 0)
    return days * 1440 + hours * 60 + minutes + (1 if seconds else 0)


def _int(text: str) -> int:
    digits = "".join(ch for ch in text if ch.isdigit())
    return int(digits) if digits else 0


def _requested_gpu_type(values: Mapping[str, Any]) -> str | None:
    if values.get("gpu_model"):
        return str(values["gpu_model"])
    gres = str(values.get("gres") or "")
    fields = gres.split(":")
    if fields[0] == "gpu" and len(fields) >= 2 and not fields[1].isdigit():
        return fields[1]
    return None


def _hint(values: Mapping[str, Any], partitions: dict[str, _Partition] | None) -> str:
    """What of the request the site lacks, by sinfo ("" when nothing is found)."""
    if not partitions:
        return ""
    name = values.get("slurm_partition")
    if name is None:
        return ""
    name = str(name)
    part = partitions.get(name)
    if part is None:
        return f"no partition {name!r} (sinfo lists: {', '.join(sorted(partitions))})"
    problems = []
    gpu_type = _requested_gpu_type(values)
    if gpu_type and gpu_type not in part.gpu_types:
        have = ", ".join(sorted(part.gpu_types)) or "none"
        problems.append(f"partition {name!r} has no GPU of type {gpu_type!r} (its GPUs: {have})")
    elif (values.get("gpu") or "gpu" in str(values.get("gres") or "")) and not part.gpu_types:
        if not any(g.startswith("gpu") for g in part.gres):
            problems.append(f"partition {name!r} has no GPUs")
    mem = values.get("mem_mb")
    if isinstance(mem, int) and part.max_mem_mb and mem > part.max_mem_mb:
        problems.append(
            f"--mem {mem} MB is more than the largest node of partition {name!r} has "
            f"({part.max_mem_mb} MB)"
        )
    cpus = values.get("cpus_per_task")
    if isinstance(cpus, int) and part.max_cpus and cpus > part.max_cpus:
        problems.append(
            f"--cpus-per-task={cpus} is more than the largest node of partition {name!r} has "
            f"({part.max_cpus})"
        )
    runtime = values.get("runtime")
    if isinstance(runtime, int) and part.max_minutes is not None and runtime > part.max_minutes:
        problems.append(
            f"-t {runtime} min is more than partition {name!r} allows "
            f"({part.max_minutes} min): sbatch may accept it, but it would never start "
            "(PartitionTimeLimit)"
        )
    constraint = values.get("constraint")
    if constraint:
        wanted = {
            f.strip("[]() ") for f in str(constraint).replace("&", "|").replace(",", "|").split("|")
        }
        wanted = {f.split("*")[0] for f in wanted if f}
        unknown = sorted(f for f in wanted if f not in part.features)
        if unknown:
            have = ", ".join(sorted(part.features)) or "none"
            problems.append(
                f"no node of partition {name!r} has feature(s) {', '.join(unknown)} "
                f"(its features: {have})"
            )
    return "; ".join(problems)


# --------------------------------------------------------------------------- pre-flight


def preflight(
    requests: Iterable[Request | Sequence[Any]],
    *,
    profile: str | Path = DEFAULT_PROFILE,
    sbatch: str = "sbatch",
    timeout: float = 60,
) -> list[PreflightResult]:
    """Run ``sbatch --test-only <options> --wrap true`` for each request (a :class:`Request`,
    or a tuple ``(rule, resources[, attempt[, threads[, label]]])``), the options as the plugin
    would build them from ``profile``; nothing is queued. A request sbatch refuses is not
    ``ok``; its ``message`` is sbatch's answer, its ``hint`` what ``sinfo`` says the site lacks.
    A request sbatch accepts with a time limit beyond its partition's MaxTime (which sites that
    do not enforce partition limits at submission leave pending for ever) is not ``ok`` either.
    """
    results = []
    executable = shutil.which(sbatch)
    partitions = None
    if executable is not None:
        sinfo = Path(executable).with_name("sinfo")
        partitions = _site_partitions(str(sinfo) if sinfo.exists() else "sinfo")
    for item in requests:
        request = _as_request(item)
        try:
            options, values = sbatch_options(
                request.rule,
                request.resources,
                request.attempt,
                threads=request.threads,
                profile=profile,
            )
        except Exception as err:  # an invalid resource or slurm_extra: the plugin would stop
            results.append(PreflightResult(request, {}, [], False, f"{type(err).__name__}: {err}"))
            continue
        if executable is None:
            message = (
                f"{sbatch}: command not found (run the pre-flight on the cluster's login node)"
            )
            results.append(PreflightResult(request, values, options, False, message))
            continue
        try:
            proc = subprocess.run(
                [executable, "--test-only", *options, "--wrap", "true"],
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
            message = "\n".join(
                line for line in (proc.stderr + proc.stdout).strip().splitlines() if line.strip()
            )
            ok = proc.returncode == 0
        except subprocess.TimeoutExpired:
            message, ok = f"sbatch --test-only did not answer within {timeout:g} s", False
        hint = _hint(values, partitions)
        if ok and "PartitionTimeLimit" not in hint:
            hint = ""  # what sinfo suggests matters only where sbatch refused
        results.append(PreflightResult(request, values, options, ok and not hint, message, hint))
    return results


def _rule_request(rule: str, attempt: int, label: str = "") -> Request:
    return Request(rule, {}, attempt, RULE_THREADS.get(rule), label)


def _gpu_job_sizes(campaign: Any) -> Iterator[tuple[str, str, int, Mapping[str, Any]]]:
    """(rule, model, concepts per job, the job's resources at attempt 1) for each distinct job
    size of each model's expert jobs (its last shard may be smaller) and, if causal.enabled,
    its causal jobs (one per part size)."""
    for model in campaign.models:
        shard_sizes = {len(campaign.shard_concepts(s, model)) for s in campaign.shard_ids(model)}
        for n_concepts in sorted(shard_sizes, reverse=True):
            yield (
                campaign.gpu_rule("experts", model),
                model,
                n_concepts,
                campaign.expert_job_resources(model, n_concepts),
            )
    if campaign.config["causal"]["enabled"]:
        part_sizes = sorted({len(c) for c in campaign.causal_parts().values()})
        for model in campaign.models:
            for n_part in part_sizes:
                yield (
                    campaign.gpu_rule("causal", model),
                    model,
                    n_part,
                    campaign.causal_job_resources(model, n_part),
                )


def distinct_requests(
    campaign: Any,
    *,
    profile: str | Path = DEFAULT_PROFILE,
    attempts: Sequence[int] = (1, 2),
) -> list[Request]:
    """The distinct resource requests of a campaign's SLURM jobs, at each of ``attempts``
    (1, and 2 for the retry the profile's ``retries: 1`` allows).

    Expert jobs: one request per rule (``experts``, or ``experts_large`` for a model beyond
    experts.standard_gpu_mem_mb) and distinct resources (a model's shards of different sizes:
    its last shard is smaller), with the campaign's sizes times the attempt, as the rule scales
    them; ``label`` names the models and shard sizes. Causal jobs (if causal.enabled) alike,
    per model and part size (``causal_large`` for the models of ``experts_large``). Every other
    rule that runs on SLURM (those of :data:`SLURM_RULES` and any under the profile's
    set-resources): one request each, its resources all the profile's.
    """
    sized_jobs = list(_gpu_job_sizes(campaign))
    requests: list[Request] = []
    for attempt in attempts:
        by_request: dict[tuple[str, tuple[tuple[str, int], ...]], list[str]] = {}
        for rule, model, n_concepts, sizes_of in sized_jobs:
            resources = tuple((k, int(sizes_of[k]) * attempt) for k in EXPERT_SCALED)
            by_request.setdefault((rule, resources), []).append(f"{model} ({n_concepts} concepts)")
        for (rule, resources), labels in by_request.items():
            requests.append(
                Request(rule, dict(resources), attempt, RULE_THREADS.get(rule), ", ".join(labels))
            )
        others = [r for r in SLURM_RULES if r not in SIZED_RULES]
        profile_rules = read_profile(profile).set_resources
        others += [r for r in profile_rules if r not in others and r not in SIZED_RULES]
        for rule in others:
            label = "" if rule in profile_rules else "default-resources"
            requests.append(_rule_request(rule, attempt, label))
    return requests


def _summary(values: Mapping[str, Any]) -> str:
    parts = [str(values.get("slurm_partition", "(default partition)"))]
    if values.get("gpu") or values.get("gres"):
        gpu = values.get("gres") or (
            f"{values['gpu_model']}:{values['gpu']}" if values.get("gpu_model") else values["gpu"]
        )
        parts.append(f"gpu {gpu}")
    if values.get("constraint"):
        parts.append(f"constraint {values['constraint']}")
    if values.get("mem_mb") is not None:
        parts.append(f"{values['mem_mb']} MB")
    if values.get("gpu_mem_mb") is not None:
        parts.append(f"gpu_mem {values['gpu_mem_mb']} MB")
    if values.get("runtime") is not None:
        parts.append(f"{values['runtime']} min")
    if values.get("cpus_per_task") is not None:
        parts.append(f"cpus {values['cpus_per_task']}")
    return ", ".join(parts)


def format_results(results: Sequence[PreflightResult]) -> str:
    """One line per request (OK or FAILED, rule, attempt, what it asks for, sbatch's answer),
    the command and a hint under each refused one, and a count."""
    lines = []
    for res in results:
        req = res.request
        status = "OK    " if res.ok else "FAILED"
        label = f" [{req.label}]" if req.label else ""
        answer = "; ".join(res.message.splitlines())
        lines.append(
            f"{status} {req.rule} attempt {req.attempt}{label}: {_summary(res.resources)}"
            f"  ->  {answer}"
        )
        if not res.ok:
            if res.options:
                lines.append(f"       {res.command}")
            if res.hint:
                lines.append(f"       site: {res.hint}")
    n_ok = sum(r.ok for r in results)
    lines.append(
        f"{n_ok} of {len(results)} distinct requests the site can run (sbatch --test-only)"
        + (
            ""
            if n_ok == len(results)
            else "; fix the profile's cluster-specific values or the "
            "sizes above before queueing the campaign"
        )
    )
    return "\n".join(lines)


def main_preflight(
    configfile: str | Path, profile: str | Path = DEFAULT_PROFILE, *, sbatch: str = "sbatch"
) -> tuple[str, bool]:
    """``expertalign preflight``: the distinct requests of ``configfile``'s campaign (attempts
    1 and 2) through ``sbatch --test-only`` with ``profile``; the report and whether every
    request was accepted."""
    from expertalign.config import load_config
    from expertalign.plan import Campaign

    campaign = Campaign(load_config(configfile))
    results = preflight(
        distinct_requests(campaign, profile=profile), profile=profile, sbatch=sbatch
    )
    header = f"pre-flight of {configfile} with {profile} (sbatch --test-only; nothing is queued)"
    return header + "\n" + format_results(results), all(r.ok for r in results)
