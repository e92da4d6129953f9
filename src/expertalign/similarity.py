"""Similarity of every pair of concepts from their AP vectors, with matrix products.

    >>> from expertalign.similarity import pairwise_similarity
    >>> sim = pairwise_similarity(ap, taus=[0.5, 0.7])     # ap: float32 [concepts, units]
    >>> sim.jaccard[0.5][i, j], sim.cosine_ap[i, j], sim.cosine_ap_centered[i, j], sim.sizes[0.5][i]

Expert sets are never materialised for all units at once: units are processed in chunks, each
chunk's masks become a small float32 matrix whose product counts intersections exactly (integers up
to 2²⁴ are exact in float32, and a chunk never has more units than that), accumulated in int64.
Jaccard of two empty sets is 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Similarity", "pairwise_similarity", "similarity_frame", "pair_table"]

_CHUNK_UNITS = 1 << 16


@dataclass
class Similarity:
    concepts: list[str]
    taus: list[float]
    intersections: dict[float, np.ndarray]
    sizes: dict[float, np.ndarray]
    cosine_ap: np.ndarray
    cosine_ap_centered: np.ndarray

    @property
    def jaccard(self) -> dict[float, np.ndarray]:
        result = {}
        for tau in self.taus:
            size = self.sizes[tau].astype(np.float64)
            union = size[:, None] + size[None, :] - self.intersections[tau]
            with np.errstate(invalid="ignore", divide="ignore"):
                result[tau] = np.where(union > 0, self.intersections[tau] / union, 0.0)
        return result


def pairwise_similarity(
    ap: np.ndarray,
    taus: Sequence[float],
    concepts: Sequence[str] | None = None,
    chunk_units: int = _CHUNK_UNITS,
) -> Similarity:
    """All-pairs expert overlap (per τ) and AP cosines for ``ap`` [concepts, units]."""
    n_concepts, n_units = ap.shape
    taus = [float(t) for t in taus]
    intersections = {t: np.zeros((n_concepts, n_concepts), np.int64) for t in taus}
    sizes = {t: np.zeros(n_concepts, np.int64) for t in taus}
    dots = np.zeros((n_concepts, n_concepts))
    dots_centered = np.zeros((n_concepts, n_concepts))
    for start in range(0, n_units, chunk_units):
        block = np.asarray(ap[:, start : start + chunk_units], dtype=np.float32)
        for tau in taus:
            mask = (block > tau).astype(np.float32)
            intersections[tau] += np.rint(mask @ mask.T).astype(np.int64)
            sizes[tau] += mask.sum(axis=1, dtype=np.int64)
        dots += (block @ block.T).astype(np.float64)
        centered = block - np.float32(0.5)
        dots_centered += (centered @ centered.T).astype(np.float64)

    def cosine(gram: np.ndarray) -> np.ndarray:
        norms = np.sqrt(np.clip(np.diag(gram), 0, None))
        with np.errstate(invalid="ignore", divide="ignore"):
            return gram / np.outer(norms, norms)

    names = list(concepts) if concepts is not None else [str(i) for i in range(n_concepts)]
    return Similarity(names, taus, intersections, sizes, cosine(dots), cosine(dots_centered))


def pair_table(
    concepts: Sequence[str], matrices: Iterable[tuple[str, float, np.ndarray]]
) -> pd.DataFrame:
    """Tidy table over unordered pairs (a < b) of ``concepts``: concept_a, concept_b, measure,
    tau, value, from ``(measure, tau, matrix [concepts, concepts])`` in the given order."""
    upper_a, upper_b = np.triu_indices(len(concepts), k=1)
    names = np.asarray(concepts, dtype=object)
    frames = [
        pd.DataFrame(
            {
                "concept_a": names[upper_a],
                "concept_b": names[upper_b],
                "measure": measure,
                "tau": tau,
                "value": matrix[upper_a, upper_b],
            }
        )
        for measure, tau, matrix in matrices
    ]
    return pd.concat(frames, ignore_index=True)


def similarity_frame(sim: Similarity) -> pd.DataFrame:
    """Tidy table over unordered pairs (a < b): concept_a, concept_b, measure, tau, value."""
    return pair_table(
        sim.concepts,
        [
            *(("jaccard", tau, matrix) for tau, matrix in sim.jaccard.items()),
            ("cosine_ap", np.nan, sim.cosine_ap),
            ("cosine_ap_centered", np.nan, sim.cosine_ap_centered),
        ],
    )
