"""Semantic Priming Project (SPP) relation levels and a mixed-effects model of expert overlap.

Usage::

    from expertalign.analysis import spp

    levels = spp.relation_levels("/work/shared/data/SPP", n_per_level=100, seed=0)
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

The model (paper App. B): one fit across model sizes; model and relation level both
sliding-difference coded (:func:`sliding_difference`); crossed random intercepts for the two
concepts of a pair, the most complex structure of :data:`STRUCTURES` that converges.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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

LEVELS = ("none", "weak", "strong")

_RELATED_GLOB = "spp_assoc-related_*.csv"
_UNRELATED_GLOB = "spp_assoc-unrelated_*.csv"


@dataclass(frozen=True)
class SPPLevels:
    """Sampled pairs per relation level, the words they need, and a caption."""

    pairs: pd.DataFrame
    words: list[str]
    caption: str


@dataclass(frozen=True)
class MixedModelFit:
    """Fixed-effect coefficients (term, estimate, se, z, p), variance components and caption."""

    coefficients: pd.DataFrame
    variance_components: dict[str, float]
    caption: str
    n_obs: int
    converged: bool
    warnings: list[str]
    result: Any  # statsmodels MixedLMResults, for anything else


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


def levels_caption(split: str = "tercile", n_per_level: int | None = None, seed: int | None = None,
                   cuts: tuple[float, float] | None = None) -> str:
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


def sliding_difference(levels: Sequence[str]) -> pd.DataFrame:
    """Sliding-difference contrasts (R's ``MASS::contr.sdif``) for ordered ``levels``: column
    ``"b - a"``'s coefficient is the difference of the adjacent level means b and a, and the
    intercept the mean of the level means. Rows: levels."""
    names = [str(v) for v in levels]
    k = len(names)
    if k < 2 or len(set(names)) != k:
        raise ValueError(f"need at least 2 distinct levels, got {names}")
    cols = {}
    for j in range(1, k):
        cols[f"{names[j]} - {names[j - 1]}"] = [(j - k) / k if i < j else j / k for i in range(k)]
    return pd.DataFrame(cols, index=names)


_PAIR_COLUMNS = ["word1", "word2", "level", "fas", "relation"]


def write_pairs(pairs: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write sampled pairs (word1, word2, level, fas, relation) as TSV, atomically."""
    out = Path(path)
    if missing := [c for c in _PAIR_COLUMNS if c not in pairs.columns]:
        raise ValueError(f"pairs lack column(s) {missing}; have {list(pairs.columns)}")
    tmp = out.with_name(out.name + ".tmp")
    pairs[_PAIR_COLUMNS].to_csv(tmp, sep="\t", index=False, float_format="%.6g")
    tmp.replace(out)
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


# Random-effect structures tried in turn, most complex first ("maximal that converges"):
# crossed intercepts for both concepts of a pair, plus one per pair when a pair is measured
# in several models; then the two concept intercepts alone (the structure the paper reports).
STRUCTURES = (("word1", "word2", "pair"), ("word1", "word2"))
_VC = {"word1": "0 + C(_w1)", "word2": "0 + C(_w2)", "pair": "0 + C(_pair)"}


def design(df: pd.DataFrame, response: str = "overlap", size: str = "model",
           size_order: Sequence[str] | None = None, interaction: bool = False
           ) -> tuple[pd.DataFrame, list[str], dict[str, str]]:
    """Data for :func:`fit_mixed_model`: contrast columns added, fixed-effect columns, names.

    Relation level: sliding differences weak − none, strong − weak. ``size`` (a column naming
    the model of each row) with more than one value: sliding differences between successive
    models of ``size_order`` (small to large; default: order of appearance).
    """
    if missing := [c for c in ("word1", "word2", "level", response) if c not in df.columns]:
        raise ValueError(f"df lacks column(s) {missing}; has {list(df.columns)}")
    if unknown := set(df["level"]) - set(LEVELS):
        raise ValueError(f"unknown level(s) {sorted(unknown)}; expected {list(LEVELS)}")
    present = [lv for lv in LEVELS if (df["level"] == lv).any()]
    if len(present) < 3:
        raise ValueError(f"need all three levels {list(LEVELS)}; have {present}")
    # statsmodels aligns variance-component designs by index; a repeated index breaks them
    d = df.reset_index(drop=True).copy()
    d["_y"] = pd.to_numeric(d[response], errors="raise").astype(float)
    if not np.isfinite(d["_y"]).all():
        raise ValueError(f"column {response!r} has non-finite values")
    names: dict[str, str] = {}
    fixed: list[str] = []
    level_c = sliding_difference(LEVELS)
    for j, term in enumerate(level_c.columns):
        d[f"lvl{j}"] = d["level"].map(level_c[term]).astype(float)
        names[f"lvl{j}"] = term
        fixed.append(f"lvl{j}")
    size_cols: list[str] = []
    if size in d.columns and d[size].nunique() > 1:
        order = [str(m) for m in (size_order or dict.fromkeys(d[size].astype(str)))]
        if absent := sorted(set(d[size].astype(str)) - set(order)):
            raise ValueError(f"{size} value(s) {absent} missing from size_order {order}")
        order = [m for m in order if m in set(d[size].astype(str))]
        size_c = sliding_difference(order)
        for j, term in enumerate(size_c.columns):
            d[f"size{j}"] = d[size].astype(str).map(size_c[term]).astype(float)
            names[f"size{j}"] = term
            size_cols.append(f"size{j}")
        fixed += size_cols
        if interaction:
            for lv in [c for c in fixed if c.startswith("lvl")]:
                for sz in size_cols:
                    d[f"{lv}_{sz}"] = d[lv] * d[sz]
                    names[f"{lv}_{sz}"] = f"({names[lv]}) x ({names[sz]})"
                    fixed.append(f"{lv}_{sz}")
    d["_w1"] = d["word1"].astype(str)
    d["_w2"] = d["word2"].astype(str)
    d["_pair"] = [" | ".join(sorted(ab)) for ab in zip(d["_w1"], d["_w2"])]
    n_levels = pd.Series(d["level"].to_numpy()).groupby(d["_pair"].to_numpy()).nunique()
    if (n_levels > 1).any():
        raise ValueError(
            f"pair(s) {list(n_levels[n_levels > 1].index[:5])} occur with several levels; a pair "
            "has one relation level"
        )
    d["_group"] = 1
    return d, fixed, names


def fit_mixed_model(
    df: pd.DataFrame,
    response: str = "overlap",
    size: str = "model",
    size_order: Sequence[str] | None = None,
    interaction: bool = False,
    caption: str | None = None,
    reml: bool = True,
) -> MixedModelFit:
    """One linear mixed model of ``response`` on relation level and model (see :func:`design`)
    with crossed random intercepts for both concepts of a pair.

    Random effects are variance components of one group spanning all rows (statsmodels' way of
    writing crossed effects). The structures of :data:`STRUCTURES` are tried in turn (the pair
    intercept only when a pair occurs in several rows); the first whose fit converges without a
    warning is kept, else the last one with its warnings. Returns the fixed-effect table (term,
    estimate, se, z, p) with the chosen ``structure``.
    """
    import statsmodels.formula.api as smf

    d, fixed, names = design(df, response, size, size_order, interaction)
    repeated = d["_pair"].duplicated().any()
    tried = [s for s in STRUCTURES if repeated or "pair" not in s]
    formula = "_y ~ " + " + ".join(fixed)
    kept: tuple[Any, ...] | None = None
    failures: list[str] = []
    for structure in tried:
        vc = {name: _VC[name] for name in structure}
        model = smf.mixedlm(formula, d, groups="_group", re_formula="0", vc_formula=vc)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                res = model.fit(reml=reml, method=["lbfgs", "powell"])
            except (np.linalg.LinAlgError, ValueError) as err:  # e.g. a singular Hessian
                failures.append(f"{' + '.join(structure)}: {err}")
                continue
        # statsmodels warns "on the boundary" whenever a variance is < 0.01 in absolute terms,
        # which every Jaccard-scale variance is; judge singularity as lme4 does instead: a
        # random-effect sd below 1e-4 residual sds
        messages = [str(w.message) for w in caught if "boundary" not in str(w.message)]
        theta = np.sqrt(np.maximum(np.asarray(res.vcomp, dtype=float), 0) / res.scale)
        if (theta < 1e-4).any():
            messages.append(f"singular fit: a random-effect sd is ~0 ({' + '.join(structure)})")
        converged = bool(getattr(res, "converged", True)) and not messages
        kept = (structure, model, res, converged, messages)
        if converged:
            break
    if kept is None:
        raise ValueError(f"no random-effect structure could be fitted: {failures}")
    structure, model, res, converged, fit_warnings = kept
    fit_warnings = failures + fit_warnings
    names["Intercept"] = "Intercept"
    index = list(res.fe_params.index)
    table = pd.DataFrame(
        {
            "term": [names[t] for t in index],
            "estimate": res.fe_params.to_numpy(),
            "se": res.bse_fe.reindex(index).to_numpy(),
            "z": res.tvalues.reindex(index).to_numpy(),
            "p": res.pvalues.reindex(index).to_numpy(),
        }
    )
    table["structure"] = " + ".join(f"(1 | {s})" for s in structure)
    vcomp = dict(zip(model.exog_vc.names, np.asarray(res.vcomp, dtype=float)))
    vcomp["residual"] = float(res.scale)
    if caption is None:
        caption = df.attrs.get("caption") or levels_caption()
    sizes = [names[c] for c in fixed if c.startswith("size") and "_" not in c]
    caption = (
        f"{caption} One linear mixed model of {response} with sliding-difference contrasts for "
        "relation level (weak − none, strong − weak)"
        + (f" and model ({', '.join(sizes)})" if sizes else "")
        + (" and their interaction" if interaction and sizes else "")
        + "; random intercepts "
        + ", ".join({"word1": "for the prime", "word2": "for the target",
                     "pair": "for the pair (measured in several models)"}[s] for s in structure)
        + (" (the most complex structure tried that converged)" if converged
           else " (no structure tried converged cleanly; see the fit's warnings)")
        + f"; {'REML' if reml else 'ML'}, n = {len(d)}."
    )
    return MixedModelFit(table, vcomp, caption, int(len(d)), converged, fit_warnings, res)
