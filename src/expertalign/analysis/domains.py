"""Domain organisation: experts shared by a domain's specific concepts, and by its broader concept.

Usage::

    from expertalign.analysis import domains

    table = pd.read_csv("config/concepts.tsv", sep="\\t")   # concept, domain, broader, ...
    observed = domains.domain_shares(masks, concepts, table)  # masks: bool [concepts, units]
    # ... or PackedMasks (expertalign.apmatrix), which never unpacks more than a domain's rows
    null = domains.keep_broader_domains(masks, domains.parse_domains(concepts, table),
                                        n_perm=10000, seed=0)
    # or whole pseudo-domains: domains.random_domains_matched(masks, parsed, 10000, 0, candidates)
    result = domains.permutation_pvalues(observed, null)      # adds p_core_share, p_broader_share
    mean = domains.mean_over_domains(observed, null)          # the paper's averages, with p
    # the graph figure: expertalign.analysis.domain_graph.plot_domain_graph

Definitions (the paper's Table 2 reports the % of experts shared by all 4 specific concepts and the
% of that core also expert for the broader concept):

- core = units that are experts for *every* specific concept of the domain;
- ``core_share`` = |core| / |union of the specific concepts' expert sets| — the denominator is the
  union, so the share is the fraction of all the domain's specific experts that are common to all
  of them (1 only if the specific sets are identical). ``core_share_of_mean`` divides by the mean
  specific set size instead, for readers who want "share of a typical concept's experts";
- ``broader_share`` = |core ∩ experts(broader concept)| / |core| (nan when the core is empty).

The baselines (random pseudo-domains, permutation p-values, the mean over domains) are in
:mod:`expertalign.analysis.domain_null`; their names are importable from here too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from expertalign.analysis.domain_null import (
    keep_broader_domains,
    mean_over_domains,
    permutation_pvalues,
    random_domains,
    random_domains_matched,
)
from expertalign.apmatrix import PackedMasks, mask_rows, n_mask_rows

__all__ = [
    "Domain",
    "parse_domains",
    "non_domain_rows",
    "domain_shares",
    # the baselines, from expertalign.analysis.domain_null
    "random_domains",
    "random_domains_matched",
    "keep_broader_domains",
    "permutation_pvalues",
    "mean_over_domains",
]


@dataclass(frozen=True)
class Domain:
    """A domain: row indices of its specific concepts and of its broader concept (or None)."""

    name: str
    specific: tuple[int, ...]
    broader: int | None


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


def domain_shares(
    masks: ArrayLike | PackedMasks, concepts: Sequence[str], table: pd.DataFrame
) -> pd.DataFrame:
    """Core and broader shares per domain (see the module docstring for the definitions).

    Returns ``domain, broader_concept, specific_concepts, n_specific, mean_specific_size, n_union,
    n_core, core_share, core_share_of_mean, n_core_in_broader, broader_share``.
    """
    if len(concepts) != n_mask_rows(masks):
        raise ValueError(f"{len(concepts)} concept names for {n_mask_rows(masks)} mask rows")
    rows = []
    for d in parse_domains(concepts, table):
        spec = mask_rows(masks, d.specific)
        core = np.logical_and.reduce(spec, axis=0)
        n_core = int(core.sum())
        n_union = int(np.logical_or.reduce(spec, axis=0).sum())
        mean_size = float(spec.sum(axis=1).mean())
        n_cb = int((core & mask_rows(masks, [d.broader])[0]).sum()) if d.broader is not None else 0
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
