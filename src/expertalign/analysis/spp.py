"""Semantic Priming Project (SPP) relation levels: the pairs of each level, and their files.

Usage::

    from expertalign.analysis import spp

    levels = spp.relation_levels("../shared/data/SPP", n_per_level=100, seed=0)
    levels.pairs        # word1 (prime), word2 (target), level (none/weak/strong), fas, relation
    spp.write_pairs(levels.pairs, "config/paper_spp_pairs.tsv")   # when building a concept table
    pairs = spp.read_pairs("config/paper_spp_pairs.tsv")           # in the analysis

    # the Jaccard overlap of each pair's expert sets, one row per pair and model (final checkpoint):
    fit = spp.fit_mixed_model(df, size_order=["pythia-70m", "pythia-1b", "pythia-12b"])
    fit.coefficients    # term, estimate, se, z, p, structure
    fit.caption

Levels (only first-associate primes are in the shared SPP export): *strong* and *weak* are
first-associate related prime–target pairs from ``spp_assoc-related_*.csv`` split by forward
association strength (FAS): by default the top and bottom FAS terciles (the middle tercile is left
out so the two levels are clearly apart; ``split="median"`` uses above / at-or-below the median
instead). *none* pairs each target with its matched unrelated prime from
``spp_assoc-unrelated_*.csv``. Primes are lower-cased (the export writes them in capitals).

The model (paper App. B) is in :mod:`expertalign.analysis.spp_model`; its names
(:func:`fit_mixed_model`, :func:`design`, :func:`sliding_difference`, :data:`STRUCTURES`,
:class:`MixedModelFit`, :data:`LEVELS`) are importable from here too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from expertalign.analysis.spp_model import (
    LEVELS,
    STRUCTURES,
    MixedModelFit,
    design,
    fit_mixed_model,
    sliding_difference,
)

__all__ = [
    "LEVELS",
    "STRUCTURES",
    "SPPLevels",
    "MixedModelFit",
    "read_spp",
    "relation_levels",
    "levels_caption",
    "sliding_difference",
    "write_pairs",
    "read_pairs",
    "design",
    "fit_mixed_model",
]

_RELATED_GLOB = "spp_assoc-related_*.csv"
_UNRELATED_GLOB = "spp_assoc-unrelated_*.csv"


@dataclass(frozen=True)
class SPPLevels:
    """Sampled pairs per relation level, the words they need, and a caption."""

    pairs: pd.DataFrame
    words: list[str]
    caption: str


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    if not found:
        raise FileNotFoundError(f"{folder}: no file matching {pattern}")
    return found[-1]  # the newest export if several (names end with a yymmdd date)


def _spp_dir(spp_dir: str | os.PathLike[str]) -> Path:
    p = Path(spp_dir)
    if not any(p.glob(_RELATED_GLOB)) and (p / "SPP").is_dir():
        p = p / "SPP"
    return p


def read_spp(spp_dir: str | os.PathLike[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Related (word1=prime, word2=target, fas, relation) and unrelated (word1, word2) pairs.

    ``spp_dir`` is the SPP folder or its parent. Words are lower-cased and stripped.
    """
    folder = _spp_dir(spp_dir)
    rel_path, unrel_path = _one(folder, _RELATED_GLOB), _one(folder, _UNRELATED_GLOB)
    rel = pd.read_csv(rel_path)
    unrel = pd.read_csv(unrel_path)
    for path, df, cols in (
        (rel_path, rel, ["TargetWord", "Prime", "FAS"]),
        (unrel_path, unrel, ["TargetWord", "Unrelated"]),
    ):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; has {list(df.columns)}")
    fas = pd.to_numeric(rel["FAS"], errors="coerce")
    bad = fas.isna() & rel["FAS"].notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"{rel_path}: line {i + 2}, column 'FAS': {rel['FAS'].iloc[i]!r} is not a number"
        )
    related = pd.DataFrame(
        {
            "word1": rel["Prime"].astype(str).str.strip().str.lower(),
            "word2": rel["TargetWord"].astype(str).str.strip().str.lower(),
            "fas": fas.astype(float),
            "relation": rel["Relation1"].astype(str) if "Relation1" in rel.columns else "",
        }
    )
    unrelated = pd.DataFrame(
        {
            "word1": unrel["Unrelated"].astype(str).str.strip().str.lower(),
            "word2": unrel["TargetWord"].astype(str).str.strip().str.lower(),
        }
    )
    return related.dropna(subset=["fas"]).reset_index(drop=True), unrelated


def levels_caption(
    split: str = "tercile",
    n_per_level: int | None = None,
    seed: int | None = None,
    cuts: tuple[float, float] | None = None,
) -> str:
    """Caption text saying how the strong / weak / none levels were built."""
    if split == "tercile":
        how = "strong = top FAS tercile, weak = bottom FAS tercile (middle tercile left out)"
    elif split == "median":
        how = "strong = FAS above the median, weak = FAS at or below the median"
    else:
        raise ValueError(f"split must be 'tercile' or 'median', not {split!r}")
    if cuts is not None:
        how += f"; cuts: weak FAS ≤ {cuts[0]:.3f}, strong FAS > {cuts[1]:.3f}"
    text = (
        "Relation levels from the Semantic Priming Project (Hutchison et al., 2013): strong and "
        "weak are first-associate prime–target pairs split by forward association strength "
        f"({how}); "
        "none pairs each target with its matched unrelated prime."
    )
    if n_per_level is not None:
        text += f" {n_per_level} pairs sampled per level"
        text += f" (seed {seed})." if seed is not None else "."
    return text


def relation_levels(
    spp_dir: str | os.PathLike[str],
    n_per_level: int | None = 100,
    seed: int = 0,
    split: str = "tercile",
    vocabulary: Iterable[str] | None = None,
) -> SPPLevels:
    """Sample ``n_per_level`` pairs per level (None: all eligible pairs).

    ``vocabulary`` (optional) restricts sampling to pairs whose two words are in it
    (case-insensitive). The FAS cuts are always computed on *all* first-associate pairs, so that
    "strong" means the same whatever the vocabulary. Self-pairs and repeated unordered pairs are
    dropped (the first of none, weak, strong keeps a repeated pair).
    """
    if split not in ("tercile", "median"):
        raise ValueError(f"split must be 'tercile' or 'median', not {split!r}")
    related, unrelated = read_spp(spp_dir)
    if split == "tercile":
        lo, hi = (float(q) for q in related["fas"].quantile([1 / 3, 2 / 3]))
    else:
        lo = hi = float(related["fas"].median())
    strong = related[related["fas"] > hi].assign(level="strong")
    weak = related[related["fas"] <= lo].assign(level="weak")
    none = unrelated.assign(level="none", fas=np.nan, relation="unrelated")
    pool = pd.concat([none, weak, strong], ignore_index=True)
    pool = pool[pool["word1"] != pool["word2"]]
    key = pool.apply(lambda r: tuple(sorted((r["word1"], r["word2"]))), axis=1)
    pool = pool[~key.duplicated()]
    if vocabulary is not None:
        if isinstance(vocabulary, str):
            raise TypeError("vocabulary must be a collection of words, not a string")
        vocab = {str(w).lower() for w in vocabulary}
        pool = pool[pool["word1"].isin(vocab) & pool["word2"].isin(vocab)]
    rng = np.random.default_rng(seed)
    frames = []
    for level in LEVELS:
        g = pool[pool["level"] == level]
        if n_per_level is not None:
            if len(g) < n_per_level:
                raise ValueError(
                    f"level {level!r} has only {len(g)} eligible pairs, fewer than "
                    f"n_per_level={n_per_level}"
                )
            g = g.iloc[np.sort(rng.choice(len(g), size=n_per_level, replace=False))]
        frames.append(g)
    pairs = pd.concat(frames, ignore_index=True)[["word1", "word2", "level", "fas", "relation"]]
    words = sorted(set(pairs["word1"]) | set(pairs["word2"]))
    caption = levels_caption(split, n_per_level, seed, cuts=(lo, hi))
    pairs.attrs["caption"] = caption
    return SPPLevels(pairs, words, caption)


_PAIR_COLUMNS = ["word1", "word2", "level", "fas", "relation"]


def write_pairs(pairs: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write sampled pairs (word1, word2, level, fas, relation) as TSV, atomically."""
    out = Path(path)
    if missing := [c for c in _PAIR_COLUMNS if c not in pairs.columns]:
        raise ValueError(f"pairs lack column(s) {missing}; have {list(pairs.columns)}")
    from expertalign.atomic import atomic_path

    with atomic_path(out) as tmp:
        pairs[_PAIR_COLUMNS].to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    return out


def read_pairs(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a pair file written by :func:`write_pairs` (by the tools that build concept tables)."""
    pairs = pd.read_csv(path, sep="\t", keep_default_na=False, na_values={"fas": [""]})
    if missing := [c for c in ("word1", "word2", "level") if c not in pairs.columns]:
        raise ValueError(f"{path}: missing column(s) {missing}; has {list(pairs.columns)}")
    if unknown := sorted(set(pairs["level"]) - set(LEVELS)):
        raise ValueError(f"{path}: unknown level(s) {unknown}; expected {list(LEVELS)}")
    for c in ("word1", "word2"):
        pairs[c] = pairs[c].astype(str).str.strip().str.lower()
    return pairs
