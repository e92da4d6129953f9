"""bench/benchmark.py runs end to end (tiny random GPT-NeoX) and reports its JSON summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "benchmark.py"
REQUIRED = {
    "ours_s_per_concept",
    "reference_s_per_concept",
    "floor_s_per_concept",
    "reference_over_ours",
    "ours_over_floor",
    "sklearn_over_kernel",
    "ap_max_abs_diff",
    "peak_rss_mb",
}


def test_quick_benchmark_prints_a_json_summary_last():
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--quick",
            "--model-shape",
            "tiny-neox",
            "--device",
            "cpu",
            "--positives",
            "24",
            "--negatives",
            "60",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert REQUIRED <= summary.keys()
    assert summary["ap_max_abs_diff"] <= 1e-9
    for key in REQUIRED:
        assert summary[key] > 0 or key == "ap_max_abs_diff", key
    assert any("reference / ours" in line for line in lines)
