"""Each job of a campaign in its state, summed per rule x model x checkpoint with time spent and
left: the data behind ``expertalign status``.

    >>> from expertalign.status.report import campaign_status
    >>> report = campaign_status(Campaign(config), workdir=".")   # where Snakemake runs
    >>> report.rows[0].counts, report.rows[0].remaining, report.totals["done"]
    >>> report.failed[0].error, report.failed[0].error_log
    >>> campaign_status(campaign, slurm=True, runner=fake_squeue)  # a stand-in for squeue/sacct

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

Time left is estimated per row from its finished jobs' benchmark seconds (per concept for the
expert and sentence jobs, whose sizes differ), else from the same rule and model at other
checkpoints; for expert jobs then from the other models' measured seconds scaled by the paper's
relative costs (:mod:`expertalign.forecast`), else the paper's costs themselves; else from the
rule's other rows. Running jobs count with the time they have left (from their incomplete
marker's time). It is job time, serial: the wall time divides it by the jobs that run at once.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from expertalign.plan import Campaign
from expertalign.status import probes
from expertalign.status.jobs import STATES, JobStatus, expected_jobs

__all__ = ["Row", "StatusReport", "campaign_status"]

_EXPERT_RULES = ("experts", "experts_large")


@dataclass
class Row:
    """The jobs of one rule x model x checkpoint, counted by state."""

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
    """Where a campaign stands: its rows, every job's status, and the controller and SLURM."""

    results: str
    workdir: str
    controller: str
    slurm: str
    rows: list[Row]
    jobs: list[JobStatus]
    #: (sentence set, concept, sentence file, why it has no sentences)
    failed_concepts: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: sentence sources that leave such a concept out (``too_few: leave_out``) instead of
    #: stopping the expert jobs that need it
    leave_out_sources: list[str] = field(default_factory=list)

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


def _controller_line(locked: bool, pids: list[int] | None) -> str:
    if not locked:
        return "none (no lock on the working directory)"
    if pids:
        return f"running (snakemake pid {', '.join(map(str, pids))} holds the lock)"
    if pids is None:
        return "lock held (processes of this host cannot be read)"
    return (
        "lock held, but no snakemake process works in this directory on this host: the "
        "controller runs on another host, or died (then `snakemake --unlock`)"
    )


def campaign_status(
    campaign: Campaign,
    *,
    workdir: str = ".",
    slurm: bool | None = None,
    runner: probes.Runner | None = None,
    now: float | None = None,
    recent: float = 300.0,
    estimate: bool = True,
) -> StatusReport:
    """Each job of ``campaign`` in its state (see the module doc), summed per rule x model x
    checkpoint, read from ``workdir`` (where Snakemake runs: relative results paths and
    ``.snakemake`` are under it).

    ``slurm``: None asks SLURM when ``squeue`` is on PATH, False never, True always (through
    ``runner``, which runs a command and returns its output: a test's stand-in for squeue and
    sacct). ``recent``: a log written in the last that many seconds shows its job is alive.
    ``estimate``: False leaves out the paper's costs as a basis of the time left."""
    now = time.time() if now is None else now
    tree = probes.Tree(workdir)
    jobs = expected_jobs(campaign)
    markers = probes.incomplete_markers(workdir)
    locked, planned, lock_since = probes.lock_outputs(workdir)
    pids = probes.snakemake_pids(workdir) if locked else []
    # no process seen on this host: the controller runs on another one, or died
    active = locked and (pids is None or bool(pids))

    use_slurm = shutil.which("squeue") is not None if slurm is None else slurm
    runner = runner or probes.run_command
    queue = probes.squeue(runner) if use_slurm else None
    by_id: dict[str, dict[str, str]] = {}
    by_comment: dict[str, dict[str, str]] = {}
    run_ids: set[str] = set()
    if queue is not None:
        run_ids = probes.slurm_run_ids(workdir)
        for entry in queue:
            by_id[entry["id"]] = entry
            # another campaign's job can carry the same comment: its name is another run id
            if not run_ids or entry["name"] in run_ids:
                by_comment.setdefault(entry["comment"], entry)

    statuses: list[JobStatus] = []
    pending_failure: list[tuple[JobStatus, list[str]]] = []  # for sacct, after the loop
    matched_ids: set[str] = set()
    for job in jobs:
        status = JobStatus(job, "todo")
        statuses.append(status)
        bench = tree.find(job.benchmark, job.suffixed)
        status.seconds = probes.benchmark_seconds(bench) if bench else None
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
        log_mtime = probes.mtime(log)
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
            status.state = "running" if entry["state"] in probes.SQUEUE_RUNNING else "queued"
            continue
        if marked and (
            (active and started_now) or (log_mtime is not None and now - log_mtime < recent)
        ):
            status.state = "running"
            continue
        error = probes.first_error_line(probes.log_tail(log)) if log else None
        if active and any(m in planned for m in marks) and not (error and log_now):
            status.state = "queued"  # planned by the running controller (again)
            continue
        if error:
            status.state, status.error = "failed", error
            status.error_log = probes.display_path(log, workdir)
            continue
        if queue is not None:  # the SLURM logs now, sacct after the loop (one call)
            slurm_logs = probes.slurm_logs(tree, job)
            ids = ids + [os.path.splitext(os.path.basename(p))[0] for p in slurm_logs]
            for path in reversed(slurm_logs):
                error = probes.first_error_line(probes.log_tail(path))
                if error:
                    status.state, status.error = "failed", error
                    status.error_log = probes.display_path(path, workdir)
                    break
            if status.state == "failed":
                continue
            if ids:
                pending_failure.append((status, ids))
        if marked or log:
            status.state = "incomplete"

    if queue is None:
        slurm_line = "SLURM: not available" if not use_slurm else "SLURM: squeue failed"
    else:
        states = probes.sacct(runner, (i for _, ids in pending_failure for i in ids))
        for status, ids in pending_failure:
            known = [i for i in ids if i in states]
            if not known:
                continue
            latest = max(known, key=probes.job_id_key)
            if states[latest] in probes.SACCT_FAILED:
                status.state = "failed"
                status.slurm = f"{latest} {states[latest]}"
                status.error = f"SLURM job {latest}: {states[latest]}"
                if probes.mtime(tree.abs(status.job.log)) is not None:
                    status.error_log = probes.display_path(tree.abs(status.job.log), workdir)
        ours = [e for e in queue if e["id"] in matched_ids]
        running = sum(e["state"] in probes.SQUEUE_RUNNING for e in ours)
        slurm_line = f"SLURM: {running} running, {len(ours) - running} pending of this campaign"
        if run_ids:
            other = [e for e in queue if e["name"] in run_ids and e["id"] not in matched_ids]
            if other:
                slurm_line += f"; {len(other)} other jobs of its runs in squeue"

    return StatusReport(
        results=campaign.results,
        workdir=os.path.abspath(workdir),
        controller=_controller_line(locked, pids),
        slurm=slurm_line,
        rows=_rows(statuses, _paper_seconds(campaign) if estimate else None),
        jobs=statuses,
        failed_concepts=failed_concepts(campaign, workdir),
        leave_out_sources=[source for source in campaign.sources if campaign.leaves_out(source)],
    )


def failed_concepts(campaign: Campaign, workdir: str = ".") -> list[tuple[str, str, str, str]]:
    """Concepts whose sentence file records that their sentences could not be made
    (:func:`expertalign.sentences.failure_of`): set, concept, file, reason."""
    from expertalign.sentences import failure_of

    found = []
    for name, spec in campaign.sentence_sets.items():
        for concept, path in spec.outputs.items():
            full = os.path.join(workdir, path)
            if os.path.isfile(full):
                try:
                    why = failure_of(full)
                except (OSError, ValueError):  # a damaged file: the plan remakes it
                    continue
                if why is not None:
                    found.append((name, concept, path, why))
    return found


# ------------------------------------------------------------------------------ rows, time left


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
            prior[model] = per_concept + load / campaign.shard_size_of(model)
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
