"""Graph of the domain concepts by expert overlap (paper Fig. 4, 11, 12).

Usage::

    from expertalign.analysis import domain_graph

    w = domain_graph.reciprocal_overlap(masks)             # masks: bool [concepts, units]
    edges = domain_graph.strongest_neighbours(w, k=3)
    domain_graph.plot_domain_graph(masks, concepts, table, "results/figures/domains.png", seed=0)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from expertalign.analysis.domains import parse_domains
from expertalign.apmatrix import bool_masks, mask_rows, n_mask_rows

__all__ = ["reciprocal_overlap", "strongest_neighbours", "plot_domain_graph"]


def reciprocal_overlap(masks: ArrayLike) -> NDArray[np.float64]:
    """mean(|A∩B|/|A|, |A∩B|/|B|) for every pair of rows; a term with an empty set counts 0."""
    m = bool_masks(masks)
    f = m.astype(np.float32 if m.shape[1] < 2**24 else np.float64)
    inter = (f @ f.T).astype(np.float64)
    size = m.sum(axis=1).astype(np.float64)
    left = np.divide(inter, size[:, None], out=np.zeros_like(inter), where=size[:, None] > 0)
    right = np.divide(inter, size[None, :], out=np.zeros_like(inter), where=size[None, :] > 0)
    return (left + right) / 2.0


def strongest_neighbours(weights: ArrayLike, k: int) -> list[tuple[int, int]]:
    """Edges (i < j) linking every row to the ``k`` others it overlaps most (ties: lower index)."""
    w = np.asarray(weights, dtype=np.float64)
    n = w.shape[0]
    if w.shape != (n, n):
        raise ValueError(f"need a square matrix of overlaps, got shape {w.shape}")
    k = min(k, n - 1)
    edges: set[tuple[int, int]] = set()
    for i in range(n):
        others = np.delete(np.arange(n), i)
        order = others[np.argsort(-w[i, others], kind="stable")][:k]
        edges.update((min(i, int(j)), max(i, int(j))) for j in order if w[i, j] > 0)
    return sorted(edges)


def plot_domain_graph(
    masks: ArrayLike,
    concepts: Sequence[str],
    table: pd.DataFrame,
    path: str | os.PathLike[str],
    seed: int = 0,
    neighbours: int = 3,
    title: str = "Expert overlap between domain concepts",
) -> Path:
    """Graph of the domain concepts: each concept linked to the ``neighbours`` concepts whose
    expert sets it overlaps most (reciprocal overlap), edge width ∝ overlap, seeded spring layout
    on those edges; nodes coloured by domain (broader concepts drawn larger) and labelled.

    Drawing every pair gives a hairball whatever the data; the strongest links show whether a
    concept's nearest concepts are those of its own domain.
    """
    import matplotlib.pyplot as plt
    import networkx as nx
    from matplotlib.lines import Line2D

    from expertalign.analysis.figures import _STYLE, save_figure

    if len(concepts) != n_mask_rows(masks):
        raise ValueError(f"{len(concepts)} concept names for {n_mask_rows(masks)} mask rows")
    doms = parse_domains(concepts, table)
    if not doms:
        raise ValueError("the concept table defines no domain")
    nodes: list[int] = []
    node_domain: dict[int, str] = {}
    broader_rows: set[int] = set()
    for d in doms:
        for r in (*d.specific, *((d.broader,) if d.broader is not None else ())):
            if r not in node_domain:
                nodes.append(r)
                node_domain[r] = d.name
        if d.broader is not None:
            broader_rows.add(d.broader)
    w = reciprocal_overlap(mask_rows(masks, nodes))
    g = nx.Graph()
    for r in nodes:
        g.add_node(r, label=concepts[r], domain=node_domain[r])
    for a, b in strongest_neighbours(w, neighbours):
        g.add_edge(nodes[a], nodes[b], weight=float(w[a, b]))
    pos = nx.spring_layout(g, weight="weight", seed=seed)
    shown = [(a, b, dd["weight"]) for a, b, dd in g.edges(data=True)]
    wmax = max((x for _, _, x in shown), default=1.0)
    same = sum(node_domain[a] == node_domain[b] for a, b, _ in shown)
    sizes = pd.Series(node_domain).value_counts().to_numpy()
    chance = float((sizes * (sizes - 1)).sum() / (len(nodes) * (len(nodes) - 1)))
    names = [d.name for d in doms]
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    color = {n: cmap(i % cmap.N) for i, n in enumerate(names)}
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(9, 8))
        nx.draw_networkx_edges(
            g,
            pos,
            ax=ax,
            edgelist=[(a, b) for a, b, _ in shown],
            width=[0.5 + 4.0 * x / wmax for _, _, x in shown],
            alpha=0.8,
            edge_color=[
                color[node_domain[a]] if node_domain[a] == node_domain[b] else "0.75"
                for a, b, _ in shown
            ],
        )
        nx.draw_networkx_nodes(
            g,
            pos,
            ax=ax,
            nodelist=nodes,
            node_color=[color[node_domain[r]] for r in nodes],
            node_size=[420 if r in broader_rows else 200 for r in nodes],
            edgecolors="0.2",
            linewidths=0.6,
        )
        # labels just above the nodes so the node colour stays visible
        label_pos = {r: (xy[0], xy[1] + 0.045) for r, xy in pos.items()}
        nx.draw_networkx_labels(
            g, label_pos, ax=ax, labels={r: concepts[r] for r in nodes}, font_size=8
        )
        handles = [Line2D([], [], marker="o", ls="", color=color[n], label=n) for n in names]
        ax.legend(
            handles=handles,
            title="domain",
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            frameon=False,
        )
        ax.set_title(
            f"{title}\n(each concept linked to its {neighbours} most-overlapping "
            f"concepts; width: reciprocal overlap)\n{same} of {len(shown)} links "
            f"within a domain (coloured; {chance:.0%} for random links)"
        )
        ax.axis("off")
        fig.tight_layout()
        return save_figure(fig, path)
