"""Alignment statistics: Spearman with bootstrap CIs, paired differences, Williams' test, Jaccard.

Usage::

    from expertalign.stats import spearman_ci, paired_spearman_difference, williams_test
    from expertalign.stats import jaccard_matrix

    res = spearman_ci(model_similarity, human_scores, n_boot=1000, seed=0)
    res.rho, res.ci_low, res.ci_high, res.p_value, res.n

    diff, lo, hi, p = paired_spearman_difference(experts_sim, baseline_sim, human_scores)
    t, p = williams_test(r12=0.6, r13=0.4, r23=0.5, n=1000)   # r12 vs r13, variable 1 shared
    J = jaccard_matrix(expert_masks)            # bool [concepts, units] -> float64 [C, C]

Bootstraps resample pairs (rows) with replacement; all resamples are ranked at once with
``scipy.stats.rankdata(..., axis=1)`` (average ranks for ties), and confidence intervals are
percentile intervals.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

__all__ = [
    "SpearmanResult",
    "spearman_ci",
    "bootstrap_spearman",
    "paired_spearman_difference",
    "williams_test",
    "bootstrap_mean_ci",
    "jaccard_matrix",
    "jaccard_rows",
]

# bootstrap resamples are processed in blocks of at most this many values per array, so that a
# 10000 x 3000 bootstrap does not allocate gigabytes at once
_BLOCK_VALUES = 4_000_000


@dataclass(frozen=True)
class SpearmanResult:
    """Spearman's rho with a percentile-bootstrap CI.

    ``p_value`` is scipy's asymptotic (t-distribution) two-sided p-value of rho = 0. ``degenerate``
    is True when x or y is constant, in which case rho, the CI and p are nan. ``n_boot_valid``
    counts the resamples with a defined rho (a resample can be constant by chance with few pairs).
    """

    rho: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    degenerate: bool = False
    n_boot_valid: int = 0


def _as_pairs(*arrays: ArrayLike, nan_policy: str) -> tuple[NDArray[np.float64], ...]:
    if nan_policy not in ("raise", "omit"):
        raise ValueError(f"nan_policy must be 'raise' or 'omit', not {nan_policy!r}")
    out = [np.asarray(a, dtype=np.float64) for a in arrays]
    for i, a in enumerate(out):
        if a.ndim != 1:
            raise ValueError(f"argument {i + 1} must be 1-D, has shape {a.shape}")
    if len({a.shape[0] for a in out}) != 1:
        raise ValueError(f"arguments differ in length: {[a.shape[0] for a in out]}")
    finite = np.logical_and.reduce([np.isfinite(a) for a in out])
    if not finite.all():
        if nan_policy == "raise":
            bad = np.flatnonzero(~finite)
            raise ValueError(
                f"{bad.size} pair(s) have non-finite values (first at position {bad[0]}); "
                "pass nan_policy='omit' to drop them"
            )
        out = [a[finite] for a in out]
    return tuple(out)


def _rowwise_pearson(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Pearson r of each row of a with the same row of b; nan where a row is constant."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    num = np.einsum("ij,ij->i", a, b)
    den = np.sqrt(np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", b, b))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = num / den
    # rounding can leave a constant row with a tiny nonzero spread; treat it as constant
    r[den <= 1e-12 * a.shape[1] ** 2] = np.nan
    return np.clip(r, -1.0, 1.0)


def _boot_indices(rng: np.random.Generator, n_boot: int, n: int) -> NDArray[np.intp]:
    return rng.integers(0, n, size=(n_boot, n))


def _spearman_of_resamples(
    idx: NDArray[np.intp], xs: tuple[NDArray[np.float64], ...], y: NDArray[np.float64]
) -> list[NDArray[np.float64]]:
    """rho(x_k[idx_b], y[idx_b]) for every resample b and every x_k, in blocks."""
    n_boot, n = idx.shape
    block = max(1, _BLOCK_VALUES // max(n, 1))
    out = [np.empty(n_boot) for _ in xs]
    for start in range(0, n_boot, block):
        sl = idx[start : start + block]
        ry = sps.rankdata(y[sl], axis=1)
        for k, x in enumerate(xs):
            out[k][start : start + block] = _rowwise_pearson(sps.rankdata(x[sl], axis=1), ry)
    return out


def _percentile_ci(values: NDArray[np.float64], level: float) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(v, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _check_boot(n_boot: int, level: float) -> None:
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, not {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), not {level}")


def _spearman_point(x: NDArray[np.float64], y: NDArray[np.float64]) -> tuple[float, float]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on constant input; we flag it instead
        res = sps.spearmanr(x, y)
    return float(res.statistic), float(res.pvalue)


def bootstrap_spearman(
    x: ArrayLike, y: ArrayLike, n_boot: int = 1000, seed: int = 0, nan_policy: str = "raise"
) -> NDArray[np.float64]:
    """The ``n_boot`` bootstrap replicates of Spearman's rho (nan for constant resamples)."""
    xa, ya = _as_pairs(x, y, nan_policy=nan_policy)
    _check_boot(n_boot, 0.5)
    if xa.size < 3:
        raise ValueError(f"need at least 3 pairs, have {xa.size}")
    idx = _boot_indices(np.random.default_rng(seed), n_boot, xa.size)
    return _spearman_of_resamples(idx, (xa,), ya)[0]


def spearman_ci(
    x: ArrayLike,
    y: ArrayLike,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    nan_policy: str = "raise",
) -> SpearmanResult:
    """Spearman's rho of x and y with a percentile bootstrap CI over pairs.

    Non-finite pairs raise unless ``nan_policy="omit"``, which drops them (``n`` counts the pairs
    used). Constant x or y gives a result with nan statistics and ``degenerate=True``.
    """
    _check_boot(n_boot, level)
    xa, ya = _as_pairs(x, y, nan_policy=nan_policy)
    n = int(xa.size)
    if n < 3:
        raise ValueError(f"need at least 3 pairs, have {n}")
    if np.ptp(xa) == 0 or np.ptp(ya) == 0:
        return SpearmanResult(math.nan, math.nan, math.nan, math.nan, n, True, 0)
    rho, p = _spearman_point(xa, ya)
    boots = bootstrap_spearman(xa, ya, n_boot=n_boot, seed=seed)
    lo, hi = _percentile_ci(boots, level)
    return SpearmanResult(rho, lo, hi, p, n, False, int(np.isfinite(boots).sum()))


def paired_spearman_difference(
    x1: ArrayLike,
    x2: ArrayLike,
    y: ArrayLike,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    nan_policy: str = "raise",
) -> tuple[float, float, float, float]:
    """rho(x1, y) - rho(x2, y) with a paired bootstrap CI and two-sided p-value.

    Both correlations are recomputed on the same resampled pairs. The p-value inverts the
    percentile interval: p = min(1, 2 * min(P(d* <= 0), P(d* >= 0))), with the +1 correction
    (1 + count) / (1 + n_valid) so it is never 0. Returns ``(diff, ci_low, ci_high, p_value)``;
    all nan if any of x1, x2, y is constant.
    """
    _check_boot(n_boot, level)
    a, b, ya = _as_pairs(x1, x2, y, nan_policy=nan_policy)
    n = a.size
    if n < 3:
        raise ValueError(f"need at least 3 pairs, have {n}")
    if np.ptp(a) == 0 or np.ptp(b) == 0 or np.ptp(ya) == 0:
        return math.nan, math.nan, math.nan, math.nan
    diff = _spearman_point(a, ya)[0] - _spearman_point(b, ya)[0]
    idx = _boot_indices(np.random.default_rng(seed), n_boot, n)
    r1, r2 = _spearman_of_resamples(idx, (a, b), ya)
    d = r1 - r2
    d = d[np.isfinite(d)]
    if d.size == 0:
        return float(diff), math.nan, math.nan, math.nan
    lo, hi = _percentile_ci(d, level)
    le = (1 + np.count_nonzero(d <= 0)) / (1 + d.size)
    ge = (1 + np.count_nonzero(d >= 0)) / (1 + d.size)
    return float(diff), lo, hi, float(min(1.0, 2.0 * min(le, ge)))


def bootstrap_mean_ci(
    values: ArrayLike, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of ``values`` with a percentile-bootstrap CI: ``(mean, low, high)``, all nan for no
    values. Unlike a t interval, the CI never leaves the range of the data (a Jaccard mean's CI
    stays in [0, 1]) and makes no normality assumption about a handful of overlaps."""
    _check_boot(n_boot, level)
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan, math.nan
    means = v[_boot_indices(np.random.default_rng(seed), n_boot, v.size)].mean(axis=1)
    low, high = _percentile_ci(means, level)
    return float(v.mean()), low, high


def williams_test(r12: float, r13: float, r23: float, n: int) -> tuple[float, float]:
    """Williams' t for H0: rho12 = rho13, two correlations sharing variable 1 (Steiger 1980, eq. 7).

    With ``|R| = 1 - r12² - r13² - r23² + 2 r12 r13 r23`` and ``rbar = (r12 + r13) / 2``::

        t = (r12 - r13) * sqrt((n - 1)(1 + r23)) /
            sqrt(2 (n - 1)/(n - 3) |R| + rbar² (1 - r23)³)

    on n - 3 degrees of freedom. Typical use: variable 1 = human scores, 2 = expert overlap,
    3 = a baseline similarity (all as Spearman rhos). Returns ``(t, two-sided p)``.
    """
    for name, r in (("r12", r12), ("r13", r13), ("r23", r23)):
        if not -1.0 <= r <= 1.0 or not math.isfinite(r):
            raise ValueError(f"{name} must be a correlation in [-1, 1], not {r}")
    if n <= 3:
        raise ValueError(f"n must be > 3, not {n}")
    det = 1.0 - r12**2 - r13**2 - r23**2 + 2.0 * r12 * r13 * r23
    if det < -1e-12:
        raise ValueError(
            f"r12={r12}, r13={r13}, r23={r23} cannot be correlations of the same three variables "
            f"(determinant {det:.3g} < 0)"
        )
    det = max(det, 0.0)
    rbar = (r12 + r13) / 2.0
    den = 2.0 * (n - 1) / (n - 3) * det + rbar**2 * (1.0 - r23) ** 3
    num = (r12 - r13) * math.sqrt((n - 1) * (1.0 + r23))
    if den <= 0.0:
        if num == 0.0:
            return 0.0, 1.0
        return math.copysign(math.inf, num), 0.0
    t = num / math.sqrt(den)
    p = float(2.0 * sps.t.sf(abs(t), df=n - 3))
    return float(t), p


def _as_masks(sets_bool: ArrayLike, name: str) -> NDArray[np.bool_]:
    m = np.asarray(sets_bool)
    if m.ndim != 2:
        raise ValueError(f"{name} must be 2-D [sets, units], has shape {m.shape}")
    if m.dtype != np.bool_:
        if not np.isin(m, (0, 1)).all():
            raise ValueError(f"{name} must be boolean (or 0/1)")
        m = m.astype(bool)
    return m


def _counts_dtype(n_units: int) -> type[np.floating]:
    # float32 sums of 0/1 products are exact integers below 2**24 and twice as fast as float64
    return np.float32 if n_units < 2**24 else np.float64


def jaccard_matrix(sets_bool: ArrayLike, other: ArrayLike | None = None) -> NDArray[np.float64]:
    """Jaccard index |A∩B| / |A∪B| between the rows of bool [C, U] (or rows of it and ``other``).

    Intersections come from one matrix product; pairs with an empty union get 0.
    """
    a = _as_masks(sets_bool, "sets_bool")
    b = a if other is None else _as_masks(other, "other")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"unit counts differ: {a.shape[1]} vs {b.shape[1]}")
    dt = _counts_dtype(a.shape[1])
    af = a.astype(dt)
    bf = af if other is None else b.astype(dt)
    inter = (af @ bf.T).astype(np.float64)
    union = a.sum(axis=1)[:, None].astype(np.float64) + b.sum(axis=1)[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


def jaccard_rows(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """Jaccard of row i of ``a`` with row i of ``b`` (e.g. one concept at two checkpoints)."""
    ma, mb = _as_masks(a, "a"), _as_masks(b, "b")
    if ma.shape != mb.shape:
        raise ValueError(f"shapes differ: {ma.shape} vs {mb.shape}")
    inter = np.logical_and(ma, mb).sum(axis=1).astype(np.float64)
    union = np.logical_or(ma, mb).sum(axis=1).astype(np.float64)
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out
