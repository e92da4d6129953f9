#!/usr/bin/env python3
"""What the rehearsal's SLURM campaign cost: submissions, jobs run more than once, minutes wasted.

Reads the local cluster's job-completion record (``JobCompType=jobcomp/filetxt``, the file that
``sacct --completion`` reads; tools/slurm/local-cluster.sh) from line ``--skip`` on, keeping the
SLURM jobs of the campaign's controllers (their job name is the run ID each controller log
prints), and the controllers' submission lines (``... submitted with SLURM jobid N (log:
<slurm-logdir>/rule_<rule>/<wildcards>/N.log)``) to know which job of the workflow each SLURM
job was (a job cancelled while pending has no log file, but its submission line). A job key
(rule and wildcards) with more than one SLURM job ran more than once; the minutes of every SLURM
job that did not complete, and of every completed job after the first of its key, are wasted.

Use::

    .venv/bin/python tools/rehearsal/slurm_stats.py --jobcomp /var/log/slurm/jobcomp.log \\
        --skip 120 --slurm-logs /tmp/rehearsal/slurm_logs --controller-logs controller-*.log \\
        [--show-rule pilot] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from collections import defaultdict
from datetime import datetime
from pathlib import Path

# what the summary keeps of each SLURM job's completion record
RECORD_FIELDS = ("JobState", "Tres", "Partition", "StartTime", "EndTime")


def read_jobcomp(path: Path, skip: int) -> dict[str, dict[str, str]]:
    """JobId -> its fields, for the lines after the first ``skip``."""
    jobs: dict[str, dict[str, str]] = {}
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[skip:]
    for line in lines:
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            jobs[fields["JobId"]] = fields
    return jobs


def run_ids(controller_logs: list[Path]) -> set[str]:
    """The SLURM run IDs (the job names) of the controllers that wrote these logs."""
    found = set()
    for log in controller_logs:
        found |= set(re.findall(r"SLURM run ID: (\S+)", log.read_text(errors="replace")))
    return found


def job_keys(slurm_logs: Path, controller_logs: list[Path]) -> dict[str, str]:
    """SLURM job id -> ``rule_<rule>/<wildcards>``, from the controllers' submission lines and
    the profile's SLURM log files."""
    keys = {log.stem: str(log.parent.relative_to(slurm_logs)) for log in slurm_logs.rglob("*.log")}
    submitted = re.compile(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)")
    for log in controller_logs:
        for job_id, path in submitted.findall(log.read_text(errors="replace")):
            try:
                keys[job_id] = str(Path(path).parent.relative_to(slurm_logs))
            except ValueError:
                continue
    return keys


def minutes(fields: dict[str, str]) -> float:
    try:
        start = datetime.fromisoformat(fields["StartTime"])
        end = datetime.fromisoformat(fields["EndTime"])
    except (KeyError, ValueError):
        return 0.0
    return max(0.0, (end - start).total_seconds() / 60)


def memory(fields: dict[str, str]) -> str:
    match = re.search(r"mem=([0-9.]+[KMGT]?)", fields.get("Tres", ""))
    return match.group(1) if match else "?"


def summarize(jobs: dict[str, dict[str, str]], keys: dict[str, str]) -> dict:
    by_key: dict[str, list[str]] = defaultdict(list)
    for job_id in sorted(jobs, key=int):
        by_key[keys.get(job_id, f"(no log) {jobs[job_id].get('Name', '?')}")].append(job_id)
    states: dict[str, int] = defaultdict(int)
    for fields in jobs.values():
        states[fields.get("JobState", "?")] += 1
    wasted = 0.0
    repeated = {}
    for key, ids in by_key.items():
        done_before = False
        for job_id in ids:
            fields = jobs[job_id]
            if fields.get("JobState") == "COMPLETED" and not done_before:
                done_before = True
            else:
                wasted += minutes(fields)
        if len(ids) > 1:
            repeated[key] = [
                f"{i} {jobs[i].get('JobState')} {minutes(jobs[i]):.2f} min mem={memory(jobs[i])}"
                for i in ids
            ]
    return {
        "submissions": len(jobs),
        "job_minutes": round(sum(minutes(f) for f in jobs.values()), 2),
        "states": dict(states),
        "jobs_run_more_than_once": len(repeated),
        "wasted_job_minutes": round(wasted, 2),
        "repeated": repeated,
        "by_key": dict(by_key),
        "jobs": {
            job_id: {name: fields.get(name, "") for name in RECORD_FIELDS}
            for job_id, fields in jobs.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobcomp", type=Path, default=Path("/var/log/slurm/jobcomp.log"))
    ap.add_argument("--skip", type=int, default=0, help="lines of --jobcomp before the campaign")
    ap.add_argument("--slurm-logs", type=Path, required=True)
    ap.add_argument("--controller-logs", type=Path, nargs="+", required=True)
    ap.add_argument("--show-rule", action="append", default=[], help="print every job of RULE")
    ap.add_argument("--json", type=Path, help="write the summary here too")
    args = ap.parse_args(argv)

    names = run_ids(args.controller_logs)
    jobs = {
        job_id: fields
        for job_id, fields in read_jobcomp(args.jobcomp, args.skip).items()
        if fields.get("Name") in names
    }
    summary = summarize(jobs, job_keys(args.slurm_logs.resolve(), args.controller_logs))
    print(f"controllers (SLURM run IDs): {len(names)}")
    print(f"sbatch submissions: {summary['submissions']}")
    print(f"job-minutes in SLURM: {summary['job_minutes']}")
    print("final states: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["states"].items())))
    print(f"jobs run more than once: {summary['jobs_run_more_than_once']}")
    # the common case in one line: cancelled before it started (0 min), then submitted again
    requeued = [
        key
        for key, attempts in summary["repeated"].items()
        if all(" CANCELLED 0.00 min" in a for a in attempts[:-1]) and " COMPLETED " in attempts[-1]
    ]
    if requeued:
        print(f"  {len(requeued)} of them: cancelled while pending, then run once")
    for key, attempts in sorted(summary["repeated"].items()):
        if key not in requeued:
            print(f"  {key}: " + "; ".join(attempts))
    print(
        f"job-minutes wasted (not completed, or completed again): {summary['wasted_job_minutes']}"
    )
    for rule in args.show_rule:
        for key, ids in sorted(summary["by_key"].items()):
            if key.startswith(f"rule_{rule}/") or key == f"rule_{rule}":
                for job_id in ids:
                    fields = jobs[job_id]
                    print(
                        f"  {rule} job {job_id}: {fields.get('JobState')}, "
                        f"mem={memory(fields)}, partition {fields.get('Partition')}, "
                        f"{minutes(fields):.2f} min"
                    )
                ids_arg = ",".join(ids)
                print(f"  (sacct --completion -j {shlex.quote(ids_arg)} shows the same record)")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
