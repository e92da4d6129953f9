"""An expert is a unit with AP > τ, strictly: a unit whose AP equals τ is not one, in the
alignment's Jaccard (``similarity.pairwise_similarity``) and in the packed masks that the domain
and development analyses read (``APMatrix.packed_masks``).

AP values equal to τ are common (AP is a ratio of small counts: 1/2 when a unit ranks its
positives and negatives alternately), so the tests put units exactly at τ, with τ values that
float32 holds exactly.
"""

from __future__ import annotations

import numpy as np

from expertalign.apmatrix import APMatrix
from expertalign.similarity import pairwise_similarity
from expertalign.storage import expertise_table, write_table_atomic

TAUS = (0.5, 0.75)


def _ap_with_ties(seed: int = 0) -> np.ndarray:
    """AP [5 concepts, 40 units]: random values, a third of them set exactly to a τ."""
    rng = np.random.default_rng(seed)
    ap = rng.random((5, 40)).astype(np.float32)
    at_tau = rng.random(ap.shape) < 1 / 3
    ap[at_tau] = rng.choice(np.asarray(TAUS, dtype=np.float32), size=int(at_tau.sum()))
    for tau in TAUS:
        assert (ap == np.float32(tau)).sum() > 5  # the ties the test is about
    return ap


def _experts(row: np.ndarray, tau: float) -> set[int]:
    return {unit for unit, value in enumerate(row.tolist()) if value > tau}


def test_jaccard_counts_units_above_tau_not_at_it():
    ap = _ap_with_ties()
    sim = pairwise_similarity(ap, TAUS, chunk_units=16)
    jaccard = sim.jaccard
    for tau in TAUS:
        sets = [_experts(row, tau) for row in ap]
        assert sim.sizes[tau].tolist() == [len(s) for s in sets]
        for a in range(len(sets)):
            for b in range(len(sets)):
                union = sets[a] | sets[b]
                expected = len(sets[a] & sets[b]) / len(union) if union else 0.0
                assert jaccard[tau][a, b] == expected, (tau, a, b)


def test_packed_masks_hold_units_above_tau_not_at_it(tmp_path):
    ap = _ap_with_ties(seed=1)
    path = tmp_path / "shard-0000.arrow"
    names = [f"c{i}" for i in range(len(ap))]
    write_table_atomic(expertise_table(names, ap, n_pos=[4] * 5, n_neg=[9] * 5), path)
    matrix = APMatrix([path])
    for tau in TAUS:
        expected = np.array([[u in _experts(row, tau) for u in range(ap.shape[1])] for row in ap])
        packed = matrix.packed_masks(tau, units=16)
        assert np.array_equal(packed.rows(range(len(ap))), expected), tau
        assert packed.sizes().tolist() == expected.sum(axis=1).tolist()
        assert np.array_equal(matrix.packed_rows([3, 0], tau).rows([0, 1]), expected[[3, 0]])
