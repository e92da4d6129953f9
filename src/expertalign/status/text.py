"""The text of ``expertalign status``: the table, the failed and incomplete jobs, the totals.

    >>> from expertalign.status.text import format_status, main_status
    >>> print(main_status("config/paper.yaml"))                  # what the command prints
    >>> print(format_status(campaign_status(campaign), max_listed=10))

Durations read ``42s``, ``3m05s``, ``7h12m`` or, past two days, ``1,234h``; a time left that is
not from the row's own finished jobs carries a mark naming its basis (see the legend printed
under the table).
"""

from __future__ import annotations

import math

from expertalign.plan import Campaign
from expertalign.status.jobs import STATES
from expertalign.status.probes import display_path
from expertalign.status.report import StatusReport, campaign_status

__all__ = ["format_status", "main_status"]

_HEADER = ("rule", "model", "checkpoint", "jobs", *STATES, "spent", "left")
# the basis of a row's time left (Row.basis), as the table marks it
_MARK = {"other checkpoints": "*", "other models": "**", "paper": "~", "other rows": "**"}


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
    left_out = [f for f in report.failed_concepts if f[0] in report.leave_out_sources]
    failed = [f for f in report.failed_concepts if f[0] not in report.leave_out_sources]
    if failed:
        from expertalign.sentences import retry_hint

        out += ["", f"Concepts without sentences ({len(failed)}):"]
        for name, concept, path, why in failed[:max_listed]:
            out.append(f"  {concept} ({name}): {why}")
            out.append(f"    remedy: {retry_hint(path)}")
    if left_out:
        out += ["", f"Concepts left out of their source (too_few: leave_out) ({len(left_out)}):"]
        for name, concept, _path, why in left_out[:max_listed]:
            out.append(f"  {concept} ({name}): {why.partition(': ')[2] or why}")
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
                out.append(f"    log: {s.error_log or display_path(s.job.log, report.workdir)}")
                out.append(f"    error: {s.error}")
            else:
                out.append(f"    log: {display_path(s.job.log, report.workdir)}")
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
    ``slurm`` as :func:`campaign_status` takes it. Raises :class:`expertalign.config.ConfigError`
    (a ValueError) for a config the workflow cannot run."""
    from expertalign.config import load_config

    config = load_config(configfile)
    if results is not None:
        config["results"] = results
    return format_status(campaign_status(Campaign(config), workdir=".", slurm=slurm))
