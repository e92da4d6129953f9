"""The paper's figures that were tables only (issue 24): pilot CIs and set sizes (Fig. 1, Fig. 9),
experts at every τ against the baselines (Fig. 3/10), τ = 0.9 and per-group development (App.
H.8-H.9, I, J). Each figure is drawn from a small synthetic table and the numbers it draws are
compared with an independent computation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.container import BarContainer
from synthetic_data import _units
from workflow_helpers import _assert_png

from expertalign.analysis import development as dev
from expertalign.analysis import development_figures, figures, pilot


def _percentile_bootstrap(values: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    """The documented procedure, written out: ``n_boot`` resamples with replacement drawn at once
    from ``default_rng(seed)``, the 2.5% and 97.5% quantiles of their means."""
    rng = np.random.default_rng(seed)
    means = np.array(
        [row.mean() for row in values[rng.integers(0, len(values), size=(n_boot, len(values)))]]
    )
    low, high = np.quantile(means, [0.025, 0.975])
    return float(low), float(high)


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list:
    """Every figure passed to save_figure (still readable after it is closed)."""
    figs: list = []
    for module in (figures, development_figures):
        real = module.save_figure

        def capture(fig, path, title=None, _real=real):
            figs.append(fig)
            return _real(fig, path, title)

        monkeypatch.setattr(module, "save_figure", capture)
    return figs


def _pairs(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for n_pos in (3, 6):
        for tau in (0.5, 0.9):
            for comparison, n, centre in (("within", 40, 0.7), ("across", 400, 0.2)):
                j = np.clip(rng.normal(centre + 0.02 * n_pos - 0.3 * (tau - 0.5), 0.15, n), 0, 1)
                rows += [(n_pos, 8, tau, comparison, x) for x in j]
    return pd.DataFrame(
        rows, columns=["n_positives", "n_negatives", "tau", "comparison", "jaccard"]
    )


def test_pilot_summary_has_bootstrap_cis_of_the_mean(tmp_path: Path) -> None:
    pairs = _pairs(np.random.default_rng(0))
    summary = pilot.summarise_pilot(pairs, n_boot=500, seed=3)
    keys = ["n_positives", "n_negatives", "tau", "comparison"]
    assert len(summary) == 8
    for row in summary.itertuples():
        v = pairs.loc[
            (pairs[keys] == [row.n_positives, row.n_negatives, row.tau, row.comparison]).all(
                axis=1
            ),
            "jaccard",
        ].to_numpy()
        low, high = _percentile_bootstrap(v, 500, 3)
        assert (row.ci_low, row.ci_high) == pytest.approx((low, high), abs=1e-12)
        assert row.ci_low < row.mean_jaccard < row.ci_high
        # a CI of the mean, not ± 1 sd: about 2 × 1.96 standard errors wide
        se = v.std(ddof=1) / np.sqrt(v.size)
        assert row.ci_high - row.ci_low == pytest.approx(2 * 1.96 * se, rel=0.2)
        assert row.ci_high - row.ci_low < row.sd_jaccard
    # the default is 2,000 resamples seeded with 0
    default = pilot.summarise_pilot(pairs)
    v = pairs.loc[(pairs["comparison"] == "across") & (pairs["n_positives"] == 3), "jaccard"]
    v = v[pairs["tau"] == 0.5].to_numpy()
    first = default[
        (default["comparison"] == "across")
        & (default["n_positives"] == 3)
        & (default["tau"] == 0.5)
    ].iloc[0]
    assert (first.ci_low, first.ci_high) == pytest.approx(_percentile_bootstrap(v, 2000, 0))


def test_pilot_figure_bands_are_the_cis(tmp_path: Path, drawn: list) -> None:
    summary = pilot.summarise_pilot(_pairs(np.random.default_rng(1)), n_boot=300, seed=0)
    _assert_png(figures.plot_pilot(summary, tmp_path / "pilot.png"))
    fig = drawn[-1]
    for ax, tau in zip(fig.axes, (0.5, 0.9)):
        bands = ax.collections
        assert len(bands) == 2  # within and across, one number of negatives
        for band, comparison in zip(bands, ("within", "across")):
            want = summary[(summary["tau"] == tau) & (summary["comparison"] == comparison)]
            want = want.sort_values("n_positives")
            ys = band.get_paths()[0].vertices[:, 1]
            assert min(ys) == pytest.approx(want["ci_low"].min())
            assert max(ys) == pytest.approx(want["ci_high"].max())
            for value in (*want["ci_low"], *want["ci_high"]):
                assert np.isclose(ys, value).any()
    # a table without CIs (an old one, sd only) is drawn without bands, never with ± sd
    figures.plot_pilot(summary.drop(columns=["ci_low", "ci_high"]), tmp_path / "old.png")
    assert all(not ax.collections for ax in drawn[-1].axes)


def _sizes(rng: np.random.Generator) -> pd.DataFrame:
    rows = []
    for n_pos in (3, 6, 9):
        for n_neg in (8, 15):
            for tau in (0.5, 0.7, 0.9):
                scale = 200 * n_pos / n_neg * (1.0 - tau) ** 2
                for fold in range(3):
                    for c in range(4):
                        size = 0 if tau == 0.9 and n_neg == 15 else rng.poisson(scale)
                        rows.append((n_pos, n_neg, tau, fold, f"c{c}", size, "gpt2", "main"))
    columns = ["n_positives", "n_negatives", "tau", "fold", "concept", "size", "model"]
    return pd.DataFrame(rows, columns=[*columns, "checkpoint"])


def test_pilot_set_sizes_figure_draws_means_and_bootstrap_cis(tmp_path: Path, drawn: list) -> None:
    sizes = _sizes(np.random.default_rng(2))
    sizes.to_csv(tmp_path / "pilot_set_sizes.csv", index=False)
    from expertalign.jobs import analysis

    out = tmp_path / "figures" / "pilot_set_sizes.png"
    analysis.pilot_set_size_figure(str(tmp_path / "pilot_set_sizes.csv"), str(out), n_boot=400)
    _assert_png(out)
    fig = drawn[-1]
    grid = fig.axes
    assert len(grid) == 6  # 2 negative sizes (rows) × 3 positive sizes (columns)
    assert [ax.get_title() for ax in grid[:3]] == [f"{p} positives" for p in (3, 6, 9)]
    assert (grid[0].get_ylabel(), grid[3].get_ylabel()) == ("8 negatives", "15 negatives")
    for i, ax in enumerate(grid):
        n_neg, n_pos = (8, 15)[i // 3], (3, 6, 9)[i % 3]
        assert ax.get_yscale() == "log"
        line, _, (bars,) = ax.containers[0]
        assert list(line.get_xdata()) == [0.5, 0.7, 0.9]
        for x, y, segment in zip(line.get_xdata(), line.get_ydata(), bars.get_segments()):
            v = sizes.loc[
                (sizes["n_negatives"] == n_neg)
                & (sizes["n_positives"] == n_pos)
                & (sizes["tau"] == x),
                "size",
            ].to_numpy(float)
            assert v.size == 12  # 3 folds × 4 concepts
            low, high = _percentile_bootstrap(v, 400, 0)
            # drawn at 0.1 at least: a log axis has no 0 (the empty configuration)
            assert y == pytest.approx(max(v.mean(), 0.1))
            assert segment[:, 1] == pytest.approx([max(low, 0.1), max(high, 0.1)])
    summary = figures.pilot_set_size_summary(sizes, n_boot=400)
    empty = summary[(summary["tau"] == 0.9) & (summary["n_negatives"] == 15)]
    assert (empty[["mean_size", "ci_low", "ci_high"]] == 0).all().all()
    assert (summary["n"] == 12).all()
    with pytest.raises(ValueError, match="several models"):
        figures.plot_pilot_set_sizes(
            pd.concat([sizes, sizes.assign(model="other")]), tmp_path / "two.png"
        )


def _alignment(tmp_path: Path) -> Path:
    rows = []
    for judgment in ("men", "simlex"):
        for model in ("m1", "m2"):
            for tau in (0.5, 0.7, 0.9):
                rho = 0.6 - 0.5 * (tau - 0.5) + (0.05 if model == "m2" else 0.0)
                rows.append((judgment, model, "main", "jaccard", tau, rho))
            for measure, rho in (("input_embedding", 0.3), ("ap_cosine", 0.45)):
                rows.append((judgment, model, "main", measure, np.nan, rho))
    frame = pd.DataFrame(rows, columns=["judgment", "model", "checkpoint", "measure", "tau", "rho"])
    frame = frame.assign(ci_low=frame.rho - 0.05, ci_high=frame.rho + 0.04)
    frame.loc[frame.judgment == "simlex", "rho"] = -0.9  # only the first judgment set is drawn
    path = tmp_path / "alignment.parquet"
    frame.to_parquet(path)
    return path


def test_baseline_figure_shows_experts_at_every_tau(tmp_path: Path, drawn: list) -> None:
    from expertalign.jobs import analysis

    table = _alignment(tmp_path)
    out = tmp_path / "baselines.png"
    analysis.baseline_figure(str(table), str(out), human_reference=0.84)
    _assert_png(out)
    ax = drawn[-1].axes[0]
    methods = [f"experts (Jaccard, τ={t:g})" for t in (0.5, 0.7, 0.9)]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["inter-human", *methods, "input_embedding", "ap_cosine"]
    frame = pd.read_parquet(table)
    men = frame[frame["judgment"] == "men"]
    containers = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(containers) == 5  # one bar container per method, a bar per model
    for container, tau in zip(containers[:3], (0.5, 0.7, 0.9)):
        want = men[(men["measure"] == "jaccard") & (men["tau"] == tau)]["rho"]
        assert [b.get_height() for b in container] == pytest.approx(list(want))
    for container, measure in zip(containers[3:], ("input_embedding", "ap_cosine")):
        want = men[men["measure"] == measure]["rho"]
        assert [b.get_height() for b in container] == pytest.approx(list(want))
    # the expert bars are blues that darken with τ
    shades = [sum(container[0].get_facecolor()[:3]) for container in containers[:3]]
    assert shades == sorted(shades, reverse=True)
    # τ chosen by the rule: only those
    analysis.baseline_figure(str(table), str(out), human_reference=0.84, taus=[0.9])
    labels = [t.get_text() for t in drawn[-1].axes[0].get_legend().get_texts()]
    assert labels == ["inter-human", methods[2], "input_embedding", "ap_cosine"]
    with pytest.raises(ValueError, match="no expert"):
        analysis.baseline_figure(str(table), str(out), human_reference=0.84, taus=[0.6])


def _distribution() -> pd.DataFrame:
    units = _units()
    frames = []
    for m, model in enumerate(("m1", "m2")):
        for c, ckpt in enumerate(("step0", "step143000")):
            for g, group in enumerate(("all", "broader", "specific")):
                rng = np.random.default_rng(100 * m + 10 * c + g)
                ap = rng.random((6, len(units))) ** (1.0 + g)
                counts = dev.unit_expert_counts(ap, taus=(0.5, 0.9))
                for by in (("kind",), ("layer", "kind")):
                    part = dev.expert_distribution(counts, units, 6, by=by)
                    frames.append(
                        part.assign(
                            model=model, checkpoint=ckpt, concepts=group, grouping="+".join(by)
                        )
                    )
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize(("tau", "concepts"), [(0.9, "all"), (0.5, "broader"), (0.9, "specific")])
def test_development_figure_at_high_tau_and_per_group(
    tmp_path: Path, drawn: list, tau: float, concepts: str
) -> None:
    dist = _distribution()
    out = tmp_path / f"dev-{concepts}.png"
    _assert_png(development_figures.plot_expert_development(dist, out, tau=tau, concepts=concepts))
    axes = np.array(drawn[-1].axes).reshape(2, 3)
    mine = dist[np.isclose(dist["tau"], tau) & (dist["concepts"] == concepts)]
    for row, model in zip(axes, ("m1", "m2")):
        assert f"τ = {tau:g}" in row[0].get_title()
        assert (concepts in row[0].get_title()) == (concepts != "all")
        kinds = mine[(mine["model"] == model) & (mine["grouping"] == "kind")]
        for line in row[0].get_lines():
            want = kinds[kinds["kind"] == line.get_label()].sort_values("checkpoint")
            assert list(line.get_ydata()) == pytest.approx(list(want["expert_incidences"]))
        for ax, kind in ((row[1], "mlp"), (row[2], "attention")):
            lines = ax.get_lines()
            assert [ln.get_label() for ln in lines] == ["step0", "step143000"]
            for line in lines:
                want = mine[
                    (mine["model"] == model)
                    & (mine["grouping"] == "layer+kind")
                    & (mine["kind"] == kind)
                    & (mine["checkpoint"] == line.get_label())
                ].sort_values("layer")
                assert list(line.get_xdata()) == list(want["layer"])
                assert list(line.get_ydata()) == pytest.approx(
                    list(want["mean_experts_per_concept"])
                )
    # the groups' numbers differ from all concepts', so the wrong rows would have failed above
    other = dist[np.isclose(dist["tau"], tau) & (dist["concepts"] != concepts)]
    assert not np.allclose(
        mine["mean_experts_per_concept"].to_numpy(),
        other["mean_experts_per_concept"].to_numpy()[: len(mine)],
    )


def test_development_figure_without_the_group_is_refused(tmp_path: Path) -> None:
    dist = _distribution()
    with pytest.raises(ValueError, match="'broader' concepts"):
        development_figures.plot_expert_development(
            dist[dist["concepts"] == "all"], tmp_path / "x.png", tau=0.5, concepts="broader"
        )
    assert not (tmp_path / "x.png").exists()
