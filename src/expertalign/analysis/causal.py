"""Summary of the causal check (tables/causal.csv, tables/causal_overlap.csv and its figure).

    >>> from expertalign.analysis import causal as summary
    >>> concepts = summary.pair_concepts(men, concept_of, n_concepts=50, seed=0)
    >>> frame = pd.concat([pd.read_parquet(f) for f in job_files])  # expertalign.jobs.causal
    >>> table = summary.summarize(frame, judged_k=100)       # one row per source x model x set
    >>> overlap = summary.overlap(frame, judged_k=100)       # Spearman rho of cross-effect
    >>> summary.plot_causal(table, "results/figures/causal.png")

A job's table (:func:`expertalign.jobs.causal.causal`, one part of the check's concepts) holds
rows of five kinds (column ``record``): ``effect`` (one concept, unit set and draw: ``draw`` -1
is the experts, 0..n-1 the matched random sets), ``units`` (a concept's unit ids of one set),
``cross`` (ΔNLL of ``concept``'s word with ``ablated``'s top-k experts ablated, and the pair's
MEN score), ``split`` (each distinct positive sentence and its side) and ``skipped``. The pairs
(:func:`pairs`) are assembled here from all parts. Definitions: docs/ANALYSES.md, "Causal check
of the experts".
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "RUN_KEYS",
    "pair_concepts",
    "pairs",
    "summarize",
    "overlap",
    "plot_causal",
]

#: The columns that name one job: sentence source, model and checkpoint.
RUN_KEYS = ["source", "model", "revision"]


def pair_concepts(
    pairs: pd.DataFrame, concept_of: Mapping[str, str], n_concepts: int, seed: int = 0
) -> list[str]:
    """Both concepts of judged pairs (``pairs``: word1, word2), in one seeded order of all the
    pairs (``numpy.random.default_rng(seed)``), pair by pair while both fit in ``n_concepts``;
    a pair is used when both its words have concepts (``concept_of``: lower-case word ->
    concept). Refuses fewer than two concepts, naming the cause."""
    w1 = pairs["word1"].astype(str).str.lower().to_numpy()
    w2 = pairs["word2"].astype(str).str.lower().to_numpy()
    chosen: list[str] = []
    for i in np.random.default_rng(seed).permutation(len(pairs)):
        if w1[i] not in concept_of or w2[i] not in concept_of or w1[i] == w2[i]:
            continue
        new = [c for c in dict.fromkeys((concept_of[w1[i]], concept_of[w2[i]])) if c not in chosen]
        if len(chosen) + len(new) <= n_concepts:
            chosen.extend(new)
        if len(chosen) >= n_concepts:
            break
    if len(chosen) < 2:
        raise ValueError(
            f"causal check: {len(chosen)} concept(s) from the judged pairs; need pairs whose "
            "two words are both concepts of the table"
        )
    return chosen


def _paired(experts: np.ndarray, reference: np.ndarray, prefix: str, n_boot: int) -> dict:
    from expertalign.causal import paired_test

    keys = ["diff", "ci_low", "ci_high", "p"]
    ok = np.isfinite(experts) & np.isfinite(reference)
    if ok.sum() < 2:
        return {f"{prefix}_{k}": math.nan for k in keys}
    test = paired_test(experts[ok], reference[ok], n_boot=n_boot, seed=0)
    values = [test.mean_difference, test.ci_low, test.ci_high, test.p_value]
    return {f"{prefix}_{k}": v for k, v in zip(keys, values)}


def _cross_control(run: pd.DataFrame) -> pd.Series:
    """Per concept B, the median over A != B of cross[A, B] (another concept's experts)."""
    cross = run[(run["record"] == "cross") & (run["concept"] != run["ablated"])]
    return cross.groupby("concept")["delta_nll"].median()


def _set_rows(effects: pd.DataFrame, control: pd.Series | None, n_boot: int) -> dict:
    from expertalign.causal import share_beating_null

    experts = effects[effects["draw"] < 0].set_index("concept")
    null = effects[effects["draw"] >= 0]
    concepts = [c for c in experts.index if np.isfinite(experts.at[c, "delta_nll"])]
    concepts = [c for c in concepts if (null["concept"] == c).any()]
    row: dict = {"n_concepts": len(concepts), "n_units": float(experts["n_units"].mean())}
    if not concepts:
        return row
    row["n_draws"] = int(null.groupby("concept")["draw"].count().min())
    # the generations' numbers without any intervention, and the forced ones' perplexity
    for column, name in (
        ("base_naming_share", "naming_unmodified"),
        ("log_perplexity", "log_perplexity_experts"),
        ("base_log_perplexity", "log_perplexity_unmodified"),
    ):
        values = experts.loc[concepts].get(column, pd.Series(dtype=float)).to_numpy(float)
        row[name] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
    for measure, name in (
        ("delta_nll", "delta_nll"),
        ("naming_share", "naming"),
        ("delta_neutral_nll", "neutral"),
    ):
        own = experts.loc[concepts, measure].to_numpy(float)
        draws = null.pivot(index="concept", columns="draw", values=measure).loc[concepts]
        matrix = draws.to_numpy(float)
        row[f"{name}_experts"] = float(np.nanmean(own)) if np.isfinite(own).any() else math.nan
        if not np.isfinite(matrix).all() or not np.isfinite(own).all():
            continue
        row[f"{name}_null_median"] = float(np.median(matrix, axis=1).mean())
        row[f"{name}_null_p95"] = float(np.quantile(matrix, 0.95, axis=1).mean())
        row[f"{name}_null_p05"] = float(np.quantile(matrix, 0.05, axis=1).mean())
        row[f"{name}_share_beating_null"] = share_beating_null(own, matrix)
        row.update(_paired(own, np.median(matrix, axis=1), f"{name}_vs_null", n_boot))
    if control is not None:
        own = experts.loc[concepts, "delta_nll"].to_numpy(float)
        reference = control.reindex(concepts).to_numpy(float)
        row.update(_paired(own, reference, "delta_nll_vs_other", n_boot))
    return row


def _holds(row: Mapping, name: str) -> bool:
    """The pre-stated criterion: share beating the null >= 2/3, Wilcoxon p < 0.05, CI above 0."""
    share = row.get(f"{name}_share_beating_null", math.nan)
    p, low = row.get(f"{name}_vs_null_p", math.nan), row.get(f"{name}_vs_null_ci_low", math.nan)
    return bool(share >= 2 / 3 and p < 0.05 and low > 0)


def summarize(frame: pd.DataFrame, *, judged_k: int = 100, n_boot: int = 2000) -> pd.DataFrame:
    """One row per source x model x checkpoint x unit set: the experts' mean effects, the null's
    median, 5th and 95th percentiles (per concept, averaged over concepts), the share of concepts
    beating their own null's 95th percentile, paired tests against the null medians (and, at
    ``judged_k``, against the other concepts' experts), and at ``judged_k`` the pass criterion
    (``necessity_holds``, ``sufficiency_holds``)."""
    rows = []
    for key, run in frame.groupby(RUN_KEYS, sort=False):
        control = _cross_control(run)
        effects = run[run["record"] == "effect"]
        for name, group in effects.groupby("set", sort=False):
            first = group.iloc[0]
            judged = first["set_kind"] == "k" and int(first["set_value"]) == judged_k
            row = {
                **dict(zip(RUN_KEYS, key)),
                "set": name,
                "set_kind": first["set_kind"],
                "set_value": float(first["set_value"]),
                **_set_rows(group, control if judged else None, n_boot),
            }
            if judged:
                row["necessity_holds"] = _holds(row, "delta_nll")
                row["sufficiency_holds"] = _holds(row, "naming")
            rows.append(row)
    return pd.DataFrame(rows)


def _jaccard(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None:
        return math.nan
    union = np.union1d(a, b).size
    return np.intersect1d(a, b).size / union if union else math.nan


def pairs(run: pd.DataFrame) -> pd.DataFrame:
    """The pairs of one source x model x checkpoint (all its parts' rows): per unordered pair
    of checked concepts (in the check's order) and unit set, the Jaccard of their sets, the
    cross-effect (the mean of ΔNLL of B's word with A's experts ablated and of A's with B's)
    and the MEN score (NaN if not judged)."""
    cross = run[run["record"] == "cross"]
    units = run[run["record"] == "units"]
    columns = ["concept", "other", "set", "jaccard", "cross_effect", "men"]
    if cross.empty:
        return pd.DataFrame(columns=columns)
    effect = dict(zip(zip(cross["ablated"], cross["concept"]), cross["delta_nll"].astype(float)))
    men = dict(zip(zip(cross["ablated"], cross["concept"]), cross["men"].astype(float)))
    members = {
        (concept, name): np.asarray(ids, dtype=np.int64)
        for concept, name, ids in zip(units["concept"], units["set"], units["units"])
    }
    names = list(dict.fromkeys([cross["set"].iloc[0], *units["set"]]))
    checked = list(dict.fromkeys(cross["ablated"]))
    rows = []
    for i, a in enumerate(checked):
        for b in checked[i + 1 :]:
            if (a, b) not in effect or (b, a) not in effect:
                continue
            for name in names:
                rows.append(
                    {
                        "concept": a,
                        "other": b,
                        "set": name,
                        "jaccard": _jaccard(members.get((a, name)), members.get((b, name))),
                        "cross_effect": (effect[a, b] + effect[b, a]) / 2,
                        "men": men[a, b],
                    }
                )
    return pd.DataFrame(rows, columns=columns)


def overlap(frame: pd.DataFrame, *, judged_k: int = 100, n_boot: int = 2000) -> pd.DataFrame:
    """Per source x model x checkpoint: Spearman's rho (with a bootstrap CI over pairs,
    :func:`expertalign.stats.spearman_ci`) of the pairs' cross-effect with the Jaccard of each
    of their sets (``measure`` ``jaccard``, ``set`` k=... or tau=...) and with the MEN score
    (``measure`` ``men``, over the judged pairs); ``shared_use_holds`` at the top-``judged_k``
    Jaccard."""
    from expertalign.stats import spearman_ci

    rows = []
    for key, everything in frame.groupby(RUN_KEYS, sort=False):
        run = pairs(everything)
        top = f"k={judged_k}"
        tests = [("jaccard", name, group) for name, group in run.groupby("set", sort=False)]
        if (run["set"] == top).any():
            tests.append(("men", top, run[run["set"] == top]))
        for measure, name, group in tests:
            x = group["cross_effect"].to_numpy(float)
            y = group[measure].to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y)
            row = {
                **dict(zip(RUN_KEYS, key)),
                "measure": measure,
                "set": name,
                "n_pairs": int(ok.sum()),
            }
            if ok.sum() >= 3:
                result = spearman_ci(x[ok], y[ok], n_boot=n_boot, seed=0)
                row.update(
                    rho=result.rho, ci_low=result.ci_low, ci_high=result.ci_high, p=result.p_value
                )
            if measure == "jaccard" and name == top:
                row["shared_use_holds"] = bool(
                    row.get("rho", math.nan) > 0 and row.get("ci_low", math.nan) > 0
                )
            rows.append(row)
    columns = [
        *RUN_KEYS,
        "measure",
        "set",
        "n_pairs",
        "rho",
        "ci_low",
        "ci_high",
        "p",
        "shared_use_holds",
    ]
    return pd.DataFrame(rows).reindex(columns=columns)


def plot_causal(table: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """ΔNLL of the experts against k, one panel per model, a line per source, over the band of
    the matched random null (5th to 95th percentile, per concept, averaged over concepts)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from expertalign.analysis.figures import save_figure

    d = table[table["set_kind"] == "k"].sort_values("set_value")
    models = list(dict.fromkeys(d["model"])) or ["(none)"]
    fig, axes = plt.subplots(
        1, len(models), figsize=(max(4.0, 3.6 * len(models)), 3.8), squeeze=False
    )
    colors = plt.get_cmap("tab10")
    for ax, model in zip(axes[0], models):
        for i, (source, g) in enumerate(d[d["model"] == model].groupby("source", sort=False)):
            color = colors(i % 10)
            x = g["set_value"].to_numpy(float)
            if {"delta_nll_null_p05", "delta_nll_null_p95"} <= set(g.columns):
                ax.fill_between(
                    x, g["delta_nll_null_p05"], g["delta_nll_null_p95"], color=color, alpha=0.2
                )
            ax.plot(x, g["delta_nll_experts"], marker="o", color=color, label=f"{source}: experts")
        ax.axhline(0.0, color="grey", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("experts ablated (top k by selection AP)")
        ax.set_title(model)
        ax.legend(frameon=False, fontsize=8)
    axes[0][0].set_ylabel("ΔNLL of the word (nats per token)")
    return save_figure(
        fig, path, title="Ablating experts vs matched random units (band: null 5-95%)"
    )
