"""Domain organisation: experts shared by a domain's specific concepts, and by its broader concept.

Usage::

    from expertalign.analysis import domains

    table = pd.read_csv("config/concepts.tsv", sep="\\t")   # concept, domain, broader, ...
    observed = domains.domain_shares(masks, concepts, table)  # masks: bool [concepts, units]
    null = domains.random_domains(masks, n_perm=10000, seed=0,
                                  candidates=domains.non_domain_rows(concepts, table))
    result = domains.permutation_pvalues(observed, null)      # adds p_core_share, p_broader_share
    domains.plot_domain_graph(masks, concepts, table, "results/figures/domains.png", seed=0)

Definitions (the paper's Table 2 reports the % of experts shared by all 4 specific concepts and the
% of that core also expert for the broader concept):

- core = units that are experts for *every* specific concept of the domain;
- ``core_share`` = |core| / |union of the specific concepts' expert sets| — the denominator is the
  union, so the share is the fraction of all the domain's specific experts that are common to all
  of them (1 only if the specific sets are identical). ``core_share_of_mean`` divides by the mean
  specific set size instead, for readers who want "share of a typical concept's experts";
- ``broader_share`` = |core ∩ experts(broader concept)| / |core| (nan when the core is empty).

Random pseudo-domains draw ``n_specific`` specific concepts and one "broader" concept, all distinct,
uniformly from the candidate concepts (by default those in no domain). The permutation p-value of
an observed share is (1 + #{null ≥ observed}) / (1 + #null), over the null draws where the share
is defined.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "Domain",
    "parse_domains",
    "non_domain_rows",
    "domain_shares",
    "random_domains",
    "permutation_pvalues",
    "reciprocal_overlap",
    "strongest_neighbours",
    "plot_domain_graph",
]

# bytes of packed masks processed at once in random_domains
_BLOCK_BYTES = 32_000_000


@dataclass(frozen=True)
class Domain:
    """A domain: row indices of its specific concepts and of its broader concept (or None)."""

    name: str
    specific: tuple[int, ...]
    broader: int | None


def _as_masks(masks: ArrayLike) -> NDArray[np.bool_]:
    m = np.asarray(masks)
    if m.ndim != 2:
        raise ValueError(f"masks must be 2-D bool [concepts, units], has shape {m.shape}")
    if m.dtype != np.bool_:
        raise ValueError(f"masks must be boolean, not {m.dtype}")
    return m


def _truthy(v: object) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return False
    s = str(v).strip().lower()
    if s in ("true", "1", "yes", "t", "y"):
        return True
    if s in ("false", "0", "no", "f", "n", "", "nan", "none"):
        return False
    raise ValueError(f"cannot read {v!r} as true/false in column 'broader'")


def _domain_column(table: pd.DataFrame) -> pd.Series:
    d = table["domain"]
    return d.where(d.notna(), "").astype(str).str.strip()


def parse_domains(concepts: Sequence[str], table: pd.DataFrame) -> list[Domain]:
    """Domains of the concept table (columns concept, domain, broader) as rows of ``concepts``.

    Concepts of the table that are not in ``concepts`` (e.g. not extracted) are an error, since a
    domain with a missing member would silently change its core.
    """
    missing = [c for c in ("concept", "domain") if c not in table.columns]
    if missing:
        raise ValueError(f"concept table lacks column(s) {missing}; has {list(table.columns)}")
    row = {c: i for i, c in enumerate(concepts)}
    dom = _domain_column(table)
    broader = (
        table["broader"].map(_truthy)
        if "broader" in table.columns
        else pd.Series(False, index=table.index)
    )
    out = []
    for name in dict.fromkeys(d for d in dom if d):
        members = table.loc[dom == name, "concept"].astype(str)
        is_broader = broader[dom == name]
        absent = [c for c in members if c not in row]
        if absent:
            raise ValueError(f"domain {name!r}: concept(s) {absent} have no expert mask row")
        b = [row[c] for c, flag in zip(members, is_broader) if flag]
        if len(b) > 1:
            raise ValueError(f"domain {name!r} has {len(b)} broader concepts; expected at most 1")
        spec = tuple(row[c] for c, flag in zip(members, is_broader) if not flag)
        if len(spec) < 2:
            raise ValueError(f"domain {name!r} has {len(spec)} specific concept(s); need >= 2")
        out.append(Domain(name, spec, b[0] if b else None))
    return out


def non_domain_rows(concepts: Sequence[str], table: pd.DataFrame) -> NDArray[np.intp]:
    """Rows of ``concepts`` whose concept has no domain (or is absent from the table)."""
    in_domain = set(table.loc[_domain_column(table) != "", "concept"].astype(str))
    return np.array([i for i, c in enumerate(concepts) if c not in in_domain], dtype=np.intp)


def _shares(
    n_union: NDArray[np.int64], n_core: NDArray[np.int64], n_core_broader: NDArray[np.int64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    with np.errstate(invalid="ignore", divide="ignore"):
        core_share = np.where(n_union > 0, n_core / np.maximum(n_union, 1), 0.0)
        broader_share = np.where(n_core > 0, n_core_broader / np.maximum(n_core, 1), np.nan)
    return core_share.astype(np.float64), broader_share.astype(np.float64)


def domain_shares(
    masks: ArrayLike, concepts: Sequence[str], table: pd.DataFrame
) -> pd.DataFrame:
    """Core and broader shares per domain (see the module docstring for the definitions).

    Returns ``domain, broader_concept, specific_concepts, n_specific, mean_specific_size, n_union,
    n_core, core_share, core_share_of_mean, n_core_in_broader, broader_share``.
    """
    m = _as_masks(masks)
    if len(concepts) != m.shape[0]:
        raise ValueError(f"{len(concepts)} concept names for {m.shape[0]} mask rows")
    rows = []
    for d in parse_domains(concepts, table):
        spec = m[list(d.specific)]
        core = np.logical_and.reduce(spec, axis=0)
        n_core = int(core.sum())
        n_union = int(np.logical_or.reduce(spec, axis=0).sum())
        mean_size = float(spec.sum(axis=1).mean())
        n_cb = int((core & m[d.broader]).sum()) if d.broader is not None else 0
        rows.append(
            {
                "domain": d.name,
                "broader_concept": concepts[d.broader] if d.broader is not None else None,
                "specific_concepts": ",".join(concepts[i] for i in d.specific),
                "n_specific": len(d.specific),
                "mean_specific_size": mean_size,
                "n_union": n_union,
                "n_core": n_core,
                "core_share": n_core / n_union if n_union else 0.0,
                "core_share_of_mean": n_core / mean_size if mean_size else 0.0,
                "n_core_in_broader": n_cb,
                "broader_share": (n_cb / n_core if n_core else np.nan)
                if d.broader is not None
                else np.nan,
            }
        )
    return pd.DataFrame(rows)


def random_domains(
    masks: ArrayLike,
    n_perm: int = 10000,
    seed: int = 0,
    candidates: ArrayLike | None = None,
    n_specific: int = 4,
) -> pd.DataFrame:
    """Shares of ``n_perm`` random pseudo-domains (``n_specific`` specific + 1 broader concept).

    ``candidates`` are the mask rows to draw from (default: all rows; pass
    :func:`non_domain_rows` to draw from concepts in no domain). Returns ``perm, specific_rows,
    broader_row, n_union, n_core, core_share, n_core_in_broader, broader_share``.
    """
    m = _as_masks(masks)
    if n_perm < 1:
        raise ValueError(f"n_perm must be >= 1, not {n_perm}")
    if n_specific < 2:
        raise ValueError(f"n_specific must be >= 2, not {n_specific}")
    cand = np.arange(m.shape[0]) if candidates is None else np.asarray(candidates, dtype=np.intp)
    k = n_specific + 1
    if cand.size < k:
        raise ValueError(
            f"need at least {k} candidate concepts for a pseudo-domain, have {cand.size}"
        )
    rng = np.random.default_rng(seed)
    # argsort of uniform keys = a uniform random permutation; its first k entries are a uniform
    # draw of k distinct candidates (first n_specific specific, last broader)
    draws = np.empty((n_perm, k), dtype=np.intp)
    for start in range(0, n_perm, 1000):
        stop = min(n_perm, start + 1000)
        keys = rng.random((stop - start, cand.size))
        draws[start:stop] = cand[np.argpartition(keys, k - 1, axis=1)[:, :k]]
        # argpartition leaves the first k unordered but their selection is still uniform;
        # shuffle so the role (specific vs broader) is not tied to the partition order
        draws[start:stop] = rng.permuted(draws[start:stop], axis=1)

    packed = np.packbits(m, axis=1)  # 8 units per byte; padding bits are 0 and never counted
    row_bytes = max(1, packed.shape[1])
    block = max(1, _BLOCK_BYTES // (row_bytes * k))
    n_union = np.empty(n_perm, dtype=np.int64)
    n_core = np.empty(n_perm, dtype=np.int64)
    n_cb = np.empty(n_perm, dtype=np.int64)
    for start in range(0, n_perm, block):
        sl = slice(start, min(n_perm, start + block))
        spec = packed[draws[sl, :n_specific]]  # [b, n_specific, bytes]
        core = np.bitwise_and.reduce(spec, axis=1)
        union = np.bitwise_or.reduce(spec, axis=1)
        n_core[sl] = np.bitwise_count(core).sum(axis=1)
        n_union[sl] = np.bitwise_count(union).sum(axis=1)
        n_cb[sl] = np.bitwise_count(core & packed[draws[sl, n_specific]]).sum(axis=1)
    core_share, broader_share = _shares(n_union, n_core, n_cb)
    return pd.DataFrame(
        {
            "perm": np.arange(n_perm),
            "specific_rows": [tuple(int(x) for x in r) for r in draws[:, :n_specific]],
            "broader_row": draws[:, n_specific],
            "n_union": n_union,
            "n_core": n_core,
            "core_share": core_share,
            "n_core_in_broader": n_cb,
            "broader_share": broader_share,
        }
    )


def _perm_p(observed: float, null: NDArray[np.float64]) -> tuple[float, int]:
    valid = null[np.isfinite(null)]
    if not np.isfinite(observed) or valid.size == 0:
        return np.nan, int(valid.size)
    return (1.0 + np.count_nonzero(valid >= observed)) / (1.0 + valid.size), int(valid.size)


def permutation_pvalues(observed: pd.DataFrame, null: pd.DataFrame) -> pd.DataFrame:
    """Add one-sided permutation p-values and null summaries to :func:`domain_shares` output.

    For each share: ``p_<share>`` = (1 + #{null ≥ observed}) / (1 + #null with a defined share),
    ``null_mean_<share>``, ``null_q95_<share>``, ``null_n_<share>``.
    """
    out = observed.copy()
    for col in ("core_share", "broader_share"):
        if col not in observed.columns or col not in null.columns:
            raise ValueError(f"both tables need column {col!r}")
        nv = null[col].to_numpy(dtype=np.float64)
        fin = nv[np.isfinite(nv)]
        ps, ns = zip(*(_perm_p(float(v), nv) for v in observed[col])) if len(out) else ((), ())
        out[f"p_{col}"] = list(ps)
        out[f"null_mean_{col}"] = float(fin.mean()) if fin.size else np.nan
        out[f"null_q95_{col}"] = float(np.quantile(fin, 0.95)) if fin.size else np.nan
        out[f"null_n_{col}"] = list(ns)
    return out


def reciprocal_overlap(masks: ArrayLike) -> NDArray[np.float64]:
    """mean(|A∩B|/|A|, |A∩B|/|B|) for every pair of rows; a term with an empty set counts 0."""
    m = _as_masks(masks)
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

    m = _as_masks(masks)
    if len(concepts) != m.shape[0]:
        raise ValueError(f"{len(concepts)} concept names for {m.shape[0]} mask rows")
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
    w = reciprocal_overlap(m[nodes])
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
            g, pos, ax=ax, edgelist=[(a, b) for a, b, _ in shown],
            width=[0.5 + 4.0 * x / wmax for _, _, x in shown], alpha=0.8,
            edge_color=[color[node_domain[a]] if node_domain[a] == node_domain[b] else "0.75"
                        for a, b, _ in shown],
        )
        nx.draw_networkx_nodes(
            g, pos, ax=ax, nodelist=nodes, node_color=[color[node_domain[r]] for r in nodes],
            node_size=[420 if r in broader_rows else 200 for r in nodes], edgecolors="0.2",
            linewidths=0.6,
        )
        # labels just above the nodes so the node colour stays visible
        label_pos = {r: (xy[0], xy[1] + 0.045) for r, xy in pos.items()}
        nx.draw_networkx_labels(g, label_pos, ax=ax, labels={r: concepts[r] for r in nodes},
                                font_size=8)
        handles = [Line2D([], [], marker="o", ls="", color=color[n], label=n) for n in names]
        ax.legend(handles=handles, title="domain", loc="upper left", bbox_to_anchor=(1.0, 1.0),
                  frameon=False)
        ax.set_title(f"{title}\n(each concept linked to its {neighbours} most-overlapping "
                     f"concepts; width: reciprocal overlap)\n{same} of {len(shown)} links "
                     f"within a domain (coloured; {chance:.0%} for random links)")
        ax.axis("off")
        fig.tight_layout()
        return save_figure(fig, path)
