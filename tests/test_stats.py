"""Tests for expertalign.stats with answers known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from expertalign.stats import (
    SpearmanResult,
    bootstrap_mean_ci,
    bootstrap_spearman,
    jaccard_matrix,
    jaccard_rows,
    paired_spearman_difference,
    spearman_ci,
    williams_test,
)


def _correlated(n: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return x, x + noise * rng.normal(size=n)


def test_spearman_ci_matches_scipy_and_brackets_rho() -> None:
    x, y = _correlated(300, 1.0, 0)
    res = spearman_ci(x, y, n_boot=500, seed=1)
    ref = sps.spearmanr(x, y)
    assert isinstance(res, SpearmanResult)
    assert res.rho == pytest.approx(ref.statistic)
    assert res.p_value == pytest.approx(ref.pvalue)
    assert res.n == 300 and res.n_boot_valid == 500 and not res.degenerate
    assert res.ci_low < res.rho < res.ci_high
    assert res.ci_high - res.ci_low < 0.3


def test_spearman_ci_is_seeded_and_level_widens() -> None:
    x, y = _correlated(200, 1.0, 3)
    a = spearman_ci(x, y, n_boot=300, seed=7)
    b = spearman_ci(x, y, n_boot=300, seed=7)
    c = spearman_ci(x, y, n_boot=300, seed=7, level=0.5)
    assert a == b
    assert a.ci_low < c.ci_low < c.ci_high < a.ci_high


def test_bootstrap_replicates_equal_loop_over_scipy() -> None:
    x, y = _correlated(40, 0.5, 5)
    x = np.round(x, 1)  # ties, so average ranks matter
    boots = bootstrap_spearman(x, y, n_boot=20, seed=11)
    idx = np.random.default_rng(11).integers(0, 40, size=(20, 40))
    ref = [sps.spearmanr(x[i], y[i]).statistic for i in idx]
    np.testing.assert_allclose(boots, ref, rtol=1e-10, atol=1e-12)


def test_spearman_ci_perfect_monotone() -> None:
    x = np.arange(50.0)
    res = spearman_ci(x, np.exp(x / 10), n_boot=100)
    assert res.rho == pytest.approx(1.0)
    assert res.ci_low == pytest.approx(1.0) and res.ci_high == pytest.approx(1.0)


def test_spearman_ci_constant_input_flags_not_crashes() -> None:
    res = spearman_ci(np.ones(20), np.arange(20.0))
    assert res.degenerate and math.isnan(res.rho) and math.isnan(res.ci_low)
    assert res.n == 20


def test_spearman_ci_nan_policy() -> None:
    x, y = _correlated(50, 1.0, 2)
    x[3] = np.nan
    with pytest.raises(ValueError, match="position 3"):
        spearman_ci(x, y)
    res = spearman_ci(x, y, n_boot=50, nan_policy="omit")
    assert res.n == 49


def test_spearman_ci_bad_inputs() -> None:
    with pytest.raises(ValueError, match="length"):
        spearman_ci([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 3"):
        spearman_ci([1, 2], [1, 2])
    with pytest.raises(ValueError, match="level"):
        spearman_ci([1, 2, 3], [1, 2, 3], level=1.5)


def test_paired_difference_detects_better_predictor() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=400)
    good = y + 0.3 * rng.normal(size=400)
    bad = y + 3.0 * rng.normal(size=400)
    diff, lo, hi, p = paired_spearman_difference(good, bad, y, n_boot=500, seed=0)
    expected = sps.spearmanr(good, y).statistic - sps.spearmanr(bad, y).statistic
    assert diff == pytest.approx(expected)
    assert 0 < lo < diff < hi
    assert p == pytest.approx(1 / 501 * 2)  # no resample crosses 0: smallest attainable p


def test_paired_difference_of_identical_predictors_is_zero() -> None:
    x, y = _correlated(100, 1.0, 4)
    diff, lo, hi, p = paired_spearman_difference(x, x.copy(), y, n_boot=100)
    assert diff == 0.0 and lo == 0.0 and hi == 0.0 and p == 1.0


def test_paired_difference_null_p_not_small() -> None:
    # two independent noisy copies of the same signal: equal population rho
    rng = np.random.default_rng(9)
    y = rng.normal(size=300)
    a = y + rng.normal(size=300)
    b = y + rng.normal(size=300)
    _, lo, hi, p = paired_spearman_difference(a, b, y, n_boot=400, seed=1)
    assert lo < 0 < hi or p > 0.01


def test_williams_matches_hand_computation() -> None:
    # r12=.5, r13=.3, r23=.4, n=100:
    # |R| = 1 - .25 - .09 - .16 + 2(.5)(.3)(.4) = .62 ; rbar = .4
    # den = 2(99/97)(.62) + .16(.6)^3 = 1.2655670 + .03456 = 1.3001270
    # t = .2 sqrt(99 * 1.4) / sqrt(1.3001270) = 2.3545700 / 1.1402311 = 2.06499
    t, p = williams_test(0.5, 0.3, 0.4, 100)
    assert t == pytest.approx(2.06499, abs=1e-5)
    assert p == pytest.approx(2 * sps.t.sf(2.0649936, 97), rel=1e-6)
    assert 0.04 < p < 0.045


def test_williams_symmetric_and_null() -> None:
    t1, p1 = williams_test(0.5, 0.3, 0.4, 100)
    t2, p2 = williams_test(0.3, 0.5, 0.4, 100)
    assert t1 == pytest.approx(-t2) and p1 == pytest.approx(p2)
    assert williams_test(0.4, 0.4, 0.2, 50) == (0.0, 1.0)


def test_williams_rejects_impossible_correlations() -> None:
    with pytest.raises(ValueError, match="determinant"):
        williams_test(0.9, -0.9, 0.9, 100)
    with pytest.raises(ValueError, match="n must be"):
        williams_test(0.5, 0.3, 0.4, 3)
    with pytest.raises(ValueError, match="r12"):
        williams_test(1.5, 0.3, 0.4, 30)


def test_bootstrap_mean_ci_stays_in_the_data_and_is_seeded() -> None:
    few = np.array([0.0, 0.05, 1.0])  # a t interval here would reach below 0 and above 1
    mean, low, high = bootstrap_mean_ci(few)
    assert mean == pytest.approx(1.05 / 3)
    assert 0.0 <= low < mean < high <= 1.0
    assert bootstrap_mean_ci(few, seed=1) == bootstrap_mean_ci(few, seed=1)
    rng = np.random.default_rng(0)
    big = rng.normal(2.0, 1.0, size=4000)
    _, low, high = bootstrap_mean_ci(big)
    assert low < 2.0 < high and high - low == pytest.approx(2 * 1.96 / np.sqrt(4000), rel=0.15)
    assert bootstrap_mean_ci([0.3, 0.3, 0.3]) == pytest.approx((0.3, 0.3, 0.3))
    assert all(math.isnan(x) for x in bootstrap_mean_ci([]))


def test_jaccard_matrix_known_values() -> None:
    m = np.array(
        [
            [1, 1, 0, 0],  # A
            [1, 1, 0, 0],  # A again
            [0, 1, 1, 0],  # shares 1 of 3 with A
            [0, 0, 0, 0],  # empty
        ],
        dtype=bool,
    )
    j = jaccard_matrix(m)
    assert j.dtype == np.float64 and j.shape == (4, 4)
    assert j[0, 1] == 1.0 and j[0, 0] == 1.0
    assert j[0, 2] == pytest.approx(1 / 3) and j[2, 0] == pytest.approx(1 / 3)
    assert (j[3] == 0).all() and (j[:, 3] == 0).all()


def test_jaccard_matrix_matches_sets_on_random_masks() -> None:
    rng = np.random.default_rng(0)
    m = rng.random((12, 500)) < 0.1
    j = jaccard_matrix(m)
    sets = [set(np.flatnonzero(r)) for r in m]
    for a in range(12):
        for b in range(12):
            u = len(sets[a] | sets[b])
            ref = len(sets[a] & sets[b]) / u if u else 0.0
            assert j[a, b] == pytest.approx(ref)
    np.testing.assert_allclose(jaccard_matrix(m[:3], m[3:]), j[:3, 3:])


def test_jaccard_rows_and_validation() -> None:
    a = np.array([[1, 1, 0], [0, 0, 0], [1, 0, 0]], dtype=bool)
    b = np.array([[1, 1, 0], [0, 0, 0], [0, 1, 0]], dtype=bool)
    np.testing.assert_array_equal(jaccard_rows(a, b), [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="boolean"):
        jaccard_matrix(np.array([[0.5, 1.0]]))
    with pytest.raises(ValueError, match="2-D"):
        jaccard_matrix(np.array([True, False]))


def _loop_bootstrap(x: np.ndarray, y: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Bootstrap replicates of Spearman's rho, one scipy call per resample (pairs resampled with
    ``default_rng(seed).integers(0, n, (n_boot, n))``, the package's documented scheme)."""
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    return np.array([sps.spearmanr(x[i], y[i]).statistic for i in idx])


@pytest.mark.parametrize("level", [0.95, 0.9])
def test_spearman_ci_endpoints_are_the_bootstrap_percentiles(level) -> None:
    x, y = _correlated(60, 1.5, 21)
    x = np.round(x, 1)  # ties
    res = spearman_ci(x, y, n_boot=400, seed=3, level=level)
    boots = _loop_bootstrap(x, y, 400, 3)
    alpha = (1 - level) / 2
    low, high = np.quantile(boots[np.isfinite(boots)], [alpha, 1 - alpha])
    assert res.ci_low == pytest.approx(low, abs=1e-12)
    assert res.ci_high == pytest.approx(high, abs=1e-12)


def test_paired_difference_ci_and_p_are_from_the_paired_resamples() -> None:
    rng = np.random.default_rng(8)
    y = rng.normal(size=50)
    a, b = y + rng.normal(size=50), y + 1.5 * rng.normal(size=50)
    diff, low, high, p = paired_spearman_difference(a, b, y, n_boot=300, seed=4)
    d = _loop_bootstrap(a, y, 300, 4) - _loop_bootstrap(b, y, 300, 4)
    assert (low, high) == pytest.approx(tuple(np.quantile(d, [0.025, 0.975])), abs=1e-12)
    tail = min(np.count_nonzero(d <= 0), np.count_nonzero(d >= 0))
    assert p == pytest.approx(min(1.0, 2 * (1 + tail) / (1 + d.size)), abs=1e-12)


def test_paired_difference_false_positive_rate_is_about_five_percent() -> None:
    """200 draws under the null (two equally noisy copies of the signal): p < 0.05 in about 5 %
    of them. Seeds are fixed, so the count is deterministic: 10 of 200 here; the bounds are
    the 2.5 % and 97.5 % quantiles of Binomial(200, 0.05) (one-sided p-values give ~9 %)."""
    n_draws, rejected = 200, 0
    for draw in range(n_draws):
        rng = np.random.default_rng(1000 + draw)
        y = rng.normal(size=60)
        a, b = y + rng.normal(size=60), y + rng.normal(size=60)
        rejected += paired_spearman_difference(a, b, y, n_boot=400, seed=draw)[3] < 0.05
    assert 4 <= rejected <= 16, f"{rejected} of {n_draws} null draws rejected at 5 %"
