"""bench/precision.py: float32 vs bfloat16 AP, expert sets and MEN alignment."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "precision.py"


@pytest.fixture(scope="module")
def precision():
    spec = importlib.util.spec_from_file_location("precision_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_compare_counts_moved_ap_and_set_overlap(precision):
    ap32 = np.array([[0.95, 0.55, 0.45, 0.2], [0.4, 0.62, 0.58, 0.91]], dtype=np.float32)
    ap16 = ap32.copy()
    ap16[0, 2] = 0.52  # crosses 0.5: concept 0's set at 0.5 gains a unit
    ap16[1, 2] = 0.61  # crosses 0.6: concept 1's set at 0.6 gains a unit
    words = {"a": "a", "b": "b"}
    inputs = precision.Inputs(["a", "b"], {}, words, None, [])
    summary, sets, men = precision.compare(ap32, ap16, inputs, [0.5, 0.6, 0.9])
    assert summary["max"] == pytest.approx(0.07, abs=1e-6)
    assert summary["over_0.01"] == pytest.approx(2 / 8)
    assert men is None
    by_tau = sets.set_index("tau")
    # tau 0.5: a {0,1} -> {0,1,2} (J 2/3), b {1,2,3} unchanged (J 1)
    assert by_tau.loc[0.5, "jaccard_mean"] == pytest.approx((2 / 3 + 1) / 2)
    assert by_tau.loc[0.5, "jaccard_min"] == pytest.approx(2 / 3)
    assert by_tau.loc[0.5, "changed"] == pytest.approx(0.5)
    # tau 0.6: a {0} unchanged, b {1,3} -> {1,2,3} (J 2/3)
    assert by_tau.loc[0.6, "experts_fp32"] == pytest.approx(1.5)
    assert by_tau.loc[0.6, "experts_bf16"] == pytest.approx(2.0)
    assert by_tau.loc[0.9, "jaccard_mean"] == 1.0
    assert identical_sets(precision, ap32)


def identical_sets(precision, ap):
    inputs = precision.Inputs(["a", "b"], {}, {"a": "a", "b": "b"}, None, [])
    summary, sets, _ = precision.compare(ap, ap.copy(), inputs, [0.5])
    return summary["max"] == 0 and (sets["jaccard_min"] == 1).all()


def test_men_rhos_match_pairs_to_concepts_by_word(precision):
    rng = np.random.default_rng(0)
    ap = rng.random((4, 50)).astype(np.float32)
    men = pd.DataFrame(
        {"word1": ["A", "a", "b"], "word2": ["b", "c", "d"], "score": [1.0, 2.0, 3.0]}
    )
    inputs = precision.Inputs(
        ["ca", "cb", "cc", "cd"], {}, {"ca": "a", "cb": "b", "cc": "c", "cd": "d"}, men, []
    )
    summary, _, table = precision.compare(ap, ap, inputs, [0.5])
    assert summary["max"] == 0
    assert set(table["measure"]) == {"jaccard@0.5", "cosine_ap", "cosine_ap_centered"}
    assert (table["delta"] == 0).all()


def test_precision_script_on_the_tiny_sentences():
    """The embedded model in float32 and bfloat16 on 5 tiny concepts x 4 sentences (~20 s)."""
    run = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--sentences",
            "tests/data/sentences/{concept}.txt",
            "--concepts",
            "tests/data/tiny_concepts.tsv",
            "--max-concepts",
            "5",
            "--max-positives",
            "4",
            "--taus",
            "0.5",
            "0.9",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert "inputs: 5 concepts from --sentences" in out
    assert "note: subsampled 5 of 6 concepts" in out  # frost has no provided file
    assert "note: first 4 of up to 8 sentences per concept" in out
    assert "10 negatives per concept" in out
    match = re.search(r"max (\d\.\d+), mean", out)
    assert match and 0 < float(match.group(1)) <= 1  # bf16 moves some AP, never out of [0, 1]
    rows = re.findall(
        r"^\s*(0\.[59]0)\s+([\d,.]+)\s+([\d,.]+)\s+([\d,.]+)\s+(\d\.\d+)\s+"
        r"(\d\.\d+)$",
        out,
        re.MULTILINE,
    )
    assert [r[0] for r in rows] == ["0.50", "0.90"]
    for _, *numbers in rows:
        jaccard_mean, jaccard_min = float(numbers[3]), float(numbers[4])
        assert 0 <= jaccard_min <= jaccard_mean <= 1
    assert "MEN (full split" in out or "too few for a Spearman" in out
