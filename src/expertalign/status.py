"""Where a running or stopped campaign stands: ``expertalign status``.

    >>> from expertalign.status import main_status, campaign_status, format_status
    >>> print(main_status("config/paper.yaml"))                 # the table, failures, totals
    >>> report = campaign_status(Campaign(config), workdir=".")  # the same, as data
    >>> report.rows[0].counts, report.failed[0].error

Each row is one rule at one (model, checkpoint) (the whole run, for rules that are not per
model; sentence sources summed for the per-source rules), with its jobs counted by state:

* ``done``: every output exists (an expert job's shard file, a per-run rule's tables) and none
  carries an incomplete marker; a sentence batch (a temporary folder) is done when all of its
  members' sentence files exist (or its folder does).
* ``running``: SLURM lists it as running, or it has an incomplete marker while a controller holds
  the working directory or while its log is still growing (written in the last ``recent``
  seconds).
* ``queued``: SLURM lists it as pending, or the running controller's output lock names it (it
  is planned by that controller and not started by it, whatever an earlier run left).
* ``failed``: its output is missing and its log (the rule's log, else the job's SLURM log) ends
  in an error (a Python traceback, ``Error``, ``Killed``, ``CANCELLED``, ``oom``), or ``sacct``
  reports a failed state; the report lists its log and the first error line.
* ``incomplete``: started and not finished, with no error seen: an incomplete marker and no
  controller (rerun it with ``--rerun-incomplete``), or a log without an output.
* ``todo``: not started.

What it reads, read-only (it never takes Snakemake's lock, so it works while the controller
runs and after it died): the results folder (outputs, logs, benchmark TSVs, whose column ``s``
gives the time a finished job took), ``.snakemake/incomplete/`` (one marker per output of a job
that started and did not finish: the output path, url-safe base64, as the file name; the SLURM
job id inside), ``.snakemake/locks/`` (the outputs a controller plans to make),
``.snakemake/log/`` (the SLURM run ids), the processes of this host (a ``snakemake`` process in
the working directory) and, where SLURM is there, ``squeue --me`` (the SLURM plugin names each
job by the run id and puts ``rule_<rule>_wildcards_<values joined by _>`` in its comment),
``sacct`` and the SLURM logs (``logs/slurm`` or ``.snakemake/slurm_logs``).

Time left is estimated per row from its finished jobs' benchmark seconds (per concept for the
expert and sentence jobs, whose sizes differ), else from the same rule and model at other
checkpoints; for expert jobs then from the other models' measured seconds scaled by the paper's
relative costs (:mod:`expertalign.forecast`), else the paper's costs themselves; else from the
rule's other rows. Running jobs count with the time they have left (from their incomplete
marker's time). It is job time, serial: the wall time divides it by the jobs that run at once.

The jobs a campaign consists of are enumerated here from :class:`expertalign.plan.Campaign` and
:mod:`expertalign.paths`, as ``workflow/rules/*.smk`` declare their outputs, logs and benchmarks
(``tests/test_status.py`` checks that every rule of the workflow is covered). What the plan
cannot see: outputs that exist but would rerun (changed params or code, stale sentence
fingerprints) count as done.
"""

from __future__ import annotations

import base64
import getpass
import json
import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from expertalign import paths
from expertalign.plan import PILOT_POOLS, Campaign

__all__ = [
    "STATES",
    "Job",
    "JobStatus",
    "Row",
    "StatusReport",
    "expected_jobs",
    "campaign_status",
    "format_status",
    "main_status",
    "first_error_line",
    "incomplete_markers",
]

STATES = ("done", "running", "queued", "failed", "incomplete", "todo")
# Where the SLURM plugin writes each job's own log (stdout/stderr), relative to the working
# directory: its default, and profiles/slurm's `slurm-logdir`.
SLURM_LOG_DIRS = (".snakemake/slurm_logs", "logs/slurm")
# How much of a log's end is searched for its error.
TAIL_BYTES = 64 * 1024
_SQUEUE_RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "RESIZING", "SIGNALING"}
_SACCT_FAILED = {
    "FAILED",
    "OUT_OF_MEMORY",
    "TIMEOUT",
    "CANCELLED",
    "NODE_FAIL",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
}
_TRACEBACK = "Traceback (most recent call last):"
_ERROR = re.compile(
    r"(?:\b[A-Z]\w*)?Error\b|\bERROR\b|\berror:|\bKilled\b|CANCELLED|DUE TO TIME LIMIT"
    r"|(?i:\boom\b|oom[-_ ]?kill|out of memory)"
)
_RUN_ID = re.compile(r"SLURM run ID: (\S+)")

Runner = Callable[[Sequence[str]], str]


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
    job: Job
    state: str
    seconds: float | None = None  # benchmark seconds (a finished job)
    error: str | None = None  # first error line (failed)
    error_log: str | None = None  # the log it was found in
    slurm: str | None = None  # "JOBID STATE" from squeue or sacct
    elapsed: float | None = None  # seconds since it started (running)


@dataclass
class Row:
    rule: str
    model: str
    checkpoint: str
    counts: dict[str, int]
    spent: float  # benchmark seconds of its finished jobs
    remaining: float | None  # estimated job seconds left (None: nothing to estimate from)
    basis: str  # "" (its own jobs), "other checkpoints", "other rows", "?" or "-" (nothing left)

    @property
    def jobs(self) -> int:
        return sum(self.counts.values())


@dataclass
class StatusReport:
    results: str
    workdir: str
    controller: str
    slurm: str
    rows: list[Row]
    jobs: list[JobStatus]

    @property
    def failed(self) -> list[JobStatus]:
        return [s for s in self.jobs if s.state == "failed"]

    @property
    def incomplete(self) -> list[JobStatus]:
        return [s for s in self.jobs if s.state == "incomplete"]

    @property
    def totals(self) -> dict[str, float]:
        counts = {state: sum(r.counts[state] for r in self.rows) for state in STATES}
        return {
            **counts,
            "jobs": sum(counts.values()),
            "spent": sum(r.spent for r in self.rows),
            "remaining": sum(r.remaining or 0.0 for r in self.rows),
            "unestimated": sum(r.jobs - r.counts["done"] for r in self.rows if r.remaining is None),
        }


# ---------------------------------------------------------------------------------- the plan


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
        rule = "experts_large" if campaign.needs_large_gpu(model) else "experts"
        for source in campaign.sources:
            for shard in campaign.shard_ids():
                wildcards = _wildcards(source=source, model=model, revision=rev, shard=shard)
                add(rule, model, rev, wildcards, [paths.expert_shard(R, source, model, rev, shard)],
                    size=len(campaign.shard_concepts(shard)),
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
        add("pilot", paths.pilot_model_spec(config)["name"], outputs=outputs)
    tables = ("set_sizes", "checkpoint_stability", "expert_distribution",
              "experts_by_layer_submodule")  # fmt: skip
    add("development", outputs=[f"{R}/tables/{t}.csv" for t in tables])
    if config["spp"]["enabled"]:
        outputs = [f"{R}/tables/spp_{t}.csv" for t in ("overlap", "mixed_model")]
        add("spp", outputs=[*outputs, f"{R}/figures/spp_overlap.png"])
    add("cost_table", outputs=[f"{R}/tables/cost.csv"])
    add("alignment_summary", outputs=[f"{R}/tables/alignment.{e}" for e in ("parquet", "csv")])
    outputs = [f"{R}/tables/experts_vs_baselines.{e}" for e in ("parquet", "csv")]
    add("comparison_summary", outputs=outputs)
    add("alignment_figure", outputs=[f"{R}/figures/alignment.png"])
    add("baseline_figure", outputs=[f"{R}/figures/baselines.png"])
    if campaign.has_domains():
        add("domains_summary", outputs=[f"{R}/tables/domains.{e}" for e in ("parquet", "csv")])
    return jobs


# ---------------------------------------------------------------------------------- reading


class _Tree:
    """Existence and listings under the working directory, one ``listdir`` per folder (cheap on
    a shared file system with thousands of shards)."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self._listings: dict[str, frozenset[str]] = {}

    def abs(self, path: str) -> str:
        return os.path.normpath(os.path.join(self.workdir, path))

    def listing(self, folder: str) -> frozenset[str]:
        if folder not in self._listings:
            try:
                self._listings[folder] = frozenset(os.listdir(folder))
            except OSError:
                self._listings[folder] = frozenset()
        return self._listings[folder]

    def exists(self, path: str) -> bool:
        full = self.abs(path)
        return os.path.basename(full) in self.listing(os.path.dirname(full))

    def find(self, path: str, suffixed: bool) -> str | None:
        """``path`` (absolute) if it exists; with ``suffixed``, else ``STEM-<digest>.EXT``."""
        full = self.abs(path)
        folder, name = os.path.split(full)
        names = self.listing(folder)
        if name in names:
            return full
        if suffixed:
            stem, ext = os.path.splitext(name)
            hits = [
                os.path.join(folder, n)
                for n in names
                if n.startswith(f"{stem}-") and n.endswith(ext)
            ]
            if hits:  # the latest
                return max(hits, key=lambda p: _mtime(p) or 0.0)
        return None


def _decode_record(relative: str) -> str | None:
    """The path a Snakemake record file stands for (url-safe base64; long ones split into
    folders whose names start with ``@``)."""
    parts = relative.split(os.sep)
    encoded = "".join(p[1:] if p.startswith("@") else p for p in parts)
    try:
        return base64.urlsafe_b64decode(encoded.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def incomplete_markers(workdir: str = ".") -> dict[str, dict]:
    """Output path (absolute) -> ``{"external_jobid": ..., "since": mtime}`` for every
    incomplete marker under ``WORKDIR/.snakemake/incomplete``."""
    root = os.path.join(workdir, ".snakemake", "incomplete")
    markers: dict[str, dict] = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(folder, name)
            path = _decode_record(os.path.relpath(full, root))
            if path is None:
                continue
            try:
                with open(full, encoding="utf-8") as f:
                    record = json.load(f)
                since = os.stat(full).st_mtime
            except (OSError, ValueError):
                record, since = {}, None
            markers[os.path.normpath(os.path.join(workdir, path))] = {
                "external_jobid": (record or {}).get("external_jobid"),
                "since": since,
            }
    return markers


def _lock_outputs(workdir: str) -> tuple[bool, set[str], float | None]:
    """Whether a lock is held on ``workdir``, the outputs the locking controller plans (absolute)
    and when it took the lock."""
    folder = os.path.join(workdir, ".snakemake", "locks")
    try:
        names = os.listdir(folder)
    except OSError:
        return False, set(), None
    locks = [n for n in names if re.fullmatch(r"\d+\.(input|output)\.lock", n)]
    planned: set[str] = set()
    since = [t for t in (_mtime(os.path.join(folder, n)) for n in locks) if t is not None]
    for name in locks:
        if name.endswith(".output.lock"):
            try:
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    planned.update(
                        os.path.normpath(os.path.join(workdir, line.strip()))
                        for line in f
                        if line.strip()
                    )
            except OSError:
                continue
    return bool(locks), planned, min(since, default=None)


def _snakemake_pids(workdir: str) -> list[int] | None:
    """Snakemake controllers on this host working in ``workdir`` (their cwd or ``--directory``);
    None where processes cannot be read (no /proc)."""
    if not os.path.isdir("/proc"):
        return None
    target = os.path.realpath(workdir)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        is_snakemake = any(os.path.basename(a) == "snakemake" for a in args[:2]) or (
            "-m" in args[:3] and "snakemake" in args[:4]
        )
        # a job's own snakemake (a SLURM job step, a subprocess of the local executor)
        if not is_snakemake or any("slurm-jobstep" in a for a in args) or "--mode" in args:
            continue
        directory = cwd
        for flag in ("-d", "--directory"):
            if flag in args[:-1]:
                directory = os.path.join(cwd, args[args.index(flag) + 1])
        if os.path.realpath(directory) == target:
            found.append(int(entry))
    return found


def _tail(path: str, size: int = TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def first_error_line(text: str) -> str | None:
    """The error a log ends in: the exception line of its last Python traceback, else the
    first line naming an error (``...Error``, ``error:``, ``Killed``, ``CANCELLED``, ``oom``,
    ``out of memory``); None when it names none."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == _TRACEBACK]
    if starts:
        for line in lines[starts[-1] + 1 :]:
            if line.strip() and not line[0].isspace():
                return line.strip()
    for line in lines:
        if _ERROR.search(line):
            return line.strip()
    return None


def _benchmark_seconds(path: str) -> float | None:
    """The ``s`` column of a Snakemake benchmark TSV, summed over its rows (repeats)."""
    try:
        with open(path, encoding="utf-8") as f:
            header = f.readline().rstrip("\n").split("\t")
            column = header.index("s")
            values = [line.split("\t")[column] for line in f if line.strip()]
        return sum(float(v) for v in values) if values else None
    except (OSError, ValueError, IndexError):
        return None


def _run(args: Sequence[str]) -> str:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def _slurm_run_ids(workdir: str) -> set[str]:
    """The SLURM run ids (the job names) the controllers of ``workdir`` logged."""
    folder = os.path.join(workdir, ".snakemake", "log")
    ids: set[str] = set()
    try:
        names = os.listdir(folder)
    except OSError:
        return ids
    for name in names:
        try:
            with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
                for line in f:
                    if "SLURM run ID" in line:
                        ids.update(_RUN_ID.findall(line))
        except OSError:
            continue
    return ids


def _squeue(runner: Runner) -> list[dict[str, str]] | None:
    """The user's SLURM jobs (id, name, state, comment), or None when squeue cannot be run."""
    fmt = ["-h", "-o", "%i|%j|%T|%k"]
    for args in (["squeue", "--me", *fmt], ["squeue", "-u", getpass.getuser(), *fmt]):
        try:
            out = runner(args)
        except (OSError, subprocess.SubprocessError):
            continue
        jobs = []
        for line in out.splitlines():
            parts = line.strip().split("|", 3)
            if len(parts) == 4:
                jobs.append(dict(zip(("id", "name", "state", "comment"), parts)))
        return jobs
    return None


def _sacct(runner: Runner, ids: Iterable[str]) -> dict[str, str]:
    """SLURM job id -> state (``CANCELLED by 123`` as ``CANCELLED``), for ``ids``; empty when
    sacct is not there."""
    ids = sorted(set(ids))
    states: dict[str, str] = {}
    for start in range(0, len(ids), 200):
        chunk = ids[start : start + 200]
        try:
            out = runner(["sacct", "-X", "-n", "-P", "-o", "JobIDRaw,State", "-j", ",".join(chunk)])
        except (OSError, subprocess.SubprocessError):
            return states
        for line in out.splitlines():
            parts = line.strip().split("|")
            if len(parts) >= 2 and parts[1]:
                states[parts[0]] = parts[1].split()[0]
    return states


def _job_id_key(job_id: str) -> tuple[int, int]:
    head, _, task = job_id.partition("_")
    return (int(head) if head.isdigit() else -1, int(task) if task.isdigit() else -1)


# ---------------------------------------------------------------------------------- the report


def campaign_status(
    campaign: Campaign,
    *,
    workdir: str = ".",
    slurm: bool | None = None,
    runner: Runner | None = None,
    now: float | None = None,
    recent: float = 300.0,
    estimate: bool = True,
) -> StatusReport:
    """Each job of ``campaign`` in its state (see the module doc), summed per rule x model x
    checkpoint, read from ``workdir`` (where Snakemake runs: relative results paths and
    ``.snakemake`` are under it).

    ``slurm``: None asks SLURM when ``squeue`` is on PATH, False never, True always (through
    ``runner``, which runs a command and returns its output: a test's stand-in for squeue and
    sacct). ``recent``: a log written in the last that many seconds shows its job is alive."""
    now = time.time() if now is None else now
    tree = _Tree(workdir)
    jobs = expected_jobs(campaign)
    markers = incomplete_markers(workdir)
    locked, planned, lock_since = _lock_outputs(workdir)
    pids = _snakemake_pids(workdir) if locked else []
    # no process seen on this host: the controller runs on another one, or died
    active = locked and (pids is None or bool(pids))
    if not locked:
        controller = "none (no lock on the working directory)"
    elif pids:
        controller = f"running (snakemake pid {', '.join(map(str, pids))} holds the lock)"
    elif pids is None:
        controller = "lock held (processes of this host cannot be read)"
    else:
        controller = (
            "lock held, but no snakemake process works in this directory on this host: the "
            "controller runs on another host, or died (then `snakemake --unlock`)"
        )

    # SLURM
    use_slurm = shutil.which("squeue") is not None if slurm is None else slurm
    runner = runner or _run
    queue = _squeue(runner) if use_slurm else None
    by_id: dict[str, dict[str, str]] = {}
    by_comment: dict[str, dict[str, str]] = {}
    run_ids: set[str] = set()
    if queue is None:
        slurm_line = "SLURM: not available" if not use_slurm else "SLURM: squeue failed"
    else:
        run_ids = _slurm_run_ids(workdir)
        for entry in queue:
            by_id[entry["id"]] = entry
            if not run_ids or entry["name"] in run_ids:
                by_comment.setdefault(entry["comment"], entry)
        slurm_line = ""  # filled below, with the jobs matched

    statuses: list[JobStatus] = []
    pending_failure: list[tuple[JobStatus, list[str]]] = []
    matched_ids: set[str] = set()
    for job in jobs:
        status = JobStatus(job, "todo")
        statuses.append(status)
        bench = tree.find(job.benchmark, job.suffixed)
        status.seconds = _benchmark_seconds(bench) if bench else None
        marks = [tree.abs(m) for m in job.marks]
        marked = [markers[m] for m in marks if m in markers]
        if job.suffixed and not marked:  # older batch names: "gpu-002-<digest>"
            prefixes = tuple(m + "-" for m in marks)
            marked = [v for k, v in markers.items() if k.startswith(prefixes)]
        outputs_exist = all(tree.exists(o) for o in job.outputs)
        recorded_exist = bool(job.recorded) and all(
            tree.find(r, job.suffixed) for r in job.recorded
        )
        if (outputs_exist or recorded_exist) and not marked:
            status.state = "done"
            continue

        since = min((m["since"] for m in marked if m.get("since")), default=None)
        status.elapsed = now - since if since else None
        log = tree.find(job.log, job.suffixed)
        log_mtime = _mtime(log)
        # written since the controller that holds the lock started (not left by an earlier run)
        started_now = marked and (since is None or lock_since is None or since >= lock_since)
        log_now = log_mtime is not None and (lock_since is None or log_mtime >= lock_since)
        ids = [m["external_jobid"] for m in marked if m.get("external_jobid")]
        entry = next((by_id[i] for i in ids if i in by_id), None) or by_comment.get(
            job.slurm_comment
        )
        if entry is not None:
            matched_ids.add(entry["id"])
            status.slurm = f"{entry['id']} {entry['state']}"
            status.state = "running" if entry["state"] in _SQUEUE_RUNNING else "queued"
            continue
        if marked and (
            (active and started_now) or (log_mtime is not None and now - log_mtime < recent)
        ):
            status.state = "running"
            continue
        error = first_error_line(_tail(log)) if log else None
        if active and any(m in planned for m in marks) and not (error and log_now):
            status.state = "queued"  # planned by the running controller (again)
            continue
        if error:
            status.state, status.error, status.error_log = "failed", error, _show(log, workdir)
            continue
        if queue is not None:  # the SLURM logs now, sacct after the loop (one call)
            slurm_logs = _slurm_logs(tree, job)
            ids = ids + [os.path.splitext(os.path.basename(p))[0] for p in slurm_logs]
            for path in reversed(slurm_logs):
                error = first_error_line(_tail(path))
                if error:
                    status.state, status.error = "failed", error
                    status.error_log = _show(path, workdir)
                    break
            if status.state == "failed":
                continue
            if ids:
                pending_failure.append((status, ids))
        if marked or log:
            status.state = "incomplete"

    if queue is not None:
        states = _sacct(runner, (i for _, ids in pending_failure for i in ids))
        for status, ids in pending_failure:
            known = [i for i in ids if i in states]
            if not known:
                continue
            latest = max(known, key=_job_id_key)
            if states[latest] in _SACCT_FAILED:
                status.state = "failed"
                status.slurm = f"{latest} {states[latest]}"
                status.error = f"SLURM job {latest}: {states[latest]}"
                if _mtime(tree.abs(status.job.log)) is not None:
                    status.error_log = _show(tree.abs(status.job.log), workdir)
        ours = [e for e in queue if e["id"] in matched_ids]
        running = sum(e["state"] in _SQUEUE_RUNNING for e in ours)
        slurm_line = f"SLURM: {running} running, {len(ours) - running} pending of this campaign"
        if run_ids:
            other = [e for e in queue if e["name"] in run_ids and e["id"] not in matched_ids]
            if other:
                slurm_line += f"; {len(other)} other jobs of its runs in squeue"

    rows = _rows(statuses, _paper_seconds(campaign) if estimate else None)
    return StatusReport(
        results=campaign.results,
        workdir=os.path.abspath(workdir),
        controller=controller,
        slurm=slurm_line,
        rows=rows,
        jobs=statuses,
    )


def _mtime(path: str | None) -> float | None:
    if not path:
        return None
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def _show(path: str, workdir: str) -> str:
    """A path as the user sees it: relative to the working directory when under it."""
    relative = os.path.relpath(path, os.path.abspath(workdir))
    return path if relative.startswith("..") else relative


def _slurm_logs(tree: _Tree, job: Job) -> list[str]:
    """The job's SLURM logs (``rule_RULE/WILDCARDS/JOBID.log``), oldest job first."""
    wildcards = job.slurm_comment.removeprefix(f"rule_{job.rule}").removeprefix("_wildcards_")
    found = []
    for base in SLURM_LOG_DIRS:
        rule_dir = tree.abs(os.path.join(base, f"rule_{job.rule}"))
        if os.path.basename(rule_dir) not in tree.listing(os.path.dirname(rule_dir)):
            continue
        folder = os.path.join(rule_dir, wildcards) if wildcards else rule_dir
        found += [os.path.join(folder, n) for n in tree.listing(folder) if n.endswith(".log")]
    return sorted(found, key=lambda p: _job_id_key(os.path.splitext(os.path.basename(p))[0]))


_EXPERT_RULES = ("experts", "experts_large")


def _paper_seconds(campaign: Campaign) -> dict[str, float]:
    """Model -> seconds per concept of its expert jobs as the plan's forecast predicts them from
    the paper's costs (:mod:`expertalign.forecast`), for models whose shape is known."""
    from expertalign import forecast

    prior = {}
    for model in campaign.models:
        try:
            per_concept = forecast._paper_seconds_per_concept(campaign, model)
            load = forecast._load_seconds(campaign, model)
        except Exception:  # an estimate only: never fail the report for it
            continue
        if per_concept is not None:
            prior[model] = per_concept + load / campaign.shard_size
    return prior


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _rows(statuses: list[JobStatus], prior: dict[str, float] | None = None) -> list[Row]:
    """Jobs summed per rule x model x checkpoint, with the time spent and the time left (see
    the module doc; ``prior``: a model's expert job seconds per concept by the paper's costs)."""
    prior = prior or {}
    groups: dict[tuple[str, str, str], list[JobStatus]] = {}
    for status in statuses:
        job = status.job
        groups.setdefault((job.rule, job.model, job.checkpoint), []).append(status)

    def per_unit(members: Iterable[JobStatus]) -> list[float]:
        return [
            s.seconds / s.job.size
            for s in members
            if s.state == "done" and s.seconds is not None and s.job.size
        ]

    by_rule_model: dict[tuple[str, str], list[float]] = {}
    by_rule: dict[str, list[float]] = {}
    expert_models: dict[str, list[float]] = {}
    for (rule, model, _), members in groups.items():
        units = per_unit(members)
        by_rule_model.setdefault((rule, model), []).extend(units)
        by_rule.setdefault(rule, []).extend(units)
        if rule in _EXPERT_RULES:
            expert_models.setdefault(model, []).extend(units)
    # how much slower or faster this site is than the paper's costs, from the models measured
    speedup = [_mean(v) / prior[m] for m, v in expert_models.items() if v and prior.get(m)]

    rows = []
    for (rule, model, checkpoint), members in groups.items():
        counts = {state: 0 for state in STATES}
        for s in members:
            counts[s.state] += 1
        left = [s for s in members if s.state != "done"]
        expert_prior = prior.get(model) if rule in _EXPERT_RULES else None
        candidates = [
            ("", per_unit(members)),
            ("other checkpoints", by_rule_model[(rule, model)]),
        ]
        if expert_prior is not None:
            candidates += [
                ("other models", [expert_prior * _mean(speedup)] if speedup else []),
                ("paper", [expert_prior]),
            ]
        candidates.append(("other rows", by_rule[rule]))
        mean, basis = None, "?"
        for name, units in candidates:
            if units:
                mean, basis = _mean(units), name
                break
        if not left:
            mean, basis = 0.0, "-"
        remaining = None
        if mean is not None:
            remaining = sum(
                max(0.0, mean * s.job.size - (s.elapsed or 0.0))
                if s.state == "running"
                else mean * s.job.size
                for s in left
            )
        spent = sum(s.seconds for s in members if s.seconds is not None)
        rows.append(Row(rule, model, checkpoint, counts, spent, remaining, basis))
    return rows


# ---------------------------------------------------------------------------------- text


def _duration(seconds: float | None, zero: str = "-") -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    if seconds < 0.5:
        return zero
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{seconds / 3600:,.0f}h"


_HEADER = ("rule", "model", "checkpoint", "jobs", *STATES, "spent", "left")
_MARK = {"other checkpoints": "*", "other models": "**", "paper": "~", "other rows": "**"}


def format_status(report: StatusReport, max_listed: int = 50) -> str:
    """The table (one line per rule x model x checkpoint), the failed and incomplete jobs, and
    the totals."""
    table = [_HEADER]
    for r in report.rows:
        eta = "-" if r.basis == "-" else _duration(r.remaining, "0s") + _MARK.get(r.basis, "")
        table.append(
            (
                r.rule,
                r.model,
                r.checkpoint,
                str(r.jobs),
                *(str(r.counts[s]) if r.counts[s] else "." for s in STATES),
                _duration(r.spent),
                eta,
            )
        )
    t = report.totals
    table.append(
        (
            "total",
            "",
            "",
            str(int(t["jobs"])),
            *(str(int(t[s])) if t[s] else "." for s in STATES),
            _duration(t["spent"]),
            _duration(t["remaining"]),
        )
    )
    widths = [max(len(row[i]) for row in table) for i in range(len(_HEADER))]
    text_cols = 3

    def line(row):
        return "  ".join(
            cell.ljust(w) if i < text_cols else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths))
        ).rstrip()

    out = [
        f"results: {report.results}   (working directory {report.workdir})",
        f"controller: {report.controller}",
        report.slurm,
        "",
        line(table[0]),
        *(line(row) for row in table[1:-1]),
        "-" * len(line(table[0])),
        line(table[-1]),
    ]
    if any(r.basis in _MARK for r in report.rows):
        out.append(
            "left: job time, from the row's finished jobs; * from the same model at other "
            "checkpoints;\n      ** from the rule's other rows (expert jobs: other models, "
            "scaled by the paper's costs); ~ the paper's costs; ? nothing to estimate from"
        )
    if report.totals["queued"]:
        out.append("queued: pending in SLURM, or planned by the running controller, not started")
    for title, group in (("Failed jobs", report.failed), ("Incomplete jobs", report.incomplete)):
        if not group:
            continue
        out += ["", f"{title} ({len(group)}):"]
        for s in group[:max_listed]:
            head = f"  {s.job.rule}  {s.job.describe()}"
            if s.slurm:
                head += f"  [SLURM {s.slurm}]"
            out.append(head)
            if s.state == "failed":
                out.append(f"    log: {s.error_log or _show(s.job.log, report.workdir)}")
                out.append(f"    error: {s.error}")
            else:
                out.append(f"    log: {_show(s.job.log, report.workdir)}")
        if len(group) > max_listed:
            out.append(f"  ... and {len(group) - max_listed} more")
        if title == "Incomplete jobs":
            out.append("  (started and not finished, no error seen: snakemake --rerun-incomplete)")
    out.append("")
    summary = ", ".join(f"{int(t[s])} {s}" for s in STATES if t[s])
    total = f"total: {int(t['jobs'])} jobs ({summary}); time spent {_duration(t['spent'])}"
    if t["jobs"] - t["done"]:
        total += f"; left about {_duration(t['remaining'])} of job time"
        if t["running"]:
            total += (
                f" (about {_duration(t['remaining'] / t['running'])} at the "
                f"{int(t['running'])} jobs running now)"
            )
        if t["unestimated"]:
            total += f", plus {int(t['unestimated'])} jobs with nothing to estimate from"
    else:
        total += "; nothing left to run"
    out.append(total)
    return "\n".join(out)


def main_status(configfile: str, *, results: str | None = None, slurm: bool | None = None) -> str:
    """``expertalign status``: the text to print for the campaign of ``configfile`` (laid over
    the workflow's config/config.yaml, as Snakemake reads it), from the current directory (the
    working directory Snakemake runs in); ``results`` overrides the config's results folder;
    ``slurm`` as :func:`campaign_status` takes it."""
    from expertalign.config import load_config

    config = load_config(configfile)
    if results is not None:
        config["results"] = results
    return format_status(campaign_status(Campaign(config), workdir=".", slurm=slurm))
