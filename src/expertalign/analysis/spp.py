"""Semantic Priming Project (SPP) relation levels and a mixed-effects model of expert overlap.

Usage::

    from expertalign.analysis import spp

    levels = spp.relation_levels("/work/shared/data/SPP", n_per_level=100, seed=0)
    levels.pairs        # word1 (prime), word2 (target), level (none/weak/strong), fas
    levels.words        # sorted distinct words that need concepts
    levels.caption      # how the levels were built, for figure/table captions

    # after computing the Jaccard overlap of each pair's expert sets (one row per pair and model):
    fit = spp.fit_mixed_model(df)          # df: word1, word2, level, overlap [, model, model_size]
    fit.coefficients    # term, estimate, se, z, p  (Intercept, weak-none, strong-weak[, ...])
    fit.caption

Levels (only first-associate primes are in the shared SPP export): *strong* and *weak* are
first-associate related prime–target pairs from ``spp_assoc-related_*.csv`` split by forward
association strength (FAS): by default the top and bottom FAS terciles (the middle tercile is left
out so the two levels are clearly apart; ``split="median"`` uses above / at-or-below the median
instead). *none* pairs each target with its matched unrelated prime from
``spp_assoc-unrelated_*.csv``. Primes are lower-cased (the export writes them in capitals).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "LEVELS",
    "SLIDING_DIFFERENCE",
    "SPPLevels",
    "MixedModelFit",
    "read_spp",
    "relation_levels",
    "levels_caption",
    "fit_mixed_model",
]

LEVELS = ("none", "weak", "strong")

# successive-difference ("sliding") contrasts for none < weak < strong (MASS::contr.sdif): the
# coefficients are weak - none and strong - weak, and the intercept is the mean of the level means
SLIDING_DIFFERENCE = pd.DataFrame(
    {"weak_vs_none": [-2 / 3, 1 / 3, 1 / 3], "strong_vs_weak": [-1 / 3, -1 / 3, 2 / 3]},
    index=list(LEVELS),
)

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


def _add_contrasts(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    unknown = set(out["level"]) - set(LEVELS)
    if unknown:
        raise ValueError(f"unknown level(s) {sorted(unknown)}; expected {list(LEVELS)}")
    for col in SLIDING_DIFFERENCE.columns:
        out[col] = out["level"].map(SLIDING_DIFFERENCE[col]).astype(float)
    return out


def fit_mixed_model(
    df: pd.DataFrame,
    response: str = "overlap",
    size: str = "model_size",
    caption: str | None = None,
    reml: bool = True,
) -> MixedModelFit:
    """MixedLM: ``response ~ weak_vs_none + strong_vs_weak [+ log10_size_c]`` with crossed random
    intercepts for word1 and word2.

    The level factor uses sliding-difference contrasts (:data:`SLIDING_DIFFERENCE`), so the two
    coefficients are the differences of level means weak − none and strong − weak. Random
    intercepts are variance components of one group spanning all rows (statsmodels' way of
    writing crossed random effects); when a pair occurs in several rows (several models) a random
    intercept per unordered pair is added too. When ``df`` has a ``size`` column with more than
    one distinct value (several models), the centred log10 of it is added as a fixed effect
    (``log10_model_size``). Returns the fixed-effect table (term, estimate, se, z, p).
    """
    import statsmodels.formula.api as smf
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    missing = [c for c in ("word1", "word2", "level", response) if c not in df.columns]
    if missing:
        raise ValueError(f"df lacks column(s) {missing}; has {list(df.columns)}")
    # statsmodels aligns variance-component designs by index; a repeated index breaks them
    d = _add_contrasts(df).reset_index(drop=True)
    d = d.rename(columns={response: "_y"})
    d["_y"] = pd.to_numeric(d["_y"], errors="raise").astype(float)
    if not np.isfinite(d["_y"]).all():
        raise ValueError(f"column {response!r} has non-finite values")
    present = [lv for lv in LEVELS if (d["level"] == lv).any()]
    if len(present) < 3:
        raise ValueError(f"need all three levels {list(LEVELS)}; have {present}")
    d["_w1"] = d["word1"].astype(str)
    d["_w2"] = d["word2"].astype(str)
    d["_group"] = 1
    fixed = "_y ~ weak_vs_none + strong_vs_weak"
    if size in d.columns and d[size].nunique() > 1:
        s = np.log10(pd.to_numeric(d[size], errors="raise").astype(float))
        d["log10_model_size"] = s - s.mean()
        fixed += " + log10_model_size"
    vc = {"word1": "0 + C(_w1)", "word2": "0 + C(_w2)"}
    # the same pair measured in several models shares pair-specific noise; without a pair
    # intercept that noise would be counted as independent evidence for the level contrasts
    pair_key = [" | ".join(sorted(ab)) for ab in zip(d["_w1"], d["_w2"])]
    n_levels = pd.Series(d["level"].to_numpy()).groupby(pair_key).nunique()
    if (n_levels > 1).any():
        raise ValueError(
            f"pair(s) {list(n_levels[n_levels > 1].index[:5])} occur with several levels; a pair "
            "has one relation level"
        )
    if len(set(pair_key)) < len(pair_key):
        d["_pair"] = pair_key
        vc["pair"] = "0 + C(_pair)"
    model = smf.mixedlm(fixed, d, groups="_group", re_formula="0", vc_formula=vc)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        res = model.fit(reml=reml, method=["lbfgs", "powell"])
    converged = bool(getattr(res, "converged", True))
    # e.g. "The MLE may be on the boundary of the parameter space" when a word variance is ~0:
    # worth reporting, but the fixed effects are still valid
    fit_warnings = [str(w.message) for w in caught if issubclass(w.category, Warning)]
    names = list(res.fe_params.index)
    table = pd.DataFrame(
        {
            "term": names,
            "estimate": res.fe_params.to_numpy(),
            "se": res.bse_fe.reindex(names).to_numpy(),
            "z": res.tvalues.reindex(names).to_numpy(),
            "p": res.pvalues.reindex(names).to_numpy(),
        }
    )
    table["term"] = table["term"].replace(
        {"weak_vs_none": "weak - none", "strong_vs_weak": "strong - weak"}
    )
    vcomp = dict(zip(model.exog_vc.names, np.asarray(res.vcomp, dtype=float)))
    vcomp["residual"] = float(res.scale)
    if caption is None:
        caption = df.attrs.get("caption") or levels_caption()
    caption = (
        f"{caption} Linear mixed model of {response} with sliding-difference contrasts "
        "(weak − none, strong − weak), crossed random intercepts for both words of a pair"
        + (" and for the pair (measured in several models)" if "pair" in vc else "")
        + (", and centred log10 model size as a fixed effect" if "log10" in fixed else "")
        + f"; {'REML' if reml else 'ML'}, n = {len(d)}."
    )
    return MixedModelFit(table, vcomp, caption, int(len(d)), converged, fit_warnings, res)
