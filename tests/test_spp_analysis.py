"""SPP analysis: relation levels from the SPP data and the mixed model on planted overlaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from prerequisites import DATA, require
from synthetic_data import _synthetic_spp

from expertalign.analysis import spp, spp_model


@pytest.fixture
def spp_data():
    """The shared SPP exports: skipped without them locally, a failure in CI."""
    require(
        any((DATA / "SPP").glob("spp_assoc-related_*.csv")),
        f"SPP under {DATA} (set EXPERTALIGN_DATA)",
    )


needs_spp = pytest.mark.usefixtures("spp_data")


@needs_spp
def test_relation_levels_from_spp() -> None:
    lv = spp.relation_levels(DATA, n_per_level=50, seed=3)
    assert lv.pairs["level"].value_counts().to_dict() == {"none": 50, "weak": 50, "strong": 50}
    strong = lv.pairs.loc[lv.pairs.level == "strong", "fas"]
    weak = lv.pairs.loc[lv.pairs.level == "weak", "fas"]
    assert strong.min() > weak.max()
    assert lv.pairs.loc[lv.pairs.level == "none", "fas"].isna().all()
    assert lv.words == sorted(set(lv.pairs.word1) | set(lv.pairs.word2))
    assert all(w == w.lower() for w in lv.words)
    assert "tercile" in lv.caption and "seed 3" in lv.caption
    again = spp.relation_levels(DATA / "SPP", n_per_level=50, seed=3)
    pd.testing.assert_frame_equal(lv.pairs, again.pairs)
    med = spp.relation_levels(DATA, n_per_level=None, split="median")
    counts = med.pairs.level.value_counts()
    assert abs(counts["strong"] - counts["weak"]) < 0.05 * counts.sum()
    with pytest.raises(ValueError, match="eligible"):
        spp.relation_levels(DATA, n_per_level=100, vocabulary=set(lv.words[:20]))


def test_mixed_model_recovers_sliding_differences() -> None:
    df = _synthetic_spp({"none": 0.10, "weak": 0.14, "strong": 0.22}, 60, 0)
    fit = spp_model.fit_mixed_model(df)
    t = fit.coefficients.set_index("term")
    assert list(fit.coefficients.columns) == ["term", "estimate", "se", "z", "p", "structure"]
    # planted: weak - none = 0.04, strong - weak = 0.08, intercept = mean of level means
    for term, true in (
        ("weak - none", 0.04),
        ("strong - weak", 0.08),
        ("Intercept", (0.10 + 0.14 + 0.22) / 3),
    ):
        assert t.loc[term, "se"] < 0.01
        assert abs(t.loc[term, "estimate"] - true) < 3 * t.loc[term, "se"]
    assert t.loc["strong - weak", "p"] < 1e-6
    assert set(fit.variance_components) == {"word1", "word2", "residual"}
    assert "sliding-difference" in fit.caption and fit.n_obs == 180


def test_mixed_model_model_size_term_and_null() -> None:
    base = _synthetic_spp({"none": 0.1, "weak": 0.1, "strong": 0.1}, 30, 1)
    rng = np.random.default_rng(2)
    df = pd.concat(
        [
            base.assign(model="small"),
            base.assign(
                model="large", overlap=base.overlap + 0.05 + rng.normal(0, 0.01, len(base))
            ),
        ]
    )
    fit = spp_model.fit_mixed_model(df, size_order=["small", "large"], caption="Levels: test.")
    t = fit.coefficients.set_index("term")
    assert t.loc["large - small", "estimate"] == pytest.approx(0.05, abs=0.005)
    assert t.loc["weak - none", "p"] > 0.01 and t.loc["strong - weak", "p"] > 0.01
    assert fit.caption.startswith("Levels: test.") and "large - small" in fit.caption
    assert "pair" in fit.variance_components  # the same pairs in two models share noise


def test_mixed_model_input_errors() -> None:
    df = _synthetic_spp({"none": 0.1, "weak": 0.2}, 10, 0)
    three = _synthetic_spp({"none": 0.1, "weak": 0.2, "strong": 0.3}, 10, 0)
    clash = pd.concat([three, three.iloc[[0]].assign(level="strong")], ignore_index=True)
    with pytest.raises(ValueError, match="several levels"):
        spp_model.fit_mixed_model(clash)
    with pytest.raises(ValueError, match="three levels"):
        spp_model.fit_mixed_model(df)
    with pytest.raises(ValueError, match="unknown level"):
        spp_model.fit_mixed_model(df.assign(level="medium"))
    with pytest.raises(ValueError, match="lacks column"):
        spp_model.fit_mixed_model(df.drop(columns="overlap"))
