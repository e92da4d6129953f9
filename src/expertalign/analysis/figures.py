"""Figures (matplotlib, Agg) written atomically as PNG from tidy DataFrames.

Usage::

    from expertalign.analysis import figures

    figures.plot_alignment_by_checkpoint(align, "results/figures/alignment.png", reference=0.84)
    #   align: model, checkpoint, tau, rho, ci_low, ci_high   (one row per point)
    figures.plot_baselines(base, "results/figures/baselines.png", reference=0.84)
    #   base: method, rho, ci_low, ci_high [, model]
    figures.plot_spp_overlap(pairs, "results/figures/spp.png")
    #   pairs: level (none/weak/strong), overlap [, model]
    figures.plot_set_sizes(sizes, "results/figures/set_sizes.png")
    #   sizes: model, checkpoint, tau, mean_size, ci_low, ci_high  (development.summarise_set_sizes)
    figures.plot_pilot(summary, "results/figures/pilot.png")
    #   summary: n_positives, n_negatives, tau, comparison, mean_jaccard [, ci_low, ci_high]
    figures.plot_pilot_set_sizes(sizes, "results/figures/pilot_set_sizes.png")
    #   sizes: n_positives, n_negatives, tau, fold, concept, size   (pilot.PilotResult.sizes)

Figures of development across checkpoints (stability, experts by kind, layer and sub-module) are
in :mod:`expertalign.analysis.development_figures`. Every function returns the path it wrote.
The PNG is written through :func:`expertalign.atomic.atomic_path` (temporary file in the same
folder, fsync, the umask's mode, rename), so a reader never sees a half-written file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written by batch jobs without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from expertalign.analysis.development import checkpoint_order  # noqa: E402
from expertalign.analysis.spp import LEVELS  # noqa: E402
from expertalign.atomic import atomic_path  # noqa: E402

__all__ = [
    "save_figure",
    "plot_alignment_by_checkpoint",
    "plot_baselines",
    "plot_spp_overlap",
    "plot_set_sizes",
    "plot_pilot",
    "pilot_set_size_summary",
    "plot_pilot_set_sizes",
]


_STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def save_figure(fig: Figure, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Write ``fig`` to ``path`` as PNG atomically and close it; with ``title``, first give it
    that title and lay it out tightly."""
    if title is not None:
        fig.suptitle(title)
        fig.tight_layout()
    out = Path(path)
    try:
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return out


def legend_below(fig: Figure, handles: list, labels: list, max_columns: int) -> None:
    """One legend for all panels, centred under them."""
    fig.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=min(len(labels), max_columns),
        frameon=False,
    )


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: DataFrame lacks column(s) {missing}; has {list(df.columns)}")
    if df.empty:
        raise ValueError(f"{what}: DataFrame is empty")


def panel_row(n: int, width: float = 3.6) -> tuple[Figure, np.ndarray]:
    """A row of ``n`` panels sharing the y axis (call inside the style context)."""
    return plt.subplots(1, n, figsize=(max(4.0, width * n), 3.8), sharey=True, squeeze=False)


def in_checkpoint_order(g: pd.DataFrame, pos: dict[str, int]) -> pd.DataFrame:
    """Rows sorted by training step, with their x position (``pos``: checkpoint → index)."""
    return g.assign(_x=g["checkpoint"].map(pos)).sort_values("_x")


def _colors(names: Sequence[str]) -> dict[str, tuple[float, float, float, float]]:
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def plot_alignment_by_checkpoint(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    reference: float | None,
    title: str = "Alignment of expert overlap with MEN across training",
    ylabel: str = "Spearman ρ (expert Jaccard vs MEN)",
) -> Path:
    """One panel per τ; x = checkpoints in training order (evenly spaced, so log-like for
    Pythia's doubling early steps), one line per model with its CI band, dashed inter-human line.
    """
    _require(df, ["model", "checkpoint", "tau", "rho", "ci_low", "ci_high"], "alignment")
    order = checkpoint_order(df["checkpoint"])
    pos = {c: i for i, c in enumerate(order)}
    taus = sorted(df["tau"].unique())
    models = list(dict.fromkeys(df["model"]))
    colors = _colors(models)
    with plt.rc_context(_STYLE):
        fig, axes = panel_row(len(taus))
        for ax, tau in zip(axes[0], taus):
            for model in models:
                g = df[(df["tau"] == tau) & (df["model"] == model)]
                if g.empty:
                    continue
                g = in_checkpoint_order(g, pos)
                ax.plot(
                    g["_x"], g["rho"], marker="o", ms=3, lw=1.5, color=colors[model], label=model
                )
                ax.fill_between(
                    g["_x"], g["ci_low"], g["ci_high"], color=colors[model], alpha=0.2, lw=0
                )
                # a band is invisible for a single checkpoint: draw its CI as an error bar,
                # centred on the interval (a bootstrap CI need not contain ρ itself)
                ax.errorbar(
                    g["_x"],
                    (g["ci_low"] + g["ci_high"]) / 2,
                    yerr=(g["ci_high"] - g["ci_low"]) / 2,
                    fmt="none",
                    ecolor=colors[model],
                    elinewidth=1,
                    capsize=3,
                )
            if reference is not None:
                ax.axhline(reference, ls="--", color="0.3", lw=1, label="inter-human")
            ax.set_title(f"τ = {tau:g}")
            ax.set_xticks(range(len(order)))
            ax.set_xticklabels(order, rotation=60, ha="right")
            ax.set_xlabel("checkpoint")
            ax.grid(axis="y", alpha=0.3)
        axes[0][0].set_ylabel(ylabel)
        handles, labels = axes[0][0].get_legend_handles_labels()
        for ax in axes[0][1:]:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                if lab not in labels:
                    handles.append(h)
                    labels.append(lab)
        legend_below(fig, handles, labels, max_columns=6)
        return save_figure(fig, path, title)


def plot_baselines(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    reference: float | None,
    title: str = "Expert overlap vs baselines (MEN test)",
    ylabel: str = "Spearman ρ with MEN",
    colors: Mapping[str, object] | None = None,
) -> Path:
    """Grouped bars: one group per model (or one group), one bar per method (in order of first
    appearance), CI error bars; ``colors``: method → colour for some methods (the others take
    tab10's colours)."""
    _require(df, ["method", "rho", "ci_low", "ci_high"], "baselines")
    d = df.copy()
    if "model" not in d.columns:
        d["model"] = ""
    models = list(dict.fromkeys(d["model"]))
    methods = list(dict.fromkeys(d["method"]))
    given = dict(colors or {})
    palette = {**_colors([m for m in methods if m not in given]), **given}
    width = 0.8 / len(methods)
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(max(5.0, 1.2 + 0.5 * len(models) * len(methods)), 4.0))
        for j, method in enumerate(methods):
            xs, ys, lo, hi = [], [], [], []
            for i, model in enumerate(models):
                g = d[(d["model"] == model) & (d["method"] == method)]
                if g.empty:
                    continue
                if len(g) > 1:
                    raise ValueError(
                        f"baselines: several rows for model {model!r}, method {method!r}"
                    )
                r = g.iloc[0]
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(r["rho"])
                lo.append(r["ci_low"])
                hi.append(r["ci_high"])
            ax.bar(xs, ys, width=width * 0.95, color=palette[method], label=method)
            # the CI as drawn from its ends: a bootstrap CI need not contain ρ itself
            ax.errorbar(
                xs,
                (np.array(lo) + np.array(hi)) / 2,
                yerr=(np.array(hi) - np.array(lo)) / 2,
                fmt="none",
                ecolor="black",
                elinewidth=1,
                capsize=3,
            )
        if reference is not None:
            ax.axhline(reference, ls="--", color="0.3", lw=1, label="inter-human")
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xticks(range(len(models)))
        # "model checkpoint" labels side by side collide; one line each keeps them apart.
        labels = [str(m).replace(" ", "\n", 1) for m in models]
        ax.set_xticklabels(
            labels,
            rotation=30 if len(models) > 3 else 0,
            ha="right" if len(models) > 3 else "center",
        )
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        fig.tight_layout()
        return save_figure(fig, path)


def plot_spp_overlap(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    value: str = "overlap",
    title: str = "Expert overlap by SPP relation level",
    ylabel: str = "expert overlap (Jaccard), mean, 95% bootstrap CI",
    caption: str | None = None,
) -> Path:
    """Mean overlap per level (none → weak → strong) with 95% percentile-bootstrap CIs (2,000
    resamples, seed 0), one line per model."""
    _require(df, ["level", value], "spp")
    d = df.copy()
    if "model" not in d.columns:
        d["model"] = ""
    unknown = set(d["level"]) - set(LEVELS)
    if unknown:
        raise ValueError(f"spp: unknown level(s) {sorted(unknown)}; expected {LEVELS}")
    levels = [lv for lv in LEVELS if lv in set(d["level"])]
    models = list(dict.fromkeys(d["model"]))
    colors = _colors(models)
    from expertalign.stats import bootstrap_mean_ci

    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(5.0, 4.0))
        offsets = np.linspace(-0.15, 0.15, len(models)) if len(models) > 1 else [0.0]
        for off, model in zip(offsets, models):
            means, below, above = [], [], []
            for lv in levels:
                v = d.loc[(d["model"] == model) & (d["level"] == lv), value].to_numpy(float)
                mean, low, high = bootstrap_mean_ci(v)
                means.append(mean)
                below.append(mean - low)
                above.append(high - mean)
            xs = np.arange(len(levels)) + off
            ax.errorbar(
                xs,
                means,
                yerr=[below, above],
                marker="o",
                capsize=3,
                color=colors[model],
                label=model or None,
            )
        ax.set_xticks(range(len(levels)))
        ax.set_xticklabels(levels)
        ax.set_xlabel("relation level")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        if len(models) > 1 or models[0]:
            ax.legend(frameon=False)
        if caption:
            fig.text(0.01, -0.02, caption, fontsize=8, wrap=True, va="top")
        fig.tight_layout()
        return save_figure(fig, path)


def plot_set_sizes(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    title: str = "Expert set size across training",
    ylabel: str = "experts per concept (mean, log scale)",
) -> Path:
    """One panel per model; x = checkpoint in training order, one line per τ with its CI, log y."""
    _require(df, ["model", "checkpoint", "tau", "mean_size", "ci_low", "ci_high"], "set sizes")
    order = checkpoint_order(df["checkpoint"])
    pos = {c: i for i, c in enumerate(order)}
    models = list(dict.fromkeys(df["model"]))
    taus = sorted(df["tau"].unique())
    cmap = plt.get_cmap("viridis")
    colors = {t: cmap(i / max(1, len(taus) - 1)) for i, t in enumerate(taus)}
    with plt.rc_context(_STYLE):
        fig, axes = panel_row(len(models), width=3.8)
        for ax, model in zip(axes[0], models):
            for tau in taus:
                g = df[(df["model"] == model) & (df["tau"] == tau)]
                if g.empty:
                    continue
                g = in_checkpoint_order(g, pos)
                # log axes cannot show 0; clip to 0.1 experts so empty sets stay visible
                y = g["mean_size"].clip(lower=0.1)
                low, high = g["ci_low"].clip(lower=0.1), g["ci_high"].clip(lower=0.1)
                ax.errorbar(
                    g["_x"],
                    y,
                    yerr=[(y - low).clip(lower=0), (high - y).clip(lower=0)],
                    marker="o",
                    ms=3,
                    capsize=3,
                    color=colors[tau],
                    label=f"τ = {tau:g}",
                )
            ax.set_yscale("log")
            ax.set_title(model)
            ax.set_xticks(range(len(order)))
            ax.set_xticklabels(order, rotation=60, ha="right")
            ax.set_xlabel("checkpoint")
            ax.grid(axis="y", alpha=0.3, which="both")
        axes[0][0].set_ylabel(ylabel)
        axes[0][-1].legend(frameon=False, loc="best")
        return save_figure(fig, path, title)


def plot_pilot(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    title: str = "Pilot: stability of expert sets across folds",
    ylabel: str = "mean Jaccard, 95% bootstrap CI",
) -> Path:
    """One panel per τ; x = number of positives, one colour per number of negatives; solid lines
    compare one concept across folds (within), dashed lines two concepts in one fold (across).
    Bands are the 95% bootstrap CIs of the means, ``ci_low`` to ``ci_high``
    (:func:`expertalign.analysis.pilot.summarise_pilot`), when the table has them."""
    _require(df, ["n_positives", "n_negatives", "tau", "comparison", "mean_jaccard"], "pilot")
    if "model" in df.columns and df["model"].nunique() > 1:
        raise ValueError("pilot: several models; filter to one first")
    taus = sorted(df["tau"].unique())
    negs = sorted(df["n_negatives"].unique())
    cmap = plt.get_cmap("viridis")
    colors = {n: cmap(0.85 * i / max(1, len(negs) - 1)) for i, n in enumerate(negs)}
    with plt.rc_context(_STYLE):
        fig, axes = panel_row(len(taus))
        for ax, tau in zip(axes[0], taus):
            for n_neg in negs:
                for comparison, ls in (("within", "-"), ("across", "--")):
                    g = df[
                        (df["tau"] == tau)
                        & (df["n_negatives"] == n_neg)
                        & (df["comparison"] == comparison)
                    ].sort_values("n_positives")
                    if g.empty:
                        continue
                    ax.plot(
                        g["n_positives"],
                        g["mean_jaccard"],
                        ls=ls,
                        marker="o",
                        ms=3,
                        color=colors[n_neg],
                        label=f"{comparison}, {n_neg} negatives",
                    )
                    if {"ci_low", "ci_high"} <= set(g.columns):
                        ax.fill_between(
                            g["n_positives"],
                            g["ci_low"],
                            g["ci_high"],
                            color=colors[n_neg],
                            alpha=0.15,
                            lw=0,
                        )
            ax.set_title(f"τ = {tau:g}")
            ax.set_xlabel("positive sentences per concept")
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel(ylabel)
        handles, labels = axes[0][0].get_legend_handles_labels()
        legend_below(fig, handles, labels, max_columns=4)
        return save_figure(fig, path, title)


def pilot_set_size_summary(sizes: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Mean expert set size per (n_positives, n_negatives, tau) over every (fold, concept) of the
    pilot (``sizes``: :attr:`expertalign.analysis.pilot.PilotResult.sizes`, the table
    ``pilot_set_sizes.csv``), with a 95% percentile-bootstrap CI of the mean over those rows
    (``n_boot`` resamples seeded by ``seed``) and the number of rows: what
    :func:`plot_pilot_set_sizes` draws."""
    from expertalign.stats import bootstrap_mean_ci

    _require(sizes, ["n_positives", "n_negatives", "tau", "size"], "pilot set sizes")
    if "model" in sizes.columns and sizes["model"].nunique() > 1:
        raise ValueError("pilot set sizes: several models; filter to one first")
    rows = []
    for (n_pos, n_neg, tau), g in sizes.groupby(["n_positives", "n_negatives", "tau"]):
        mean, low, high = bootstrap_mean_ci(g["size"].to_numpy(), n_boot=n_boot, seed=seed)
        rows.append((n_pos, n_neg, tau, mean, low, high, len(g)))
    columns = ["n_positives", "n_negatives", "tau", "mean_size", "ci_low", "ci_high", "n"]
    return pd.DataFrame(rows, columns=columns)


def plot_pilot_set_sizes(
    sizes: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    title: str = "Pilot: expert set sizes",
    ylabel: str = "experts per concept (mean over folds and concepts, log)",
) -> Path:
    """Paper Fig. 9: one panel per (negative size: row, positive size: column); x = τ, the mean
    expert set size over folds and concepts (log y) with its 95% bootstrap CI
    (:func:`pilot_set_size_summary`). Means and bounds below 0.1 experts are drawn at 0.1 (a log
    axis has no 0), so configurations without experts stay visible."""
    summary = pilot_set_size_summary(sizes, n_boot=n_boot, seed=seed)
    negs = sorted(summary["n_negatives"].unique())
    poss = sorted(summary["n_positives"].unique())
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(
            len(negs),
            len(poss),
            figsize=(max(4.0, 2.8 * len(poss)), 2.6 * len(negs) + 0.6),
            sharex=True,
            sharey=True,
            squeeze=False,
        )
        for r, n_neg in enumerate(negs):
            for c, n_pos in enumerate(poss):
                ax = axes[r][c]
                g = summary[
                    (summary["n_negatives"] == n_neg) & (summary["n_positives"] == n_pos)
                ].sort_values("tau")
                y = g["mean_size"].clip(lower=0.1)
                low, high = g["ci_low"].clip(lower=0.1), g["ci_high"].clip(lower=0.1)
                ax.errorbar(
                    g["tau"],
                    y,
                    yerr=[(y - low).clip(lower=0), (high - y).clip(lower=0)],
                    marker="o",
                    ms=3,
                    capsize=3,
                    color="#3b528b",
                )
                ax.set_yscale("log")
                ax.grid(alpha=0.3, which="both")
                if r == 0:
                    ax.set_title(f"{n_pos} positives")
                if r == len(negs) - 1:
                    ax.set_xlabel("τ")
            axes[r][0].set_ylabel(f"{n_neg} negatives")
        fig.supylabel(ylabel)
        return save_figure(fig, path, title)
