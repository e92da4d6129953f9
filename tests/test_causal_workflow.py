"""The causal check as run by the workflow (rules ``causal`` and ``causal_summary``), on the
session's finished tiny run (``tiny_run``, read only): what the tables hold, recomputed from the
per-job files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps
from workflow_helpers import SOURCES, _assert_png

from expertalign import paths
from expertalign.analysis.causal import pairs as causal_pairs
from expertalign.analysis.causal import summarize
from expertalign.causal import empirical_p, share_beating_null
from expertalign.plan import Campaign
from expertalign.sentence_filters import dedupe_key

pytestmark = pytest.mark.slow

MODELS = ("tiny-llama", "tiny-llama-random")


def _parts(tiny_run) -> dict[str, list[str]]:
    from expertalign.config import load_config

    return Campaign(load_config(str(tiny_run.configfile))).causal_parts()


def _read_parts(results, source: str, model: str, parts) -> pd.DataFrame:
    files = [paths.causal_file(results, source, model, "final", part) for part in parts]
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


@pytest.fixture(scope="module")
def jobs(tiny_run) -> dict[tuple[str, str], pd.DataFrame]:
    """Per (source, model): its parts' tables, concatenated."""
    parts = _parts(tiny_run)
    assert len(parts) == 2 and min(map(len, parts.values())) >= 1  # the matrix spans jobs
    return {
        (source, model): _read_parts(tiny_run.results, source, model, parts)
        for source in SOURCES
        for model in MODELS
    }


@pytest.fixture(scope="module")
def summary(tiny_run) -> pd.DataFrame:
    return pd.read_csv(tiny_run.results / "tables/causal.csv")


def test_the_table_has_every_source_and_model(tiny_run, summary):
    assert {(s, m) for s, m in zip(summary["source"], summary["model"])} == {
        (s, m) for s in SOURCES for m in MODELS
    }
    k = tiny_run.config["causal"]["cross_k"]
    judged = summary[summary["set"] == f"k={k}"]
    assert len(judged) == len(SOURCES) * len(MODELS)
    # every configured unit set, the tau sets too, for every source and model
    sets = {f"k={k}" for k in tiny_run.config["causal"]["k"]}
    sets |= {f"tau={t:g}" for t in tiny_run.config["causal"]["taus"]}
    assert any(name.startswith("tau=") for name in sets)
    for _, rows in summary.groupby(["source", "model"]):
        assert sets <= set(rows["set"]), rows["set"].tolist()
    assert judged["necessity_holds"].notna().all() and judged["sufficiency_holds"].notna().all()
    _assert_png(tiny_run.results / "figures/causal.png")


def test_the_split_never_shares_a_sentence(jobs):
    for frame in jobs.values():
        split = frame[frame["record"] == "split"]
        assert not split.empty
        for concept, rows in split.groupby("concept"):
            sides = {side: {dedupe_key(t) for t in g["text"]} for side, g in rows.groupby("side")}
            assert set(sides) == {"selection", "test"}, concept
            assert len(sides["selection"]) >= 2 and len(sides["test"]) >= 2
            assert not sides["selection"] & sides["test"], concept
        effects = frame[frame["record"] == "effect"]
        counts = split.groupby(["concept", "side"]).size().unstack()
        for concept, g in effects.groupby("concept"):
            assert (g["n_test"] == counts.at[concept, "test"]).all()
            assert (g["n_selection"] == counts.at[concept, "selection"]).all()


def test_each_set_has_at_least_20_matched_draws(tiny_run, jobs):
    n_random = tiny_run.config["causal"]["n_random"]
    assert n_random >= 20
    for frame in jobs.values():
        effects = frame[(frame["record"] == "effect") & (frame["n_units"] > 0)]
        for (_concept, _set), g in effects.groupby(["concept", "set"]):
            experts = g[g["draw"] == -1]
            null = g[g["draw"] >= 0]
            assert len(experts) == 1 and sorted(null["draw"]) == list(range(n_random))
            assert (null["n_units"] == experts["n_units"].iloc[0]).all()
            assert np.isfinite(g[["delta_nll", "delta_neutral_nll"]].to_numpy(float)).all()
            p = empirical_p(experts["delta_nll"].iloc[0], null["delta_nll"])
            assert experts["p_delta_nll"].iloc[0] == pytest.approx(p)


def test_summary_numbers_are_recomputed_from_the_jobs(jobs, summary):
    for (source, model), frame in jobs.items():
        effects = frame[frame["record"] == "effect"]
        for name, g in effects.groupby("set"):
            row = summary[
                (summary["source"] == source)
                & (summary["model"] == model)
                & (summary["set"] == name)
            ].iloc[0]
            own = g[g["draw"] == -1].set_index("concept")["delta_nll"].sort_index()
            null = g[g["draw"] >= 0].pivot(index="concept", columns="draw", values="delta_nll")
            null = null.sort_index()
            assert row["n_concepts"] == len(own)
            assert row["delta_nll_experts"] == pytest.approx(own.mean())
            assert row["delta_nll_null_median"] == pytest.approx(null.median(axis=1).mean())
            share = share_beating_null(own.to_numpy(), null.to_numpy())
            assert row["delta_nll_share_beating_null"] == pytest.approx(share)
            beaten = np.mean(own.to_numpy() > np.quantile(null.to_numpy(), 0.95, axis=1))
            assert share == pytest.approx(beaten)
            diff = (own - null.median(axis=1)).mean()
            assert row["delta_nll_vs_null_diff"] == pytest.approx(diff)
            assert row["delta_nll_vs_null_ci_low"] <= diff <= row["delta_nll_vs_null_ci_high"]
            assert 0 < row["delta_nll_vs_null_p"] <= 1


def _row(overlap: pd.DataFrame, source: str, model: str, measure: str, name: str) -> pd.Series:
    chosen = (
        (overlap["source"] == source)
        & (overlap["model"] == model)
        & (overlap["measure"] == measure)
        & (overlap["set"] == name)
    )
    assert chosen.sum() == 1, (source, model, measure, name)
    return overlap[chosen].iloc[0]


def _spearman(x: pd.Series, y: pd.Series) -> float:
    """scipy's rho, NaN where one side is constant (no rank correlation)."""
    if np.ptp(x.to_numpy(float)) == 0 or np.ptp(y.to_numpy(float)) == 0:
        return float("nan")
    return float(sps.spearmanr(x, y).statistic)


def test_cross_concept_rho_is_spearman_over_the_stored_pairs(tiny_run, jobs):
    overlap = pd.read_csv(tiny_run.results / "tables/causal_overlap.csv")
    top = f"k={tiny_run.config['causal']['cross_k']}"
    finite = 0
    for (source, model), frame in jobs.items():
        cross = frame[frame["record"] == "cross"].set_index(["ablated", "concept"])["delta_nll"]
        checked = frame.loc[frame["record"] == "effect", "concept"].unique()
        # every checked concept's experts ablated against every checked concept, across parts
        assert set(cross.index) == {(a, b) for a in checked for b in checked}
        pairs = causal_pairs(frame)
        pairs = pairs[pairs["set"] == top]
        assert len(pairs) >= 3
        for a, b, effect in zip(pairs["concept"], pairs["other"], pairs["cross_effect"]):
            assert effect == pytest.approx((cross[a, b] + cross[b, a]) / 2)
        judged = pairs[np.isfinite(pairs["men"].to_numpy(float))]
        for measure, rows in (("jaccard", pairs), ("men", judged)):
            row = _row(overlap, source, model, measure, top)
            assert row["n_pairs"] == len(rows)
            rho = _spearman(rows["cross_effect"], rows[measure])
            if np.isfinite(rho):
                finite += 1
                assert row["rho"] == pytest.approx(rho)
                assert row["ci_low"] <= row["ci_high"]
            else:
                assert np.isnan(row["rho"])
    assert finite, "no job has a defined cross-concept rho"


def test_the_matrix_diagonal_is_the_effect_of_the_concepts_own_experts(tiny_run, jobs):
    """A concept's word with its own cross_k experts ablated is the effect row of that set
    (draw -1): the job reuses it for the matrix's diagonal."""
    top = f"k={tiny_run.config['causal']['cross_k']}"
    for frame in jobs.values():
        cross = frame[frame["record"] == "cross"].set_index(["ablated", "concept"])["delta_nll"]
        effects = frame[(frame["record"] == "effect") & (frame["draw"] == -1)]
        own = effects[effects["set"] == top].set_index("concept")["delta_nll"]
        assert len(own) >= 2
        for concept, effect in own.items():
            assert cross[concept, concept] == pytest.approx(effect, rel=1e-9, abs=1e-12)


def test_the_check_in_parts_equals_one_job_of_all_its_concepts(tiny_run, jobs, tmp_path):
    """The tiny run checks its 3 concepts in 2 jobs; one job of all 3 (concepts_per_job: 3, on
    a copy of the run) gives the same rows, pairs and summary."""
    from workflow_helpers import copy_of_run

    copy = copy_of_run(tiny_run, tmp_path / "run")
    config = copy.config
    config["causal"]["concepts_per_job"] = 3
    copy.configfile.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    whole = paths.causal_file(copy.results, "brown", "tiny-llama", "final", "0000")
    copy.snakemake("--cores", "2", "--forcerun", whole, "--allowed-rules", "causal", whole)
    one = pd.read_parquet(whole)
    parted = jobs["brown", "tiny-llama"]
    key = ["record", "concept", "set", "draw", "ablated", "side", "text"]

    def ordered(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.drop(columns=["units"]).reindex(columns=sorted(parted.columns.drop("units")))
        return frame.sort_values(key, kind="stable", na_position="first").reset_index(drop=True)

    assert len(one) == len(parted)
    pd.testing.assert_frame_equal(ordered(one), ordered(parted), check_exact=False, rtol=1e-5)

    def unit_sets(frame: pd.DataFrame) -> dict:
        rows = frame[frame["record"] == "units"]
        return {(c, s): sorted(u) for c, s, u in zip(rows["concept"], rows["set"], rows["units"])}

    assert unit_sets(one) == unit_sets(parted)
    pd.testing.assert_frame_equal(causal_pairs(one), causal_pairs(parted), rtol=1e-5)
    pd.testing.assert_frame_equal(summarize(one, n_boot=200), summarize(parted, n_boot=200))
