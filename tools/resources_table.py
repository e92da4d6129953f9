"""Resources of every planned job, by rule and model, from a Snakemake dry run.

    .venv/bin/python tools/resources_table.py --configfile config/paper.yaml \
        [--profile profiles/slurm] [--output resources.tsv]

Runs ``snakemake -n`` with the given arguments and prints one row per (rule, model) with the
number of jobs and their resources (GPU memory, host memory, time limit). A profile's
``set-resources`` count, so pass the profile you will run with.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
COLUMNS = ["gpu", "gpu_model", "gpu_mem_mb", "mem_mb", "runtime", "slurm_partition"]


def planned_jobs(snakemake_args: list[str]) -> pd.DataFrame:
    """One row per planned job: rule, model (if any) and its resources."""
    out = subprocess.run(
        [SNAKEMAKE, "-n", *snakemake_args], cwd=REPO, text=True, capture_output=True
    )
    if out.returncode != 0:
        raise SystemExit(f"snakemake -n failed:\n{out.stdout[-3000:]}{out.stderr[-3000:]}")
    rows, job = [], None
    for line in out.stdout.splitlines():
        if line.startswith(("rule ", "localrule ")):
            job = {"rule": line.split()[1].rstrip(":"), "model": ""}
            rows.append(job)
        elif job is not None and line.strip().startswith("wildcards:"):
            found = re.search(r"\bmodel=([^,\s]+)", line)
            job["model"] = found.group(1) if found else ""
        elif job is not None and line.strip().startswith("resources:"):
            for key, value in re.findall(r"(\w+)=([^,]+)", line.split(":", 1)[1]):
                job[key] = value.strip()
    return pd.DataFrame(rows)


def summary(jobs: pd.DataFrame) -> pd.DataFrame:
    columns = [c for c in COLUMNS if c in jobs.columns]
    grouped = jobs.fillna("").groupby(["rule", "model", *columns], dropna=False)
    return grouped.size().rename("jobs").reset_index()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", help="also write the table here (tab-separated)")
    args, rest = parser.parse_known_args(argv)
    table = summary(planned_jobs(rest))
    print(table.to_string(index=False))
    if args.output:
        table.to_csv(args.output, sep="\t", index=False)


if __name__ == "__main__":
    main()
