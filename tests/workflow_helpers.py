"""Run the real Snakemake workflow from the repository root in tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
# Another copy of the workflow to test (e.g. one with a planted defect, to see a test catch
# it); the working directory stays the repository root.
SNAKEFILE = os.environ.get("EXPERTALIGN_TEST_SNAKEFILE")


def snakemake(
    *args: str, timeout: float = 900, env: dict | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """``snakemake ARGS`` in the repo root; SIGINT (not SIGTERM) on timeout so it cleans up."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    snakefile = ["--snakefile", SNAKEFILE] if SNAKEFILE else []
    proc = subprocess.Popen(
        [SNAKEMAKE, *snakefile, *args],
        cwd=REPO,
        env=full_env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as err:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        raise AssertionError(f"snakemake {' '.join(args)} timed out:\n{out[-5000:]}") from err
    result = subprocess.CompletedProcess(proc.args, proc.returncode, out, "")
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{out[-8000:]}"
        )
    return result
