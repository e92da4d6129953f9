"""The local SLURM cluster enforces memory and time limits, as a real site does, and the
profile's retries rerun a job killed for memory with more memory (resources scale with the
attempt, as the `experts` rule's do)."""

from __future__ import annotations

import pytest
import yaml
from slurm_cluster import profile_for_local_cluster, run_snakemake

pytestmark = pytest.mark.slurm

# A job that holds 300 MB besides the two Snakemake processes that run it inside the SLURM
# job (about 200 MB together, counted too): killed at 350 MB (attempt 1), done at 700 MB.
HUNGRY_SNAKEFILE = r"""
rule all:
    input:
        "out/hungry.txt",


rule hungry:
    output:
        "out/hungry.txt",
    log:
        "logs/hungry.log",
    resources:
        mem_mb=lambda wildcards, attempt: 350 * attempt,
        runtime=5,
    shell:
        "python3 -c \"import time; x = bytearray(300 * 2**20); x[::4096] = b'x' * len(x[::4096]);"
        " time.sleep(6)\" && echo attempt={resources.mem_mb} > {output} 2> {log}"
"""


def test_job_over_its_memory_is_killed_named_and_rerun_with_more(local_slurm, tmp_path):
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(HUNGRY_SNAKEFILE)
    profile = profile_for_local_cluster(tmp_path / "profile", local_slurm)
    config = yaml.safe_load((profile / "config.yaml").read_text())
    config["retries"] = 1  # the real profile's value (profile_for_local_cluster sets 0)
    (profile / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))

    result = run_snakemake(["--profile", str(profile)], cwd=workdir, timeout=600)
    assert result.returncode == 0, f"{result.stdout[-8000:]}\n{local_slurm.squeue()}"
    # the second attempt ran with twice the memory and finished
    assert (workdir / "out/hungry.txt").read_text().strip() == "attempt=700"
    # the first attempt's failure is reported by rule name, with its SLURM log
    out = result.stdout
    assert "Error in rule hungry" in out, out[-5000:]
    assert "logs/slurm/rule_hungry" in out, out[-5000:]
    first_log = sorted((workdir / "logs/slurm/rule_hungry").rglob("*.log"))[0]
    assert "exceeded memory limit" in first_log.read_text().lower(), first_log.read_text()


def test_job_over_its_time_limit_is_ended(local_slurm):
    """sbatch --time=1 on a job that sleeps 3 minutes: SLURM ends it as TIMEOUT. The job was
    submitted when the cluster started (``local_slurm``), and this test runs last of the SLURM
    tests (tests/conftest.py), so SLURM's minute has passed while the others ran."""
    job = local_slurm.over_time_job
    assert job is not None, "local_slurm submits the over-time job when the cluster starts"
    state = job.final_state()
    assert state == "TIMEOUT", (state, job.info or local_slurm.job_info(job.job_id))
    assert "finished" not in job.out.read_text()
    assert "DUE TO TIME LIMIT" in job.out.read_text(), job.out.read_text()
