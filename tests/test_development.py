"""Development analysis: expert-set sizes, stability across checkpoints, unit distributions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_data import _units
from workflow_helpers import _assert_png

from expertalign.analysis import development as dev
from expertalign.jobs import analysis as steps


def test_checkpoint_order() -> None:
    assert dev.checkpoint_order(["step1000", "main", "step2", "step143000", "step2"]) == [
        "step2",
        "step1000",
        "step143000",
        "main",
    ]


def test_set_sizes_and_summary() -> None:
    ap = np.array([[0.95, 0.75, 0.55, 0.1], [0.1, 0.1, 0.1, 0.1]], dtype=np.float32)
    s = dev.concept_set_sizes(
        ap, taus=(0.5, 0.7, 0.9), concepts=["a", "b"], model="m", checkpoint="step1"
    )
    assert s.loc[s.concept == "a", "size"].tolist() == [3, 2, 1]
    assert s.loc[s.concept == "b", "size"].tolist() == [0, 0, 0]
    summ = dev.summarise_set_sizes(s, n_boot=200, seed=0)
    r = summ[summ.tau == 0.5].iloc[0]
    assert r["mean_size"] == 1.5 and r["share_empty"] == 0.5 and r["n_concepts"] == 2
    assert r["ci_low"] <= r["mean_size"] <= r["ci_high"]
    assert r["mean_fraction_of_units"] == pytest.approx(1.5 / 4)
    assert r["mode_size"] == 0  # sizes 3 and 0 are equally frequent: the smaller


def test_set_size_mode_and_share_empty_per_tau() -> None:
    # a random-init-like model: most concepts have no expert, a few have many
    ap = np.full((10, 50), 0.2, dtype=np.float32)
    ap[0, :30] = 0.95
    ap[1, :5] = 0.65
    ap[2, :5] = 0.65
    s = dev.concept_set_sizes(ap, taus=(0.5, 0.9), model="m-random", checkpoint="step143000")
    summ = dev.summarise_set_sizes(s, n_boot=50).set_index("tau")
    assert summ.loc[0.5, "mode_size"] == 0 and summ.loc[0.5, "share_empty"] == 0.7
    assert summ.loc[0.9, "mode_size"] == 0 and summ.loc[0.9, "share_empty"] == 0.9
    assert summ.loc[0.5, "mean_size"] == 4.0


def test_strict_threshold() -> None:
    ap = np.array([[0.5, 0.5000001]], dtype=np.float64)
    assert dev.concept_set_sizes(ap, taus=(0.5,))["size"].tolist() == [1]


def test_consecutive_jaccard_identical_and_disjoint() -> None:
    rng = np.random.default_rng(0)
    ap = rng.random((6, 300)).astype(np.float32)
    same = dev.consecutive_jaccard(ap, ap.copy(), taus=(0.5, 0.9))
    assert (same["jaccard"] == 1.0).all()
    flipped = dev.consecutive_jaccard(ap, 1.0 - ap, taus=(0.5,))
    assert (flipped["jaccard"] == 0.0).all()

    runs = {("m", "step1"): ap, ("m", "step8"): ap, ("m", "step4"): 1.0 - ap}
    order = dev.checkpoint_order(["step8", "step1", "step4"])
    stab = dev.development_stability(lambda m, c: runs[(m, c)], {"m": order}, taus=(0.5,))
    assert list(dict.fromkeys(zip(stab.checkpoint_from, stab.checkpoint_to))) == [
        ("step1", "step4"),
        ("step4", "step8"),
    ]
    assert (stab["jaccard"] == 0.0).all()


def test_development_step_splits_broader_and_specific_concepts(tmp_path: Path) -> None:
    """Planted: broader concepts' experts are all MLP units, specific ones' all attention."""
    from expertalign.storage import expertise_table, write_table_atomic

    units = _units(n_layers=2, attn=10, mlp=30)  # 80 units
    is_mlp = (units["kind"] == "mlp").to_numpy()
    ap = np.full((4, len(units)), 0.3, dtype=np.float32)
    ap[0, is_mlp] = 0.95  # broader: every MLP unit, at every tau
    ap[1:, ~is_mlp] = 0.95  # specific: every attention unit
    concepts = ["animal", "cat", "dog", "horse"]
    shard = tmp_path / "experts" / "generated" / "m" / "final" / "shard-0000.arrow"
    shard.parent.mkdir(parents=True)
    write_table_atomic(expertise_table(concepts, ap, n_pos=[4] * 4, n_neg=[10] * 4), shard)
    units_file = tmp_path / "units.parquet"
    units.to_parquet(units_file)
    out = {
        k: tmp_path / f"{k}.{'png' if 'figure' in k else 'csv'}"
        for k in (
            "sizes_out",
            "stability_out",
            "distribution_out",
            "sizes_figure",
            "distribution_figure",
        )
    }
    steps.development(
        [str(shard)],
        {"m": str(units_file)},
        taus=(0.5, 0.9),
        revisions={"m": ["final"]},
        n_boot=50,
        seed=0,
        concept_groups={
            "animal": "broader",
            "cat": "specific",
            "dog": "specific",
            "horse": "specific",
        },
        **{k: str(v) for k, v in out.items()},
    )
    dist = pd.read_csv(out["distribution_out"])
    kinds = dist[dist["grouping"] == "kind"].set_index(["concepts", "tau", "kind"])
    for tau in (0.5, 0.9):
        assert kinds.loc[("broader", tau, "mlp"), "share_of_units"] == 1.0
        assert kinds.loc[("broader", tau, "attention"), "share_of_units"] == 0.0
        assert kinds.loc[("specific", tau, "attention"), "share_of_units"] == 1.0
        assert kinds.loc[("specific", tau, "mlp"), "share_of_units"] == 0.0
        assert kinds.loc[("all", tau, "mlp"), "share_of_units"] == 0.25
    _assert_png(Path(out["distribution_figure"]))


def test_development_step_across_checkpoints_writes_figures_and_layer_table(tmp_path: Path) -> None:
    """Two checkpoints, planted: at step1 every concept's experts are 5 attention units of
    layer 0, at step143000 they are 10 MLP units of layer 1 (the same units for every concept)."""
    from expertalign.storage import expertise_table, write_table_atomic

    units = _units(n_layers=2, attn=10, mlp=30)
    concepts = ["a", "b", "c"]
    early = units.index[(units.layer == 0) & (units.kind == "attention")][:5]
    late = units.index[(units.layer == 1) & (units.kind == "mlp")][:10]
    files = []
    for revision, rows in (("step1", early), ("step143000", late)):
        ap = np.full((3, len(units)), 0.3, dtype=np.float32)
        ap[:, rows] = 0.95
        shard = tmp_path / "experts" / "generated" / "m" / revision / "shard-0000.arrow"
        shard.parent.mkdir(parents=True)
        write_table_atomic(expertise_table(concepts, ap, n_pos=[4] * 3, n_neg=[10] * 3), shard)
        files.append(str(shard))
    units_file = tmp_path / "units.parquet"
    units.to_parquet(units_file)
    out = {
        k: str(tmp_path / f"{k}.{'png' if 'figure' in k else 'csv'}")
        for k in (
            "sizes_out",
            "stability_out",
            "distribution_out",
            "sizes_figure",
            "distribution_figure",
            "stability_figure",
            "development_figure",
            "layer_submodule_out",
            "layer_submodule_figure",
        )
    }
    steps.development(
        files,
        {"m": str(units_file)},
        taus=(0.5, 0.9),
        revisions={"m": ["step1", "step143000"]},
        n_boot=50,
        seed=0,
        **out,
    )
    table = pd.read_csv(out["layer_submodule_out"])
    assert {
        "model",
        "checkpoint",
        "tau",
        "layer",
        "kind",
        "submodule",
        "mean_experts_per_concept",
        "concepts",
    } <= set(table.columns)
    at = table.set_index(["checkpoint", "tau", "layer", "submodule"])["mean_experts_per_concept"]
    assert at[("step1", 0.5, 0, "query_key_value")] == 5
    assert at[("step143000", 0.9, 1, "dense_h_to_4h")] == 10
    assert at[("step143000", 0.5, 0, "query_key_value")] == 0
    assert len(table) == 2 * 2 * 2 * 2  # checkpoints x taus x layers x sub-modules
    stability = pd.read_csv(out["stability_out"])
    assert (stability["jaccard"] == 0).all() and len(stability) == 2 * 3
    for key in ("stability_figure", "development_figure", "layer_submodule_figure"):
        _assert_png(Path(out[key]))


def test_transition_labels_and_stability_figure(tmp_path: Path) -> None:
    from expertalign.analysis import development_figures as devfig

    assert devfig.transition_label("step1", "step512") == "1_to_512"
    rng = np.random.default_rng(0)
    steps_ = ["step1", "step512", "step1000", "step4000"]
    rows = [
        (m, a, b, t, c, rng.random())
        for m in ("m1", "m2")
        for a, b in zip(steps_, steps_[1:])
        for t in (0.5, 0.9)
        for c in range(10)
    ]
    df = pd.DataFrame(
        rows, columns=["model", "checkpoint_from", "checkpoint_to", "tau", "concept", "jaccard"]
    )
    _assert_png(devfig.plot_checkpoint_stability(df, tmp_path / "stab.png"))
    _assert_png(devfig.plot_message(tmp_path / "none.png", "nothing to show"), min_size=1000)


def test_expert_distribution_normalised_by_group_size() -> None:
    units = _units()
    n_concepts = 5
    ap = np.zeros((n_concepts, len(units)), dtype=np.float32)
    attn0 = units.index[(units.layer == 0) & (units.kind == "attention")].to_numpy()
    mlp3 = units.index[(units.layer == 3) & (units.kind == "mlp")].to_numpy()
    ap[:, attn0[:5]] = 0.9  # half of layer 0's 10 attention units, for every concept
    ap[:, mlp3[:15]] = 0.9  # half of layer 3's 30 MLP units
    counts = dev.unit_expert_counts(ap, taus=(0.5,))
    by_kind = dev.expert_distribution(counts, units, n_concepts, by=("kind",)).set_index("kind")
    # attention: 5 of 40 units; mlp: 15 of 120 units -> the same 1/8 share
    assert by_kind.loc["attention", "share_of_units"] == pytest.approx(5 / 40)
    assert by_kind.loc["mlp", "share_of_units"] == pytest.approx(15 / 120)
    assert by_kind.loc["mlp", "share_of_experts"] == pytest.approx(0.75)
    assert by_kind.loc["mlp", "mean_experts_per_concept"] == 15
    by_depth = dev.expert_distribution(counts, units, n_concepts, by=("depth_bin",), n_depth_bins=2)
    assert by_depth["share_of_units"].tolist() == pytest.approx([5 / 80, 15 / 80])
    by_lk = dev.expert_distribution(counts, units, n_concepts, by=("layer", "submodule"))
    assert len(by_lk) == 8
    assert by_lk["share_of_units"].max() == pytest.approx(0.5)
