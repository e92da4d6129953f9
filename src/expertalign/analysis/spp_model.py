"""The mixed-effects model of expert overlap by SPP relation level (paper App. B).

Usage::

    from expertalign.analysis import spp_model

    # the Jaccard overlap of each pair's expert sets, one row per pair and model (final checkpoint):
    fit = spp_model.fit_mixed_model(df, size_order=["pythia-70m", "pythia-1b", "pythia-12b"])
    fit.coefficients    # term, estimate, se, z, p, structure
    fit.caption
    spp_model.sliding_difference(spp_model.LEVELS)   # the contrasts, one row per level

(all names here are also importable from :mod:`expertalign.analysis.spp`, which reads the pairs.)

One fit across model sizes; model and relation level both sliding-difference coded
(:func:`sliding_difference`); crossed random intercepts for the two concepts of a pair, the most
complex structure of :data:`STRUCTURES` that converges.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "LEVELS",
    "STRUCTURES",
    "MixedModelFit",
    "sliding_difference",
    "design",
    "fit_mixed_model",
]

#: SPP relation levels, weakest first (the order of the sliding differences)
LEVELS = ("none", "weak", "strong")


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


# Random-effect structures tried in turn, most complex first ("maximal that converges"):
# crossed intercepts for both concepts of a pair, plus one per pair when a pair is measured
# in several models; then the two concept intercepts alone (the structure the paper reports).
STRUCTURES = (("word1", "word2", "pair"), ("word1", "word2"))
_VC = {"word1": "0 + C(_w1)", "word2": "0 + C(_w2)", "pair": "0 + C(_pair)"}


def design(
    df: pd.DataFrame,
    response: str = "overlap",
    size: str = "model",
    size_order: Sequence[str] | None = None,
    interaction: bool = False,
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
        from expertalign.analysis.spp import levels_caption  # spp imports this module

        caption = df.attrs.get("caption") or levels_caption()
    sizes = [names[c] for c in fixed if c.startswith("size") and "_" not in c]
    caption = (
        f"{caption} One linear mixed model of {response} with sliding-difference contrasts for "
        "relation level (weak − none, strong − weak)"
        + (f" and model ({', '.join(sizes)})" if sizes else "")
        + (" and their interaction" if interaction and sizes else "")
        + "; random intercepts "
        + ", ".join(
            {
                "word1": "for the prime",
                "word2": "for the target",
                "pair": "for the pair (measured in several models)",
            }[s]
            for s in structure
        )
        + (
            " (the most complex structure tried that converged)"
            if converged
            else " (no structure tried converged cleanly; see the fit's warnings)"
        )
        + f"; {'REML' if reml else 'ML'}, n = {len(d)}."
    )
    return MixedModelFit(table, vcomp, caption, int(len(d)), converged, fit_warnings, res)
