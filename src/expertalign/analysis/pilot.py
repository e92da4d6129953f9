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
    # or responses computed on demand (only the rows the folds use run through the model):
    res = pilot.pilot_stability(lambda rows: run_model(texts[rows]), pools, negative_pool, ...)

    concepts = pilot.men_pilot_concepts(read_men(data_dir, "dev"), concept_of, n_pairs=50)

The paper's design (Sec. 4): concepts of ~50 MEN training-split pairs, each with its own large
pool of positives, positive sizes 100-500, negatives 1,000 / 2,000 from the other concepts'
sentences, 8 folds, stability between disjoint folds. Draws:

- positives: each concept's pool is permuted once (seeded); with ``disjoint=True`` fold f takes
  positions ``[f*P, (f+1)*P)`` of it, so folds share no sentence (needs k*P ≤ pool size); with
  ``disjoint=False`` fold f uses its own permutation and takes the first P. Either way a larger P
  extends a smaller one (nested sizes), which makes the size sweep less noisy.
- negatives: the negative pool is permuted once; with ``disjoint=True`` it is cut into k equal
  chunks and fold f uses chunk f, otherwise each fold has its own permutation. A concept's
  negatives are chosen from the rows of that ordering that are not in its own pool by the rule of
  the main workflow (:func:`expertalign.negatives.pick_negatives`): ``negatives_mode="shared"``
  takes the first N (all concepts of a fold share them), ``"per_concept"`` a sample seeded by
  ``seed``, the fold and the concept (the paper's per-concept negatives; nested sizes stay nested).

Within-concept Jaccard compares one concept's expert sets from two different folds (same
configuration); across-concept Jaccard compares two different concepts in the same fold. A useful
configuration has within ≫ across.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from expertalign.negatives import pick_negatives
from expertalign.stats import jaccard_matrix

__all__ = [
    "PilotResult",
    "fold_rows",
    "concept_fold_ap",
    "pilot_stability",
    "summarise_pilot",
    "men_pilot_concepts",
    "PILOT_N_BOOT",
]

#: Bootstrap resamples of the pilot's CIs (stability and set sizes), as the other figures' CIs.
PILOT_N_BOOT = 2000


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
    k: int,
    seed: int = 0,
    disjoint: bool = True,
    negatives_mode: str = "shared",
) -> dict[tuple[str, int], tuple[NDArray[np.intp], NDArray[np.intp]]]:
    """(concept, fold) -> (positive rows, negative rows), each in draw order, so that a prefix is
    a smaller set: the draw of :func:`pilot_stability`, whose largest sizes are ``n_positives``
    and ``n_negatives``. Too few negatives for any concept is an error before anything runs."""
    p = {c: np.asarray(v, dtype=np.intp) for c, v in pools.items()}
    neg_pool = np.asarray(negative_pool, dtype=np.intp)
    o = _draw(p, neg_pool, k, n_positives, disjoint, np.random.default_rng(seed))
    out = {}
    for c in p:
        own = set(p[c].tolist())
        for f in range(k):
            negs = _fold_negatives(o.negatives[f], own, n_negatives, c, f, negatives_mode, seed)
            out[(c, f)] = (o.positives[c][f][:n_positives], negs)
    return out


def _fold_negatives(
    order: NDArray[np.intp], own: set[int], n: int, concept: str, fold: int, mode: str, seed: int
) -> NDArray[np.intp]:
    """``n`` negatives of ``concept`` in fold ``fold``, in draw order (a prefix: a smaller draw)."""
    picked = pick_negatives(
        order.tolist(),
        n,
        concept,
        own=own,
        mode=mode,
        seed=seed,
        draw=("pilot-fold", fold),
        source=f"fold {fold}'s negative pool",
        hint="enlarge the negative pool, use fewer folds or disjoint=False",
    )
    return np.asarray(picked, dtype=np.intp)


RowResponses = Callable[[NDArray[np.intp]], Any]


def _row_source(responses: Any) -> tuple[RowResponses, int | None]:
    """``rows -> responses [len(rows), units]`` (a torch tensor) and the number of rows (None:
    unknown)."""
    import torch

    if callable(responses):

        def as_tensor(rows: NDArray[np.intp]) -> Any:
            out = responses(rows)
            return out if isinstance(out, torch.Tensor) else torch.from_numpy(np.asarray(out))

        return as_tensor, None

    if responses.ndim != 2:
        raise ValueError(
            f"responses must be [sentences, units], has shape {tuple(responses.shape)}"
        )
    # from_numpy shares memory even for strided views (e.g. a transposed matrix)
    t = responses if isinstance(responses, torch.Tensor) else torch.from_numpy(responses)
    return (lambda rows: t[torch.from_numpy(np.asarray(rows, dtype=np.int64))]), t.shape[0]


def concept_fold_ap(
    bank: Any, union: NDArray[np.intp], positives: Any, negatives: NDArray[np.intp]
) -> NDArray[np.float32]:
    """AP [units] of ``positives`` [P, units] against the rows ``negatives`` of a fold's sorted
    negatives ``bank`` (an :class:`expertalign.ap.SortedNegatives` of the rows ``union``, sorted
    ascending): every other row of the union is excluded."""
    import torch

    mine = np.zeros(union.size, dtype=bool)
    mine[np.searchsorted(union, negatives)] = True
    exclude = torch.from_numpy(np.flatnonzero(~mine))
    return bank.average_precision(positives, exclude=exclude).cpu().numpy().astype(np.float32)


def pilot_stability(
    responses: Any,
    pools: Mapping[str, ArrayLike],
    negative_pool: ArrayLike,
    *,
    n_positives: Iterable[int],
    n_negatives: Iterable[int],
    taus: Iterable[float],
    k: int,
    seed: int = 0,
    disjoint: bool = True,
    negatives_mode: str = "shared",
) -> PilotResult:
    """Repeat expert extraction over ``k`` folds for every (n_positives, n_negatives) pair.

    ``responses`` is a float array or torch tensor [sentences, units] (max-pooled responses; a
    transposed view is fine, only the rows of each fold are copied), or a function
    ``rows -> [len(rows), units]`` that computes them on demand: each fold asks once for its
    negatives and once per concept for that concept's positives, so with disjoint folds no
    sentence runs twice and memory holds one fold's negatives and one concept's positives.
    ``pools`` maps each sampled concept to the rows of its own sentences; ``negative_pool`` lists
    the rows that may serve as negatives (it may include the concepts' own rows, which are skipped
    for that concept). ``negatives_mode`` (``shared`` or ``per_concept``) chooses each concept's
    negatives among them as the main workflow does. See the module docstring for how folds are
    drawn.
    """
    from expertalign.ap import SortedNegatives

    pos_sizes = sorted({int(x) for x in n_positives})
    neg_sizes = sorted({int(x) for x in n_negatives})
    tau_list = sorted({float(t) for t in taus})
    if not pos_sizes or not neg_sizes or not tau_list:
        raise ValueError("n_positives, n_negatives and taus must each be non-empty")
    if min(pos_sizes) < 1 or min(neg_sizes) < 1:
        raise ValueError("set sizes must be >= 1")
    if k < 2:
        raise ValueError(f"k must be >= 2 to compare folds, not {k}")
    get_rows, n_rows = _row_source(responses)
    concepts = list(pools)
    if len(concepts) < 2:
        raise ValueError("need at least 2 concepts to compare across concepts")
    p = {c: np.asarray(v, dtype=np.intp) for c, v in pools.items()}
    neg_pool = np.asarray(negative_pool, dtype=np.intp)
    if n_rows is not None:
        for name, rows in [
            *((f"pool of {c!r}", r) for c, r in p.items()),
            ("negative_pool", neg_pool),
        ]:
            if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
                raise ValueError(f"{name} has row indices outside [0, {n_rows})")

    rows = fold_rows(p, neg_pool, pos_sizes[-1], neg_sizes[-1], k, seed, disjoint, negatives_mode)
    shape = (len(neg_sizes), len(pos_sizes), len(tau_list), k, len(concepts))
    packed: NDArray[np.uint8] | None = None
    n_units = 0
    for f in range(k):
        negs = {c: rows[(c, f)][1] for c in concepts}
        union = np.unique(np.concatenate(list(negs.values())))
        bank = SortedNegatives(get_rows(union))
        for j, c in enumerate(concepts):
            pos = get_rows(rows[(c, f)][0])
            n_units = int(pos.shape[1])
            for a, n_neg in enumerate(neg_sizes):
                for b, n_pos in enumerate(pos_sizes):
                    ap = concept_fold_ap(bank, union, pos[:n_pos], negs[c][:n_neg])
                    bits = np.packbits(ap[None, :] > np.asarray(tau_list)[:, None], axis=1)
                    if packed is None:
                        packed = np.zeros((*shape, bits.shape[1]), dtype=np.uint8)
                    packed[a, b, :, f, j] = bits
        del bank
    assert packed is not None
    pair_frames: list[pd.DataFrame] = []
    size_frames: list[pd.DataFrame] = []
    for a, n_neg in enumerate(neg_sizes):
        for b, n_pos in enumerate(pos_sizes):
            for t, tau in enumerate(tau_list):
                masks = np.unpackbits(packed[a, b, t], axis=-1, count=n_units).astype(bool)
                pairs, sizes = _compare(masks, concepts)
                keys = {"n_positives": n_pos, "n_negatives": n_neg, "tau": tau}
                pair_frames.append(pairs.assign(**keys))
                size_frames.append(sizes.assign(**keys))
    columns = ["n_positives", "n_negatives", "tau"]
    pairs_df = pd.concat(pair_frames, ignore_index=True)
    pairs_df = pairs_df[columns + [c for c in pairs_df.columns if c not in columns]]
    sizes_df = pd.concat(size_frames, ignore_index=True)
    sizes_df = sizes_df[columns + [c for c in sizes_df.columns if c not in columns]]
    return PilotResult(summarise_pilot(pairs_df, sizes_df), pairs_df, sizes_df)


def _compare(
    masks: NDArray[np.bool_], concepts: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Within-concept (across folds) and across-concept (within a fold) Jaccards of masks
    [k, concepts, units], and the set sizes."""
    k = masks.shape[0]
    rows = []
    for j, c in enumerate(concepts):
        jm = jaccard_matrix(masks[:, j, :])
        for a, b in zip(*np.triu_indices(k, 1)):
            rows.append(("within", c, c, int(a), int(b), jm[a, b]))
    for f in range(k):
        jm = jaccard_matrix(masks[f])
        for a, b in zip(*np.triu_indices(len(concepts), 1)):
            rows.append(("across", concepts[a], concepts[b], f, f, jm[a, b]))
    pairs = pd.DataFrame(
        rows, columns=["comparison", "concept_a", "concept_b", "fold_a", "fold_b", "jaccard"]
    )
    sizes = pd.DataFrame(
        {
            "fold": np.repeat(np.arange(k), len(concepts)),
            "concept": list(concepts) * k,
            "size": masks.sum(axis=2).reshape(-1),
        }
    )
    return pairs, sizes


def summarise_pilot(
    pairs: pd.DataFrame,
    sizes: pd.DataFrame | None = None,
    *,
    n_boot: int = PILOT_N_BOOT,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean/sd Jaccard per (n_positives, n_negatives, tau, comparison) with a 95% percentile-
    bootstrap CI of the mean over the compared pairs (``ci_low``, ``ci_high``: ``n_boot``
    resamples seeded by ``seed``, :func:`expertalign.stats.bootstrap_mean_ci`, as the paper's
    Fig. 1 draws), plus the within − across gap and, if ``sizes`` is given, the mean and median
    expert set size of the configuration."""
    from expertalign.stats import bootstrap_mean_ci

    keys = ["n_positives", "n_negatives", "tau"]
    grouped = pairs.groupby([*keys, "comparison"], sort=True)["jaccard"]
    g = grouped.agg(mean_jaccard="mean", sd_jaccard="std", n_pairs="size").reset_index()
    bounds = [bootstrap_mean_ci(v.to_numpy(), n_boot=n_boot, seed=seed)[1:] for _, v in grouped]
    g["ci_low"] = [low for low, _ in bounds]
    g["ci_high"] = [high for _, high in bounds]
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


def men_pilot_concepts(
    men: pd.DataFrame, concept_of: Mapping[str, str], n_pairs: int, seed: int = 0
) -> list[str]:
    """Concepts of ``n_pairs`` MEN pairs (``men``: word1, word2, e.g. the dev = training split)
    whose two words have concepts (``concept_of``: lower-case word -> concept id): the first
    ``n_pairs`` such pairs in one seeded order of *all* of ``men``'s pairs; both concepts of each
    pair, in pair order, each once.

    The order does not depend on the concept table, so adding a concept changes the sample only
    where a newly covered pair comes before the last one drawn (a campaign that grows its table
    keeps its pilot concepts, their pools and the pilot's results)."""
    w1 = men["word1"].astype(str).str.lower()
    w2 = men["word2"].astype(str).str.lower()
    ok = (w1.isin(concept_of) & w2.isin(concept_of) & (w1 != w2)).to_numpy()
    if ok.sum() < n_pairs:
        raise ValueError(
            f"only {int(ok.sum())} MEN pairs have both words among the concepts; "
            f"pilot.men_pairs asks for {n_pairs}"
        )
    order = np.random.default_rng(seed).permutation(len(men))
    chosen = np.sort([i for i in order if ok[i]][:n_pairs])
    words = [w for i in chosen for w in (w1.iloc[i], w2.iloc[i])]
    return list(dict.fromkeys(concept_of[w] for w in words))
