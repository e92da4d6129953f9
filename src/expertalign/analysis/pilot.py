"""Pilot: how stable are expert sets across folds, and how do they depend on set sizes?

Usage::

    from expertalign.analysis import pilot

    # responses: float [sentences, units] for a sample of concepts with large sentence pools
    # pools: concept -> row indices of its sentences; negative_pool: rows usable as negatives
    res = pilot.pilot_stability(responses, pools, negative_pool,
                                n_positives=(50, 100, 200), n_negatives=(500, 1000),
                                taus=(0.5, 0.7, 0.9), k=5, seed=0)
    res.summary   # n_positives, n_negatives, tau, comparison (within/across), mean_jaccard, ...
    res.pairs     # one row per compared pair of expert sets
    res.sizes     # n_positives, n_negatives, tau, fold, concept, size

Nothing is recomputed by the model: every fold is a re-indexing of ``responses``. Draws:

- positives: each concept's pool is permuted once (seeded); with ``disjoint=True`` fold f takes
  positions ``[f*P, (f+1)*P)`` of it, so folds share no sentence (needs k*P ≤ pool size); with
  ``disjoint=False`` fold f uses its own permutation and takes the first P. Either way a larger P
  extends a smaller one (nested sizes), which makes the size sweep less noisy.
- negatives: the negative pool is permuted once; with ``disjoint=True`` it is cut into k equal
  chunks and fold f uses chunk f, otherwise each fold has its own permutation. A concept's
  negatives are the first N rows of that ordering that are not in its own pool, as for the shared
  negative bank of the main workflow.

Within-concept Jaccard compares one concept's expert sets from two different folds (same
configuration); across-concept Jaccard compares two different concepts in the same fold. A useful
configuration has within ≫ across.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from expertalign.stats import jaccard_matrix

__all__ = ["PilotResult", "fold_rows", "pilot_stability", "summarise_pilot"]


@dataclass(frozen=True)
class PilotResult:
    summary: pd.DataFrame
    pairs: pd.DataFrame
    sizes: pd.DataFrame


@dataclass(frozen=True)
class _Orderings:
    positives: dict[str, list[NDArray[np.intp]]]  # concept -> per fold, ordered candidate rows
    negatives: list[NDArray[np.intp]]  # per fold, ordered candidate rows (own rows not yet removed)


def _draw(
    pools: Mapping[str, NDArray[np.intp]],
    negative_pool: NDArray[np.intp],
    k: int,
    max_pos: int,
    disjoint: bool,
    rng: np.random.Generator,
) -> _Orderings:
    pos: dict[str, list[NDArray[np.intp]]] = {}
    for concept, pool in pools.items():
        if disjoint:
            if k * max_pos > pool.size:
                raise ValueError(
                    f"concept {concept!r}: {k} disjoint folds of {max_pos} positives need "
                    f"{k * max_pos} sentences, the pool has {pool.size}; use fewer folds, "
                    "smaller n_positives or disjoint=False"
                )
            perm = rng.permutation(pool)
            pos[concept] = [perm[f * max_pos : (f + 1) * max_pos] for f in range(k)]
        else:
            if max_pos > pool.size:
                raise ValueError(
                    f"concept {concept!r}: n_positives={max_pos} exceeds its pool of {pool.size}"
                )
            pos[concept] = [rng.permutation(pool) for _ in range(k)]
    if disjoint:
        perm = rng.permutation(negative_pool)
        size = negative_pool.size // k
        neg = [perm[f * size : (f + 1) * size] for f in range(k)]
    else:
        neg = [rng.permutation(negative_pool) for _ in range(k)]
    return _Orderings(pos, neg)


def fold_rows(
    pools: Mapping[str, ArrayLike],
    negative_pool: ArrayLike,
    n_positives: int,
    n_negatives: int,
    k: int = 5,
    seed: int = 0,
    disjoint: bool = True,
) -> dict[tuple[str, int], tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """(concept, fold) -> (positive rows, negative rows) for one configuration, as drawn by
    :func:`pilot_stability` with the same seed and a sweep whose largest size is ``n_positives``."""
    p = {c: np.asarray(v, dtype=np.intp) for c, v in pools.items()}
    neg_pool = np.asarray(negative_pool, dtype=np.intp)
    o = _draw(p, neg_pool, k, n_positives, disjoint, np.random.default_rng(seed))
    out = {}
    for c in p:
        own = set(p[c].tolist())
        for f in range(k):
            negs = _first_not_in(o.negatives[f], own, n_negatives, c, f)
            out[(c, f)] = (o.positives[c][f][:n_positives], negs)
    return out


def _first_not_in(
    order: NDArray[np.intp], own: set[int], n: int, concept: str, fold: int
) -> NDArray[np.intp]:
    keep = np.fromiter((r not in own for r in order.tolist()), dtype=bool, count=order.size)
    rows = order[keep][:n]
    if rows.size < n:
        raise ValueError(
            f"concept {concept!r}, fold {fold}: only {rows.size} negatives available outside its "
            f"pool, need {n}; enlarge the negative pool, use fewer folds or disjoint=False"
        )
    return rows


def _ap_function() -> Any:
    try:
        from expertalign import average_precision

        return average_precision
    except ImportError:  # pragma: no cover - only while expertalign.ap is not importable
        from sklearn.metrics import average_precision_score

        def _sk(scores: Any, labels: Any) -> NDArray[np.float64]:
            s = np.asarray(scores)
            y = np.asarray(labels, dtype=bool)
            return np.array([average_precision_score(y, s[:, u]) for u in range(s.shape[1])])

        return _sk


def _fold_ap(
    responses: Any,
    positives: Mapping[str, NDArray[np.intp]],
    negatives: Mapping[str, NDArray[np.intp]],
    concepts: Sequence[str],
) -> NDArray[np.float32]:
    """AP [concepts, units] of one fold. Concepts of a fold draw their negatives from the same
    ordering, so they mostly share rows: sort the union once and exclude what a concept lacks."""
    n_units = responses.shape[1]
    out = np.empty((len(concepts), n_units), dtype=np.float32)
    try:
        import torch

        from expertalign.ap import SortedNegatives
    except ImportError:
        SortedNegatives = None  # noqa: N806
    if SortedNegatives is not None:
        # from_numpy shares memory even for strided views (e.g. a transposed matrix)
        t = responses if isinstance(responses, torch.Tensor) else torch.from_numpy(responses)
        union = np.unique(np.concatenate([negatives[c] for c in concepts]))
        position = {int(r): i for i, r in enumerate(union.tolist())}
        bank = SortedNegatives(t[torch.from_numpy(union)])
        for j, c in enumerate(concepts):
            mine = np.zeros(union.size, dtype=bool)
            mine[[position[int(r)] for r in negatives[c].tolist()]] = True
            exclude = torch.from_numpy(np.flatnonzero(~mine))
            ap = bank.average_precision(t[torch.from_numpy(positives[c])], exclude=exclude)
            out[j] = ap.cpu().numpy()
        return out
    ap_fn = _ap_function()
    r = np.asarray(responses)
    for j, c in enumerate(concepts):
        rows = np.concatenate([positives[c], negatives[c]])
        labels = np.zeros(rows.size, dtype=bool)
        labels[: positives[c].size] = True
        out[j] = np.asarray(ap_fn(r[rows], labels), dtype=np.float32)
    return out


def pilot_stability(
    responses: Any,
    pools: Mapping[str, ArrayLike],
    negative_pool: ArrayLike,
    n_positives: Iterable[int] = (50, 100, 200),
    n_negatives: Iterable[int] = (500, 1000),
    taus: Iterable[float] = (0.5, 0.6, 0.7, 0.8, 0.9),
    k: int = 5,
    seed: int = 0,
    disjoint: bool = True,
) -> PilotResult:
    """Repeat expert extraction over ``k`` folds for every (n_positives, n_negatives) pair.

    ``responses`` is a float array or torch tensor [sentences, units] (max-pooled responses; a
    transposed view is fine, only the rows of each fold are copied);
    ``pools`` maps each sampled concept to the rows of its own sentences; ``negative_pool`` lists
    the rows that may serve as negatives (it may include the concepts' own rows, which are skipped
    for that concept). See the module docstring for how folds are drawn.
    """
    pos_sizes = sorted({int(x) for x in n_positives})
    neg_sizes = sorted({int(x) for x in n_negatives})
    tau_list = sorted({float(t) for t in taus})
    if not pos_sizes or not neg_sizes or not tau_list:
        raise ValueError("n_positives, n_negatives and taus must each be non-empty")
    if min(pos_sizes) < 1 or min(neg_sizes) < 1:
        raise ValueError("set sizes must be >= 1")
    if k < 2:
        raise ValueError(f"k must be >= 2 to compare folds, not {k}")
    if responses.ndim != 2:
        raise ValueError(
            f"responses must be [sentences, units], has shape {tuple(responses.shape)}"
        )
    n_rows = responses.shape[0]
    concepts = list(pools)
    if len(concepts) < 2:
        raise ValueError("need at least 2 concepts to compare across concepts")
    p = {c: np.asarray(v, dtype=np.intp) for c, v in pools.items()}
    neg_pool = np.asarray(negative_pool, dtype=np.intp)
    for name, rows in [*((f"pool of {c!r}", r) for c, r in p.items()), ("negative_pool", neg_pool)]:
        if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
            raise ValueError(f"{name} has row indices outside [0, {n_rows})")

    o = _draw(p, neg_pool, k, max(pos_sizes), disjoint, np.random.default_rng(seed))
    own = {c: set(p[c].tolist()) for c in concepts}
    pair_frames: list[pd.DataFrame] = []
    size_frames: list[pd.DataFrame] = []
    iu_f = np.triu_indices(k, 1)
    iu_c = np.triu_indices(len(concepts), 1)
    for n_neg in neg_sizes:
        negs = [
            {c: _first_not_in(o.negatives[f], own[c], n_neg, c, f) for c in concepts}
            for f in range(k)
        ]
        for n_pos in pos_sizes:
            ap = np.stack(
                [
                    _fold_ap(
                        responses, {c: o.positives[c][f][:n_pos] for c in concepts}, negs[f],
                        concepts,
                    )
                    for f in range(k)
                ]
            )  # [k, concepts, units]
            for tau in tau_list:
                masks = ap > tau
                sizes = masks.sum(axis=2)  # [k, concepts]
                size_frames.append(
                    pd.DataFrame(
                        {
                            "n_positives": n_pos, "n_negatives": n_neg, "tau": tau,
                            "fold": np.repeat(np.arange(k), len(concepts)),
                            "concept": concepts * k, "size": sizes.reshape(-1),
                        }
                    )
                )
                rows = []
                for j, c in enumerate(concepts):
                    jm = jaccard_matrix(masks[:, j, :])
                    for a, b in zip(*iu_f):
                        rows.append(("within", c, c, int(a), int(b), jm[a, b]))
                for f in range(k):
                    jm = jaccard_matrix(masks[f])
                    for a, b in zip(*iu_c):
                        rows.append(("across", concepts[a], concepts[b], f, f, jm[a, b]))
                df = pd.DataFrame(
                    rows, columns=["comparison", "concept_a", "concept_b", "fold_a", "fold_b",
                                   "jaccard"]
                )
                df.insert(0, "tau", tau)
                df.insert(0, "n_negatives", n_neg)
                df.insert(0, "n_positives", n_pos)
                pair_frames.append(df)
    pairs = pd.concat(pair_frames, ignore_index=True)
    sizes_df = pd.concat(size_frames, ignore_index=True)
    return PilotResult(summarise_pilot(pairs, sizes_df), pairs, sizes_df)


def summarise_pilot(pairs: pd.DataFrame, sizes: pd.DataFrame | None = None) -> pd.DataFrame:
    """Mean/sd Jaccard per (n_positives, n_negatives, tau, comparison), plus the within − across
    gap and, if ``sizes`` is given, the mean and median expert set size of the configuration."""
    keys = ["n_positives", "n_negatives", "tau"]
    g = (
        pairs.groupby([*keys, "comparison"], sort=True)["jaccard"]
        .agg(mean_jaccard="mean", sd_jaccard="std", n_pairs="size")
        .reset_index()
    )
    wide = g.pivot(index=keys, columns="comparison", values="mean_jaccard")
    gap = (wide.get("within") - wide.get("across")).rename("within_minus_across").reset_index()
    out = g.merge(gap, on=keys, how="left")
    if sizes is not None:
        s = (
            sizes.groupby(keys)["size"]
            .agg(
                mean_size="mean",
                median_size="median",
                share_empty=lambda x: float((x == 0).mean()),
            )
            .reset_index()
        )
        out = out.merge(s, on=keys, how="left")
    return out
