"""The analysis figures: each plot writes a PNG, and bad input is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_data import _pilot_data, _synthetic_spp, _units
from workflow_helpers import _assert_png

from expertalign.analysis import development as dev
from expertalign.analysis import development_figures, figures, pilot


def test_a_bootstrap_ci_that_excludes_rho_is_drawn(tmp_path: Path) -> None:
    """A percentile-bootstrap CI need not contain ρ (few pairs, skewed resamples: the
    rehearsal's 76-pair table gave ρ −0.128 with CI [−0.285, +0.103] beside ρ +0.291 with CI
    [+0.062, +0.499], and some rows with ρ below ci_low); the figures draw the interval
    as computed instead of failing on a negative error-bar length."""
    align = pd.DataFrame(
        {
            "model": ["m", "m"],
            "checkpoint": ["step512", "step143000"],
            "tau": [0.5, 0.5],
            "rho": [-0.30, 0.2],
            "ci_low": [-0.25, 0.25],  # above rho on the first row, on the second too
            "ci_high": [0.10, 0.40],
        }
    )
    _assert_png(figures.plot_alignment_by_checkpoint(align, tmp_path / "align.png", reference=None))
    base = pd.DataFrame(
        {"model": ["m", "m"], "method": ["experts", "input embedding"], "rho": [0.1, 0.5]}
    ).assign(ci_low=[0.15, 0.2], ci_high=[0.3, 0.45])
    _assert_png(figures.plot_baselines(base, tmp_path / "base.png", reference=0.84))


def test_figures_write_pngs(tmp_path: Path) -> None:
    rows = []
    for model in ("pythia-70m", "pythia-410m"):
        for i, ckpt in enumerate(("step0", "step512", "step143000")):
            for tau in (0.5, 0.9):
                rho = 0.1 * i + (0.1 if model.endswith("410m") else 0.0)
                rows.append((model, ckpt, tau, rho, rho - 0.05, rho + 0.05, 10.0 ** (i + 1)))
    align = pd.DataFrame(
        rows, columns=["model", "checkpoint", "tau", "rho", "ci_low", "ci_high", "mean_size"]
    )
    _assert_png(
        figures.plot_alignment_by_checkpoint(align, tmp_path / "a" / "align.png", reference=0.84)
    )
    sizes = align.assign(ci_low=align.mean_size * 0.8, ci_high=align.mean_size * 1.2)
    _assert_png(figures.plot_set_sizes(sizes, tmp_path / "sizes.png"))
    base = pd.DataFrame(
        {
            "model": ["m1", "m1", "m1", "m2", "m2", "m2"],
            "method": ["experts", "input embedding", "AP cosine"] * 2,
            "rho": [0.5, 0.3, 0.4, 0.6, 0.35, 0.45],
        }
    ).assign(ci_low=lambda d: d.rho - 0.04, ci_high=lambda d: d.rho + 0.04)
    _assert_png(figures.plot_baselines(base, tmp_path / "base.png", reference=0.84))
    spp_df = _synthetic_spp({"none": 0.1, "weak": 0.14, "strong": 0.22}, 20, 0)
    _assert_png(figures.plot_spp_overlap(spp_df, tmp_path / "spp.png", caption="levels ..."))
    units = _units()
    counts = dev.unit_expert_counts(
        np.random.default_rng(0).random((5, len(units))), taus=(0.5, 0.9)
    )
    dist = pd.concat(
        [
            dev.expert_distribution(counts, units, 5, by=by).assign(
                model=model, checkpoint="step143000", concepts=group, grouping="+".join(by)
            )
            for model in ("m1", "m2")
            for group in ("all", "broader", "specific")
            for by in (("layer", "kind"), ("kind", "submodule"))
        ]
    )
    _assert_png(development_figures.plot_expert_distribution(dist, tmp_path / "dist.png"))
    r, pools, neg = _pilot_data()
    res = pilot.pilot_stability(
        r.T.copy().T,
        pools,
        neg,
        n_positives=(5, 10),
        n_negatives=(40, 80),
        taus=(0.5, 0.8),
        k=2,
        seed=0,
    )
    _assert_png(figures.plot_pilot(res.summary.assign(model="m"), tmp_path / "pilot.png"))


def test_figure_input_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lacks column"):
        figures.plot_baselines(
            pd.DataFrame({"method": ["x"], "rho": [0.1]}), tmp_path / "x.png", reference=None
        )
    no_groups = pd.DataFrame({"layer": [0], "kind": ["mlp"], "share_of_units": [0.1]})
    with pytest.raises(ValueError, match="lacks column"):
        development_figures.plot_expert_distribution(no_groups, tmp_path / "h.png")
    assert not (tmp_path / "h.png").exists()
