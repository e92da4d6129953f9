"""Exact AP on the paths production takes, compared with sklearn unit by unit.

test_core.py compares AP with sklearn on 257 sentences; production runs other code: a one-off AP
with more than 512 negatives sorts them in blocks and merges the positives into each block
(``_ap_kernel.ap_sorted_rows(..., neg_block)``), sorts of at least 2**18 values run on threads,
GPU responses arrive in bfloat16 (where ties are common), and an expert job scores every concept
with ``SortedNegatives(responses.T, rows=bank_columns)`` and ``average_precision(responses.T,
exclude=..., rows=...)``. Every seed here is a constant, so a failure reproduces.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from expertalign import ap as ap_module
from expertalign.ap import SortedNegatives, average_precision


def _sklearn_ap(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.array([average_precision_score(labels, scores[:, u]) for u in range(scores.shape[1])])


def _tied_scores(rng: np.random.Generator, n: int, units: int, levels: int) -> np.ndarray:
    """float32 scores with heavy ties (few distinct values) and a per-unit shift for positives."""
    return rng.integers(0, levels, (n, units)).astype(np.float32)


@pytest.mark.parametrize("n_negatives", [513, 1300, 2048])
def test_block_merge_path_equals_sklearn_with_ties(n_negatives):
    """More than 512 negatives: sorted in blocks of <= 512 and merged block by block."""
    rng = np.random.default_rng(20240513 + n_negatives)
    n_pos, units = 90, 48
    scores = _tied_scores(rng, n_pos + n_negatives, units, levels=7)
    labels = np.zeros(n_pos + n_negatives, dtype=bool)
    labels[rng.choice(labels.size, n_pos, replace=False)] = True
    scores[labels] += rng.integers(0, 3, (n_pos, units)).astype(np.float32)  # some signal
    scores[:, 0] = 1.0  # one unit where everything ties
    assert (~labels).sum() > ap_module._FAST_SORT_LENGTH  # the block path, not one sort
    ours = average_precision(torch.from_numpy(scores), torch.from_numpy(labels))
    np.testing.assert_allclose(ours.numpy(), _sklearn_ap(scores, labels), rtol=0, atol=1e-12)


def test_threaded_sort_path_equals_sklearn(monkeypatch):
    """At least 2**18 values to sort (and more than one thread): row blocks are sorted on a
    thread pool. Three threads are claimed whatever the machine has, so the 256 unit rows split
    unevenly (85/85/86) and the path runs on a one-CPU machine too."""
    used = []
    original = ap_module._sort_pool

    def spy():
        used.append(True)
        return original()

    monkeypatch.setattr(ap_module, "_sort_pool", spy)
    monkeypatch.setattr(ap_module.numba, "get_num_threads", lambda: 3)
    rng = np.random.default_rng(7)
    n_pos, n_neg, units = 60, 1100, 256  # 1,100 x 256 = 281,600 >= 2**18 bank values
    scores = rng.standard_normal((n_pos + n_neg, units)).astype(np.float32).round(1)
    scores[:n_pos] += 0.3
    labels = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
    bank = SortedNegatives(torch.from_numpy(scores[n_pos:]))
    ours = bank.average_precision(torch.from_numpy(scores[:n_pos]))
    assert used, "the threaded sort was not used"
    np.testing.assert_allclose(ours.numpy(), _sklearn_ap(scores, labels), rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_bfloat16_responses_equal_sklearn_on_the_same_values(backend):
    """bf16 (the GPU dtype) keeps 8 bits of mantissa: many exact ties among close responses."""
    rng = np.random.default_rng(11)
    n_pos, n_neg, units = 40, 700, 64
    # responses around 3, as max-pooled activations are: bf16 spacing there is 2**-6
    raw = torch.from_numpy(3 + 0.2 * rng.standard_normal((n_pos + n_neg, units)).astype(np.float32))
    raw[:n_pos] += 0.05
    scores = raw.to(torch.bfloat16)
    exact = scores.float().numpy()  # what sklearn sees: the bf16 values, exactly
    assert len(np.unique(exact[:, 3])) < 0.5 * exact.shape[0]  # ties are the common case
    labels = np.r_[np.ones(n_pos, bool), np.zeros(n_neg, bool)]
    expected = _sklearn_ap(exact, labels)
    one_off = average_precision(scores, torch.from_numpy(labels), backend=backend)
    np.testing.assert_allclose(one_off.numpy(), expected, rtol=0, atol=1e-12)
    # the production call on a unit-major bf16 matrix, rows picked by index (shuffled)
    unit_major = scores.T.contiguous()
    order = rng.permutation(n_pos + n_neg)
    where = np.argsort(order)  # where[i]: column of original sentence i
    shuffled = unit_major[:, torch.from_numpy(order)]
    bank = SortedNegatives(shuffled.T, rows=where[n_pos:], backend=backend)
    ours = bank.average_precision(shuffled.T, rows=where[:n_pos])
    np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_production_call_with_rows_and_exclude_equals_sklearn(backend):
    """As an expert job calls it: one unit-major response matrix [units, sentences], a bank of
    column indices (a text can appear twice in the bank and share its column), positives by
    column index, and each concept excluding its own bank rows."""
    rng = np.random.default_rng(12345)
    units, n_columns = 40, 900
    responses = torch.from_numpy(_tied_scores(rng, units, n_columns, levels=9))  # unit-major
    bank_columns = rng.choice(n_columns - 100, 600, replace=False)
    bank_columns[17] = bank_columns[3]  # the same text twice in the bank: one column
    positive_columns = np.arange(n_columns - 100, n_columns)[rng.permutation(100)[:70]]
    responses[:, positive_columns] += 2.0
    bank = SortedNegatives(responses.T, rows=torch.from_numpy(bank_columns), backend=backend)
    for exclude in ([], [0, 5, 5, 599], list(range(0, 600, 3))):
        ours = bank.average_precision(
            responses.T, exclude=exclude, rows=torch.from_numpy(positive_columns)
        )
        kept = np.delete(bank_columns, np.unique(np.asarray(exclude, dtype=int)))
        columns = np.r_[positive_columns, kept]
        scores = responses[:, torch.from_numpy(columns)].T.numpy()
        labels = np.r_[np.ones(len(positive_columns), bool), np.zeros(len(kept), bool)]
        np.testing.assert_allclose(
            ours.numpy(),
            _sklearn_ap(scores, labels),
            rtol=0,
            atol=1e-12,
            err_msg=f"exclude={exclude[:6]}...",
        )
