"""bench/negatives_pool.py's core on synthetic concepts and responses (no model, no corpus):
the pool options share the stated fraction of negatives, independent draws almost none, and the
AP / expert-set step finds planted experts under every option."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "bench" / "negatives_pool.py"

N_CONCEPTS, N_POS, N_NEG = 40, 10, 20


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("negatives_pool_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def positives():
    out = {
        f"c{i:02d}": [f"sentence {j} of concept {i}." for j in range(N_POS)]
        for i in range(N_CONCEPTS)
    }
    # one sentence that is a positive of two concepts (Brown sentences can be)
    out["c01"][0] = out["c00"][0]
    return out


def _check_negatives(positives, negatives):
    for concept, texts in negatives.items():
        assert len(texts) == len(set(texts)) == N_NEG, concept
        assert not set(texts) & set(positives[concept]), f"{concept}: own positive as negative"


@pytest.mark.parametrize("pool", [25, 100])
def test_pools_share_n_negatives_over_pool_size(bench, positives, pool):
    negatives = bench.option_negatives(positives, N_NEG, f"pool:{pool}", seed=0)
    _check_negatives(positives, negatives)
    union = {t for texts in negatives.values() for t in texts}
    assert len(union) <= pool  # every concept draws from one pool of that size
    shared = bench.shared_fraction(negatives)
    assert shared == pytest.approx(N_NEG / pool, abs=0.03)
    assert bench.expected_shared_fraction(f"pool:{pool}", N_NEG, 400, N_POS) == N_NEG / pool
    # another seed: another pool and other samples, the same sharing
    other = bench.option_negatives(positives, N_NEG, f"pool:{pool}", seed=1)
    assert other != negatives
    assert bench.shared_fraction(other) == pytest.approx(N_NEG / pool, abs=0.03)


def test_independent_draws_share_almost_nothing(bench, positives):
    negatives = bench.option_negatives(positives, N_NEG, "independent", seed=0)
    _check_negatives(positives, negatives)
    universe = len({t for texts in positives.values() for t in texts})
    union = {t for texts in negatives.values() for t in texts}
    assert len(union) > 0.6 * universe  # drawn from the whole universe, not from a pool
    expected = N_NEG / (universe - N_POS)  # about 5 %
    assert bench.shared_fraction(negatives) == pytest.approx(expected, abs=0.015)
    assert bench.shared_fraction(negatives) < 0.1
    # reproducible, and each concept's draw is its own
    assert bench.option_negatives(positives, N_NEG, "independent", seed=0) == negatives
    assert negatives["c10"] != negatives["c11"]


def test_shared_fraction_counts_the_overlap(bench):
    overlaps = bench.shared_fraction({"a": ["x", "y"], "b": ["x", "z"], "c": ["x", "y"]})
    assert overlaps == pytest.approx((0.5 + 1.0 + 0.5) / 3)


def test_cost_model(bench):
    # paper.yaml: 12 concepts x 400 positives + the 1,250 pool = 6,050 forward passes a shard
    assert bench.forward_passes_per_shard("pool:1250", 12, 400, 1000, 1249)[0] == 6050
    assert bench.forward_passes_per_shard("pool:5000", 12, 400, 1000, 1249)[0] == 9800
    fwd, _ = bench.forward_passes_per_shard("independent", 12, 400, 1000, 1249)
    assert 12 * 400 + 0.95 * 12 * 1000 < fwd < 12 * 1400


def test_options_find_planted_experts(bench, positives):
    """run_options on synthetic responses: each concept's positives respond strongly on its own
    five units, so every option gives those units AP 1 (experts at every τ)."""
    universe = list(dict.fromkeys(t for texts in positives.values() for t in texts))
    column_of = {t: i for i, t in enumerate(universe)}
    n_units = 5 * N_CONCEPTS + 50
    rng = np.random.default_rng(0)
    responses = rng.normal(size=(n_units, len(universe))).astype(np.float32)
    for i, texts in enumerate(positives.values()):
        responses[5 * i : 5 * i + 5, [column_of[t] for t in texts]] += 10.0
    options = bench.default_options(N_NEG)
    assert options == ["pool:25", "pool:100", "independent"]
    results = bench.run_options(
        torch.from_numpy(responses), column_of, positives, N_NEG, options, seeds=[0]
    )
    assert [r.option for r in results] == options
    for r in results:
        assert r.ap.shape == (N_CONCEPTS, n_units)
        assert (r.ap[np.arange(N_CONCEPTS), 5 * np.arange(N_CONCEPTS)] == 1.0).all()
        assert (r.sizes[0.9] >= 5).all()
        assert r.jaccard[0.5].shape == (N_CONCEPTS, N_CONCEPTS)
    shared = [r.shared for r in results]
    assert shared[0] > 0.7 and 0.1 < shared[1] < 0.3 and shared[2] < 0.1


def test_option_names_are_checked(bench):
    with pytest.raises(ValueError, match="pool:<size>"):
        bench.parse_option("pool")
    with pytest.raises(ValueError, match="pool:<size>"):
        bench.parse_option("shared:10")
