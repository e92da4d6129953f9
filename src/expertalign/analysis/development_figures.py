"""Figures of how experts develop across checkpoints (paper Fig. 6, Fig. 7, App. H).

Usage::

    from expertalign.analysis import development_figures as devfig

    devfig.plot_checkpoint_stability(stability, "results/figures/checkpoint_stability.png")
    #   stability: model, checkpoint_from, checkpoint_to, tau, concept, jaccard
    #   (development.development_stability)
    devfig.plot_expert_development(dist, "results/figures/expert_development.png", tau=0.5)
    devfig.plot_layer_submodule(dist, "results/figures/experts_by_layer_submodule.png", tau=0.5)
    devfig.plot_expert_distribution(dist, "results/figures/expert_distribution.png")
    #   dist: model, checkpoint, concepts, grouping, tau, <group columns>, n_units,
    #   expert_incidences, mean_experts_per_concept, share_of_units
    #   (development.expert_distribution over every run)

Every function returns the path it wrote (atomically, see :func:`figures.save_figure`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written by batch jobs without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from expertalign.analysis.development import checkpoint_order  # noqa: E402
from expertalign.analysis.figures import (  # noqa: E402
    _STYLE,
    _colors,
    _require,
    in_checkpoint_order,
    panel_row,
    save_figure,
)

__all__ = [
    "transition_label",
    "plot_checkpoint_stability",
    "plot_expert_development",
    "plot_layer_submodule",
    "plot_expert_distribution",
    "plot_message",
]


def transition_label(checkpoint_from: str, checkpoint_to: str) -> str:
    """``step1``, ``step512`` -> ``1_to_512`` (the paper's Fig. 6 labels)."""

    def short(name: str) -> str:
        return re.sub(r"^step", "", str(name))

    return f"{short(checkpoint_from)}_to_{short(checkpoint_to)}"


def plot_checkpoint_stability(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    title: str = "Stability of expert sets between consecutive checkpoints",
) -> Path:
    """Fig. 6: one panel per τ; x = consecutive checkpoint pairs in training order, one line per
    model: mean Jaccard over concepts with a 95% percentile-bootstrap CI (2,000 resamples)."""
    from expertalign.stats import bootstrap_mean_ci

    _require(df, ["model", "checkpoint_from", "checkpoint_to", "tau", "jaccard"], "stability")
    rank = {c: i for i, c in enumerate(checkpoint_order(df["checkpoint_to"]))}
    steps = (
        df[["checkpoint_from", "checkpoint_to"]]
        .drop_duplicates()
        .sort_values("checkpoint_to", key=lambda c: c.map(rank))
    )
    labels = [transition_label(a, b) for a, b in zip(steps.checkpoint_from, steps.checkpoint_to)]
    x_of = {lab: i for i, lab in enumerate(dict.fromkeys(labels))}
    taus = sorted(df["tau"].unique())
    models = list(dict.fromkeys(df["model"]))
    colors = _colors(models)
    d = df.assign(
        _label=[transition_label(a, b) for a, b in zip(df.checkpoint_from, df.checkpoint_to)]
    )
    with plt.rc_context(_STYLE):
        fig, axes = panel_row(len(taus))
        for ax, tau in zip(axes[0], taus):
            for k, model in enumerate(models):
                g = d[(d["tau"] == tau) & (d["model"] == model)]
                if g.empty:
                    continue
                pts = []
                for label, h in g.groupby("_label", sort=False):
                    mean, low, high = bootstrap_mean_ci(h["jaccard"].to_numpy())
                    pts.append((x_of[label], mean, low, high))
                x, mean, low, high = (np.array(v) for v in zip(*sorted(pts)))
                off = 0.08 * (k - (len(models) - 1) / 2)
                ax.errorbar(
                    x + off,
                    mean,
                    yerr=[mean - low, high - mean],
                    marker="o",
                    ms=3,
                    capsize=2,
                    color=colors[model],
                    label=model,
                )
            ax.set_title(f"τ = {tau:g}")
            ax.set_xticks(range(len(x_of)))
            ax.set_xticklabels(list(x_of), rotation=60, ha="right")
            ax.set_ylim(-0.02, 1.02)
            ax.grid(axis="y", alpha=0.3)
        axes[0][0].set_ylabel("expert overlap (Jaccard), mean over concepts")
        axes[0][-1].legend(frameon=False, loc="best")
        return save_figure(fig, path, title)


def _at(dist: pd.DataFrame, grouping: str, tau: float, concepts: str = "all") -> pd.DataFrame:
    g = dist[
        (dist["grouping"] == grouping)
        & np.isclose(dist["tau"], tau)
        & (dist["concepts"] == concepts)
    ]
    if g.empty:
        raise ValueError(
            f"no rows with grouping {grouping!r} at τ = {tau:g} for {concepts!r} concepts"
        )
    return g


def _checkpoint_colors(names: list[str]) -> dict[str, tuple[float, ...]]:
    cmap = plt.get_cmap("viridis")
    return {c: cmap(0.9 * i / max(1, len(names) - 1)) for i, c in enumerate(names)}


def _lines_by_checkpoint(
    ax, rows: pd.DataFrame, order: list[str], colors: dict[str, tuple[float, ...]]
) -> None:
    """Mean experts per concept by layer, one line per checkpoint (in training order)."""
    for ckpt in order:
        g = rows[rows["checkpoint"] == ckpt].sort_values("layer")
        if not g.empty:
            ax.plot(
                g["layer"],
                g["mean_experts_per_concept"],
                marker="o",
                ms=2,
                color=colors[ckpt],
                label=ckpt,
            )


def plot_expert_development(
    dist: pd.DataFrame,
    path: str | os.PathLike[str],
    tau: float,
    title: str = "Experts across training",
    concepts: str = "all",
) -> Path:
    """Fig. 7 and App. H.1-H.3, one row per model: (a) total experts (summed over concepts) in
    attention and MLP units per checkpoint; (b) mean experts per concept per MLP layer and
    (c) per attention layer, one line per checkpoint (light: early, dark: late). At τ = 0.9 it
    is App. H.8-H.9; with ``concepts`` = "broader" or "specific" (the rows of ``dist`` for the
    domains' broader or specific concepts) App. I and J."""
    _require(
        dist,
        [
            "model",
            "checkpoint",
            "concepts",
            "grouping",
            "tau",
            "expert_incidences",
            "mean_experts_per_concept",
        ],
        "expert development",
    )
    kinds = _at(dist, "kind", tau, concepts)
    layers = _at(dist, "layer+kind", tau, concepts)
    models = list(dict.fromkeys(kinds["model"]))
    who = "" if concepts == "all" else f"{concepts} concepts, "
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(len(models), 3, figsize=(15.0, 3.6 * len(models)), squeeze=False)
        for row, model in zip(axes, models):
            mine = kinds[kinds["model"] == model]
            order = checkpoint_order(mine["checkpoint"])
            pos = {c: i for i, c in enumerate(order)}
            kind_colors = _colors(sorted(mine["kind"].unique()))
            for kind, g in mine.groupby("kind"):
                g = in_checkpoint_order(g, pos)
                row[0].plot(
                    g["_x"],
                    g["expert_incidences"],
                    marker="o",
                    ms=3,
                    color=kind_colors[kind],
                    label=kind,
                )
            row[0].set_xticks(range(len(order)))
            row[0].set_xticklabels(order, rotation=45, ha="right")
            row[0].set_title(f"{model}: total experts ({who}τ = {tau:g})")
            row[0].set_ylabel("experts, summed over concepts")
            row[0].legend(frameon=False)
            colors = _checkpoint_colors(order)
            for ax, kind in ((row[1], "mlp"), (row[2], "attention")):
                lk = layers[(layers["model"] == model) & (layers["kind"] == kind)]
                _lines_by_checkpoint(ax, lk, order, colors)
                ax.set_title(f"{model}: {kind} layers (τ = {tau:g})")
                ax.set_xlabel("layer")
                ax.set_ylabel("experts per concept (mean)")
                ax.grid(alpha=0.3)
            row[2].legend(frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1, 1))
        return save_figure(fig, path, title)


def plot_layer_submodule(
    dist: pd.DataFrame,
    path: str | os.PathLike[str],
    tau: float,
    title: str = "Experts per layer and sub-module across training",
) -> Path:
    """App. H.4-H.7 (``dist``: rows of grouping layer+kind+submodule): one row per model, one
    column per sub-module (attention first, then MLP); mean experts per concept per layer, one
    line per checkpoint (light: early, dark: late)."""
    _require(
        dist,
        [
            "model",
            "checkpoint",
            "concepts",
            "tau",
            "layer",
            "submodule",
            "mean_experts_per_concept",
        ],
        "layer x sub-module",
    )
    d = dist
    if "grouping" in d.columns:
        d = d[d["grouping"] == "layer+kind+submodule"]
    d = d[np.isclose(d["tau"], tau) & (d["concepts"] == "all")]
    if d.empty:
        raise ValueError(f"layer x sub-module: no rows for all concepts at τ = {tau:g}")
    models = list(dict.fromkeys(d["model"]))
    n_cols = max(d.groupby("model")["submodule"].nunique())
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(
            len(models), n_cols, figsize=(3.8 * n_cols, 3.3 * len(models)), squeeze=False
        )
        for row, model in zip(axes, models):
            mine = d[d["model"] == model]
            if "kind" in mine.columns:
                mine = mine.sort_values(["kind", "submodule"])
            order = checkpoint_order(mine["checkpoint"])
            colors = _checkpoint_colors(order)
            subs = list(dict.fromkeys(mine["submodule"]))
            for ax, sub in zip(row, subs):
                _lines_by_checkpoint(ax, mine[mine["submodule"] == sub], order, colors)
                kind = (
                    mine.loc[mine["submodule"] == sub, "kind"].iloc[0]
                    if ("kind" in mine.columns)
                    else ""
                )
                ax.set_title(f"{model}: {kind}.{sub}".replace(": .", ": "), fontsize=10)
                ax.set_xlabel("layer")
                ax.grid(alpha=0.3)
            for ax in row[len(subs) :]:
                ax.axis("off")
            row[0].set_ylabel(f"experts per concept\n(mean, τ = {tau:g})")
            row[len(subs) - 1].legend(
                frameon=False, fontsize=7, loc="upper left", bbox_to_anchor=(1, 1)
            )
        return save_figure(fig, path, title)


def plot_expert_distribution(
    dist: pd.DataFrame,
    path: str | os.PathLike[str],
    title: str = "Where the experts are (share of each group's units that are experts)",
) -> Path:
    """One column per model (its last checkpoint). Top: share of units that are experts by layer,
    attention vs MLP, at the lowest τ (solid) and the highest τ (dashed). Bottom: the same share
    per sub-module for broader vs specific domain concepts (all concepts where the table has no
    domains), at both τ. Log y, so that τ = 0.9's far smaller shares stay readable.
    """
    _require(
        dist,
        ["model", "checkpoint", "concepts", "grouping", "tau", "share_of_units"],
        "expert distribution",
    )
    models = list(dict.fromkeys(dist["model"]))
    taus = sorted(dist["tau"].unique())
    tau_pair = [taus[0], taus[-1]] if len(taus) > 1 else taus
    groups = [g for g in ("broader", "specific") if g in set(dist["concepts"])] or ["all"]
    kind_colors = _colors(sorted(dist.loc[dist["grouping"] == "layer+kind", "kind"].unique()))
    group_colors = {"broader": "#8c2d04", "specific": "#fd8d3c", "all": "#636363"}
    with plt.rc_context(_STYLE):
        fig, axes = plt.subplots(
            2, len(models), figsize=(max(6.0, 5.6 * len(models)), 8.0), squeeze=False, sharey="row"
        )
        for col, model in enumerate(models):
            mine = dist[dist["model"] == model]
            last = checkpoint_order(mine["checkpoint"])[-1]
            mine = mine[mine["checkpoint"] == last]
            ax = axes[0][col]
            layers = mine[(mine["grouping"] == "layer+kind") & (mine["concepts"] == "all")]
            for tau, style in zip(tau_pair, ("-", "--")):
                for kind, g in layers[layers["tau"] == tau].groupby("kind"):
                    g = g.sort_values("layer")
                    ax.plot(
                        g["layer"],
                        g["share_of_units"].clip(lower=1e-6),
                        ls=style,
                        marker="o",
                        ms=2.5,
                        color=kind_colors[kind],
                        label=f"{kind}, τ = {tau:g}",
                    )
            ax.set_yscale("log")
            ax.set_xlabel("layer")
            ax.set_title(f"{model} ({last}): by layer")
            ax.grid(alpha=0.3, which="both")
            ax.legend(frameon=False, fontsize=8, ncol=2)
            ax = axes[1][col]
            subs = mine[mine["grouping"] == "kind+submodule"].sort_values(["kind", "submodule"])
            order = list(dict.fromkeys(subs["submodule"]))
            bars = [(g, t) for t in tau_pair for g in groups]
            width = 0.8 / len(bars)
            for i, (group, tau) in enumerate(bars):
                g = subs[(subs["concepts"] == group) & (subs["tau"] == tau)]
                y = g.set_index("submodule").reindex(order)["share_of_units"].clip(lower=1e-6)
                ax.bar(
                    np.arange(len(order)) - 0.4 + width * (i + 0.5),
                    y,
                    width,
                    color=group_colors[group],
                    hatch="//" if tau == tau_pair[-1] else None,
                    edgecolor="white",
                    lw=0.5,
                    label=f"{group} concepts, τ = {tau:g}",
                )
            ax.set_yscale("log")
            ax.set_xticks(range(len(order)))
            ax.set_xticklabels(order, rotation=30, ha="right")
            ax.set_title(f"{model} ({last}): by sub-module")
            ax.set_xlabel("sub-module (attention, then MLP)")
            ax.grid(axis="y", alpha=0.3, which="both")
            ax.legend(
                frameon=False, fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.3)
            )
        for row in axes:
            row[0].set_ylabel("share of units that are experts\n(mean over concepts, log)")
        return save_figure(fig, path, title)


def plot_message(path: str | os.PathLike[str], text: str) -> Path:
    """A figure that only says ``text`` (for an analysis with nothing to show in this run)."""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(6.0, 1.5))
        ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
        ax.axis("off")
        return save_figure(fig, path)
