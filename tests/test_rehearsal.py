"""The campaign rehearsal (tools/rehearse_campaign.sh) in its CI size, on the local SLURM cluster.

``--small --runner slurm --part all --faults``: models loaded by name and revision from an
offline Hugging Face cache the script builds, a concept that cannot get sentences, one expert
job cancelled while it runs, the controller killed at 40 % and restarted by the README's
procedure, a job over its memory on attempt 1, every workflow file touched, and every table
compared with a profiles/local run of the same config. The full size (150 concepts, two model
sizes at three checkpoints) is run by hand; README "The campaign rehearsal" gives its numbers.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]


def _interval(fields: dict[str, str]) -> tuple[datetime, datetime] | None:
    try:
        return datetime.fromisoformat(fields["StartTime"]), datetime.fromisoformat(
            fields["EndTime"]
        )
    except (KeyError, ValueError):
        return None


def _checkout(folder: Path) -> Path:
    """A copy of the checkout's workflow, config, profiles and tools (the package is the one
    installed in .venv): the rehearsal's Snakemake gets a working directory of its own, so its
    lock, `--unlock` and `expertalign status` do not meet the suite's tiny runs in the repo
    (another xdist worker), and its `touch` of every workflow file stays in the copy."""
    root = folder / "checkout"
    root.mkdir(parents=True)
    shutil.copy2(REPO / "Snakefile", root / "Snakefile")
    skip = shutil.ignore_patterns("__pycache__", ".snakemake", "results", "data")
    for name in ("workflow", "config", "envs", "profiles", "tools", "src", "tests"):
        shutil.copytree(REPO / name, root / name, ignore=skip)
    (root / ".venv").symlink_to(REPO / ".venv")
    (folder / "shared").symlink_to(REPO.parent / "shared")  # data_dir: ../shared/data
    return root


def test_the_campaign_rehearsal_with_faults(local_slurm, tmp_path):
    work = tmp_path / "rehearsal"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.run(
        ["bash", "tools/rehearse_campaign.sh", "--small", "--work", str(work)]
        + ["--runner", "slurm", "--part", "all", "--faults"],
        cwd=_checkout(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=2400,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{out[-6000:]}\n{local_slurm.squeue()}"
    assert "rehearsal passed" in out, out[-3000:]

    # 6a: the cancelled expert job was submitted again and finished
    victim = re.search(r"^scancel (\d+) \(rule_experts_wildcards_(\S+)\)$", out, re.M)
    assert victim, out[-3000:]
    stats = json.loads((work / "slurm_stats.json").read_text())
    jobcomp = stats["jobs"]  # each SLURM job's completion record, as slurm_stats.py read it
    attempts = stats["by_key"][f"rule_experts/{victim.group(2)}"]
    assert attempts[0] == victim.group(1) and len(attempts) >= 2, attempts
    assert jobcomp[attempts[0]]["JobState"] == "CANCELLED", jobcomp[attempts[0]]
    assert jobcomp[attempts[-1]]["JobState"] == "COMPLETED", jobcomp[attempts[-1]]

    # 6b: the dead controller seen by `expertalign status`, its jobs cancelled by run ID
    assert "lock held, but no snakemake process works in this directory" in out
    assert re.search(r"jobs of the dead run \S+ in SLURM: \d+; scancel --name", out), out

    # 6c: the concept without sentences is listed, only its expert shards failed, and the
    # remedy (its row taken out) completed the campaign
    failing = (work / "config" / "concepts.tsv").read_text().splitlines()
    status = (work / "status-after-run.txt").read_text()
    assert "advertisement" in status and "advertisement" not in "\n".join(failing), status
    assert "the campaign is complete" in out

    # the memory drill: the pilot killed at 600 MB, done at 1,200 MB, as SLURM recorded it. The
    # controller may be killed while a pilot job waits or runs (then CANCELLED) and the restart
    # begins again at attempt 1, so the record holds two or more of its jobs.
    pilot = [jobcomp[i] for i in stats["by_key"]["rule_pilot"]]  # logs/slurm/rule_pilot/<id>.log
    ran = [job for job in pilot if job["JobState"] != "CANCELLED"]
    assert len(ran) >= 2, pilot
    assert ran[0]["JobState"] != "COMPLETED" and "mem=600M" in ran[0]["Tres"], pilot
    assert ran[-1]["JobState"] == "COMPLETED" and "mem=1200M" in ran[-1]["Tres"], pilot
    assert [job for job in pilot if job["JobState"] == "COMPLETED"] == [ran[-1]], pilot
    assert not any("mem=600M" in job["Tres"] and job["JobState"] == "COMPLETED" for job in pilot)

    # no expert job finished twice, and no two SLURM jobs of one workflow job ran at once
    for key, ids in stats["by_key"].items():
        done = [i for i in ids if jobcomp[i]["JobState"] == "COMPLETED"]
        assert len(done) <= 1 or not key.startswith("rule_experts/"), (key, done)
        spans = sorted(s for s in (_interval(jobcomp[i]) for i in ids) if s)
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end, (key, spans)

    # 6d and 6f
    assert "6d: nothing to be done" in out
    compared = re.search(r"^(\d+) tables compared; (\d+) differ$", out, re.M)
    assert compared and int(compared.group(1)) >= 10 and compared.group(2) == "0", out[-3000:]
    print(out[out.find("stage 6e") :][:3000])  # submissions, repeats, minutes wasted
