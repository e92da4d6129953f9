"""Development of expert sets across training checkpoints: size, stability and location.

Usage::

    from expertalign.analysis import development as dev

    # one (model, checkpoint) at a time keeps memory to one or two AP matrices
    sizes = pd.concat([dev.concept_set_sizes(ap, taus=(0.5, 0.7), model=m, checkpoint=c)
                       for (m, c), ap in runs.items()])
    summary = dev.summarise_set_sizes(sizes, n_boot=1000, seed=0)
    #   model, checkpoint, tau, n_concepts, mean_size, ci_low, ci_high, median_size, ...

    order = dev.checkpoint_order(["step1000", "step143000", "step512"])
    stab = dev.consecutive_jaccard(ap_prev, ap_next, taus=(0.5,), concepts=names)  # per concept
    stab_all = dev.development_stability(load_ap, {"pythia-70m": order}, taus=(0.5,))

    counts = dev.unit_expert_counts(ap, taus=(0.5,))        # {tau: int [units]}
    by_kind = dev.expert_distribution(counts, units, n_concepts=ap.shape[0], by=("kind",))
    by_depth = dev.expert_distribution(counts, units, n_concepts, by=("depth_bin",), n_depth_bins=4)

Every function taking ``ap`` also takes an :class:`expertalign.apmatrix.APMatrix`, which it reads
by column blocks and packed masks instead of loading it, so memory stays far below the AP files'
size (the workflow passes APMatrix).

Normalisation in :func:`expert_distribution`: ``share_of_units`` is the mean over concepts of the
fraction of the group's units that are experts (experts in group / units in group), so groups of
different sizes (attention vs MLP, short vs long layers) are comparable; ``share_of_experts`` is the
group's share of all (concept, expert-unit) incidences.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from expertalign.apmatrix import APMatrix, PackedMasks, packed_jaccard
from expertalign.stats import jaccard_rows

__all__ = [
    "checkpoint_order",
    "concept_set_sizes",
    "summarise_set_sizes",
    "consecutive_jaccard",
    "development_stability",
    "unit_expert_counts",
    "expert_distribution",
    "add_depth",
]

_STEP = re.compile(r"(\d+)")


def _step_key(name: str) -> tuple[int, int, str]:
    # Pythia-style "step143000"; names without a number (e.g. "main", "final") sort last
    m = _STEP.findall(str(name))
    if not m:
        return (1, 0, str(name))
    return (0, int(m[-1]), str(name))


def checkpoint_order(names: Iterable[str]) -> list[str]:
    """Distinct checkpoint names sorted by their (last) number; names without one come last."""
    return sorted(dict.fromkeys(str(n) for n in names), key=_step_key)


def _as_ap(ap: ArrayLike | APMatrix) -> NDArray[np.floating] | APMatrix:
    if isinstance(ap, APMatrix):
        return ap
    a = np.asarray(ap)
    if a.ndim != 2:
        raise ValueError(f"AP must be 2-D [concepts, units], has shape {a.shape}")
    return a


def _taus(taus: Iterable[float]) -> list[float]:
    out = [float(t) for t in taus]
    if not out:
        raise ValueError("taus is empty")
    return out


def concept_set_sizes(
    ap: ArrayLike,
    taus: Iterable[float],
    concepts: Sequence[str] | None = None,
    model: str | None = None,
    checkpoint: str | None = None,
) -> pd.DataFrame:
    """Expert set size of every concept at every τ (experts: AP > τ).

    Returns columns ``[model, checkpoint,] tau, concept, size, n_units`` (model/checkpoint only
    when given).
    """
    a = _as_ap(ap)
    names = list(concepts) if concepts is not None else [str(i) for i in range(a.shape[0])]
    if len(names) != a.shape[0]:
        raise ValueError(f"{len(names)} concept names for {a.shape[0]} AP rows")
    frames = []
    for tau in _taus(taus):
        frames.append(
            pd.DataFrame(
                {"tau": tau, "concept": names, "size": _sizes(a, tau), "n_units": a.shape[1]}
            )
        )
    out = pd.concat(frames, ignore_index=True)
    if checkpoint is not None:
        out.insert(0, "checkpoint", checkpoint)
    if model is not None:
        out.insert(0, "model", model)
    return out


def _mode(values: NDArray[np.float64]) -> float:
    """The most frequent value (the smallest of several equally frequent ones)."""
    uniq, counts = np.unique(values, return_counts=True)
    return float(uniq[np.argmax(counts)])


def summarise_set_sizes(
    sizes: pd.DataFrame, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Mean set size per (model, checkpoint, tau) with a percentile bootstrap CI over concepts.

    ``sizes`` is the output of :func:`concept_set_sizes` (grouping uses whichever of model,
    checkpoint, tau are present). Also gives the median, the mode (``mode_size``: the most
    frequent set size, the smallest if several; the paper reports a mode of 0 experts for
    random-init models), the share of concepts with no expert (``share_empty``) and the mean size
    as a fraction of the model's units.
    """
    keys = [k for k in ("model", "checkpoint", "tau") if k in sizes.columns]
    missing = [c for c in ("tau", "size") if c not in sizes.columns]
    if missing:
        raise ValueError(f"sizes lacks column(s) {missing}")
    rng = np.random.default_rng(seed)
    alpha = (1.0 - level) / 2.0
    rows = []
    for key, g in sizes.groupby(keys, sort=False):
        s = g["size"].to_numpy(dtype=np.float64)
        boots = s[rng.integers(0, s.size, size=(n_boot, s.size))].mean(axis=1)
        lo, hi = np.quantile(boots, [alpha, 1 - alpha])
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row.update(
            n_concepts=int(s.size),
            mean_size=float(s.mean()),
            ci_low=float(lo),
            ci_high=float(hi),
            median_size=float(np.median(s)),
            mode_size=float(_mode(s)),
            share_empty=float((s == 0).mean()),
        )
        if "n_units" in g.columns:
            row["mean_fraction_of_units"] = float(s.mean() / g["n_units"].iloc[0])
        rows.append(row)
    out = pd.DataFrame(rows)
    if "checkpoint" in out.columns:
        rank = {c: i for i, c in enumerate(checkpoint_order(out["checkpoint"]))}
        out = out.sort_values(
            [k for k in ("model",) if k in out.columns] + ["checkpoint", "tau"],
            key=lambda c: c.map(rank) if c.name == "checkpoint" else c,
            kind="stable",
        ).reset_index(drop=True)
    return out


def consecutive_jaccard(
    ap_from: ArrayLike,
    ap_to: ArrayLike,
    taus: Iterable[float],
    concepts: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Jaccard of each concept's expert set at one checkpoint with its set at the next.

    Rows of the two AP matrices must be the same concepts in the same order, columns the same
    units. Returns ``tau, concept, jaccard, size_from, size_to`` (Jaccard 0 when both are empty).
    """
    a, b = _as_ap(ap_from), _as_ap(ap_to)
    if a.shape != b.shape:
        raise ValueError(f"AP shapes differ between checkpoints: {a.shape} vs {b.shape}")
    names = list(concepts) if concepts is not None else [str(i) for i in range(a.shape[0])]
    if len(names) != a.shape[0]:
        raise ValueError(f"{len(names)} concept names for {a.shape[0]} AP rows")
    frames = []
    for tau in _taus(taus):
        if isinstance(a, APMatrix) or isinstance(b, APMatrix):
            jaccard, size_from, size_to = _packed_jaccard(a, b, tau)
        else:
            ma, mb = a > tau, b > tau
            jaccard, size_from, size_to = jaccard_rows(ma, mb), ma.sum(axis=1), mb.sum(axis=1)
        frames.append(
            pd.DataFrame(
                {
                    "tau": tau,
                    "concept": names,
                    "jaccard": jaccard,
                    "size_from": size_from,
                    "size_to": size_to,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def development_stability(
    load_ap: Callable[[str, str], ArrayLike],
    checkpoints: Mapping[str, Sequence[str]],
    taus: Iterable[float],
    concepts: Sequence[str] | None = None,
) -> pd.DataFrame:
    """:func:`consecutive_jaccard` over each model's checkpoints, holding two AP matrices at once.

    ``checkpoints`` maps model → checkpoint names in training order (see :func:`checkpoint_order`);
    ``load_ap(model, checkpoint)`` returns that run's AP [concepts, units]. Returns
    ``model, checkpoint_from, checkpoint_to, tau, concept, jaccard, size_from, size_to``.
    """
    taus = _taus(taus)
    frames = []
    for model, order in checkpoints.items():
        order = list(order)
        if len(order) < 2:
            continue
        prev = _as_ap(load_ap(model, order[0]))
        for ckpt_from, ckpt_to in zip(order[:-1], order[1:]):
            nxt = _as_ap(load_ap(model, ckpt_to))
            df = consecutive_jaccard(prev, nxt, taus, concepts)
            df.insert(0, "checkpoint_to", ckpt_to)
            df.insert(0, "checkpoint_from", ckpt_from)
            df.insert(0, "model", model)
            frames.append(df)
            prev = nxt
    if not frames:
        return pd.DataFrame(
            columns=[
                "model",
                "checkpoint_from",
                "checkpoint_to",
                "tau",
                "concept",
                "jaccard",
                "size_from",
                "size_to",
            ]
        )
    return pd.concat(frames, ignore_index=True)


def unit_expert_counts(
    ap: ArrayLike | APMatrix,
    taus: Iterable[float],
    rows: ArrayLike | None = None,
) -> dict[float, NDArray[np.int64]]:
    """For each τ, how many concepts (of ``rows``, default all) each unit is an expert for
    (int [units])."""
    a = _as_ap(ap)
    taus = _taus(taus)
    if not isinstance(a, APMatrix):
        picked = a if rows is None else a[np.asarray(rows, dtype=np.intp)]
        return {tau: (picked > tau).sum(axis=0).astype(np.int64) for tau in taus}
    counts = {tau: np.zeros(a.shape[1], np.int64) for tau in taus}
    for columns, block in a.column_blocks():
        picked = block if rows is None else block[np.asarray(rows, dtype=np.intp)]
        for tau in taus:
            counts[tau][columns] = (picked > tau).sum(axis=0)
    return counts


def _sizes(a: NDArray[np.floating] | APMatrix, tau: float) -> NDArray[np.int64]:
    if isinstance(a, APMatrix):
        return a.packed_masks(tau).sizes()
    return (a > tau).sum(axis=1)


def _packed_jaccard(a, b, tau: float) -> tuple[NDArray, NDArray, NDArray]:
    """Row-wise Jaccard of two runs' expert sets from packed masks (one τ's masks at a time)."""
    pa = a.packed_masks(tau) if isinstance(a, APMatrix) else PackedMasks.pack(a > tau)
    pb = b.packed_masks(tau) if isinstance(b, APMatrix) else PackedMasks.pack(b > tau)
    return packed_jaccard(pa.bits, pb.bits), pa.sizes(), pb.sizes()


def add_depth(
    units: pd.DataFrame, n_layers: int | None = None, n_depth_bins: int = 4
) -> pd.DataFrame:
    """Copy of ``units`` with ``depth`` = layer / n_layers in [0, 1) and ``depth_bin`` labels.

    ``n_layers`` defaults to max(layer) + 1. Bins are equal-width on relative depth, labelled
    ``"0.00-0.25"`` etc., so models with different depths can be compared.
    """
    if "layer" not in units.columns:
        raise ValueError(f"units lacks column 'layer'; has {list(units.columns)}")
    if n_depth_bins < 1:
        raise ValueError(f"n_depth_bins must be >= 1, not {n_depth_bins}")
    out = units.copy()
    layer = out["layer"].to_numpy(dtype=np.float64)
    n = float(n_layers) if n_layers is not None else float(layer.max() + 1)
    if (layer < 0).any() or (layer >= n).any():
        raise ValueError(f"layers must lie in [0, {n:g}); found {layer.min():g}..{layer.max():g}")
    out["depth"] = layer / n
    edges = np.linspace(0.0, 1.0, n_depth_bins + 1)
    labels = [f"{edges[i]:.2f}-{edges[i + 1]:.2f}" for i in range(n_depth_bins)]
    idx = np.minimum((out["depth"].to_numpy() * n_depth_bins).astype(int), n_depth_bins - 1)
    out["depth_bin"] = pd.Categorical.from_codes(idx, categories=labels, ordered=True)
    return out


def expert_distribution(
    counts: Mapping[float, ArrayLike],
    units: pd.DataFrame,
    n_concepts: int,
    by: Sequence[str] = ("kind",),
    n_layers: int | None = None,
    n_depth_bins: int = 4,
) -> pd.DataFrame:
    """Experts per group of units (module kind, submodule, layer, depth bin, or combinations).

    ``counts`` is :func:`unit_expert_counts`; ``units`` has one row per unit with ``unit`` the
    column index into the AP vectors. ``by`` names columns of ``units`` or ``depth``/``depth_bin``
    (added by :func:`add_depth`). Returns ``tau, *by, n_units, expert_incidences,
    mean_experts_per_concept, share_of_units, share_of_experts`` where ``share_of_units`` =
    incidences / (n_units × n_concepts) and ``share_of_experts`` = incidences / all incidences.
    """
    if n_concepts < 1:
        raise ValueError(f"n_concepts must be >= 1, not {n_concepts}")
    by = list(by)
    u = units
    if any(b in ("depth", "depth_bin") for b in by):
        u = add_depth(units, n_layers=n_layers, n_depth_bins=n_depth_bins)
    missing = [c for c in ["unit", *by] if c not in u.columns]
    if missing:
        raise ValueError(f"units lacks column(s) {missing}; has {list(u.columns)}")
    unit_ids = u["unit"].to_numpy(dtype=np.int64)
    frames = []
    for tau, c in counts.items():
        c = np.asarray(c)
        if unit_ids.size and (unit_ids.min() < 0 or unit_ids.max() >= c.size):
            raise ValueError(f"unit ids exceed the {c.size} columns of the AP vectors")
        df = u[by].copy()
        df["_count"] = c[unit_ids]
        g = df.groupby(by, observed=True, sort=True)["_count"].agg(["size", "sum"]).reset_index()
        g = g.rename(columns={"size": "n_units", "sum": "expert_incidences"})
        total = float(g["expert_incidences"].sum())
        g["mean_experts_per_concept"] = g["expert_incidences"] / n_concepts
        g["share_of_units"] = g["expert_incidences"] / (g["n_units"] * n_concepts)
        g["share_of_experts"] = g["expert_incidences"] / total if total > 0 else np.nan
        g.insert(0, "tau", float(tau))
        frames.append(g)
    return pd.concat(frames, ignore_index=True)
