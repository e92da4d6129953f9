"""Tests for expertalign.analysis on synthetic data whose answers are planted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from prerequisites import DATA, require
from scipy import stats as sps

from expertalign.analysis import development as dev
from expertalign.analysis import (
    development_figures,
    domain_graph,
    domain_null,
    domains,
    figures,
    pilot,
    spp,
    spp_model,
)
from expertalign.jobs import analysis as steps


@pytest.fixture
def spp_data():
    """The shared SPP exports: skipped without them locally, a failure in CI."""
    require(
        any((DATA / "SPP").glob("spp_assoc-related_*.csv")),
        f"SPP under {DATA} (set EXPERTALIGN_DATA)",
    )


needs_spp = pytest.mark.usefixtures("spp_data")


# ----------------------------------------------------------------------------------------- domains
def _planted_domain(n_units: int = 1000) -> tuple[np.ndarray, list[str], pd.DataFrame]:
    """4 specific concepts = a 100-unit core + 50 own units each; the broader concept holds 60 of
    the core plus 40 other units. So |union| = 300, core_share = 1/3, broader_share = 0.6."""
    m = np.zeros((5, n_units), dtype=bool)
    core = np.arange(100)
    for i in range(4):
        m[i, core] = True
        m[i, 100 + 50 * i : 150 + 50 * i] = True
    m[4, core[:60]] = True
    m[4, 500:540] = True
    names = ["dog", "cat", "horse", "cow", "animal"]
    table = pd.DataFrame(
        {"concept": names, "domain": ["animals"] * 5, "broader": ["", "", "", "false", "true"]}
    )
    return m, names, table


def test_domain_shares_planted_percentages() -> None:
    m, names, table = _planted_domain()
    out = domains.domain_shares(m, names, table)
    r = out.iloc[0]
    assert r["domain"] == "animals" and r["broader_concept"] == "animal"
    assert (r["n_core"], r["n_union"], r["n_core_in_broader"]) == (100, 300, 60)
    assert r["core_share"] == pytest.approx(1 / 3)
    assert r["core_share_of_mean"] == pytest.approx(100 / 150)
    assert r["broader_share"] == pytest.approx(0.6)


def test_domain_shares_empty_core_gives_nan_broader_share() -> None:
    m, names, table = _planted_domain()
    m[0, :100] = False  # dog no longer shares the core
    r = domains.domain_shares(m, names, table).iloc[0]
    assert r["n_core"] == 0 and r["core_share"] == 0.0 and np.isnan(r["broader_share"])


def test_parse_domains_errors() -> None:
    m, names, table = _planted_domain()
    with pytest.raises(ValueError, match="no expert mask row"):
        domains.domain_shares(m[:4], names[:4], table)
    bad = table.assign(broader=["true", "", "", "", "true"])
    with pytest.raises(ValueError, match="2 broader"):
        domains.parse_domains(names, bad)
    with pytest.raises(ValueError, match="true/false"):
        domains.parse_domains(names, table.assign(broader="maybe"))


def _random_masks(n: int, n_units: int, density: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, n_units)) < density


def test_random_domains_counts_match_direct_computation() -> None:
    masks = _random_masks(30, 803, 0.3, 1)  # 803: packed bits have padding
    null = domain_null.random_domains(masks, n_perm=50, seed=3, candidates=np.arange(5, 30))
    for _, r in null.iterrows():
        spec = masks[list(r["specific_rows"])]
        core = spec.all(axis=0)
        assert r["n_core"] == core.sum()
        assert r["n_union"] == spec.any(axis=0).sum()
        assert r["n_core_in_broader"] == (core & masks[r["broader_row"]]).sum()
        rows = [*r["specific_rows"], r["broader_row"]]
        assert len(set(rows)) == 5 and min(rows) >= 5
    again = domain_null.random_domains(masks, n_perm=50, seed=3, candidates=np.arange(5, 30))
    pd.testing.assert_frame_equal(null, again)


def test_permutation_p_small_for_planted_domain() -> None:
    m, names, table = _planted_domain()
    background = _random_masks(40, 1000, 0.15, 2)
    masks = np.vstack([m, background])
    all_names = names + [f"x{i}" for i in range(40)]
    cand = domains.non_domain_rows(all_names, table)
    assert list(cand) == list(range(5, 45))
    null = domain_null.random_domains(masks, n_perm=999, seed=0, candidates=cand)
    res = domain_null.permutation_pvalues(domains.domain_shares(masks, all_names, table), null)
    assert res["p_core_share"].iloc[0] == pytest.approx(1 / 1000)
    assert res["null_mean_core_share"].iloc[0] < 0.05


def test_permutation_p_roughly_uniform_for_random_domains() -> None:
    # "domains" made of concepts drawn exactly like the null's candidates: no structure
    n_dom = 40
    masks = _random_masks(5 * n_dom + 60, 600, 0.35, 7)
    names = [f"c{i}" for i in range(masks.shape[0])]
    table = pd.DataFrame(
        {
            "concept": names[: 5 * n_dom],
            "domain": [f"d{i // 5}" for i in range(5 * n_dom)],
            "broader": [i % 5 == 4 for i in range(5 * n_dom)],
        }
    )
    null = domain_null.random_domains(
        masks, n_perm=1000, seed=1, candidates=domains.non_domain_rows(names, table)
    )
    res = domain_null.permutation_pvalues(domains.domain_shares(masks, names, table), null)
    p = res["p_core_share"].to_numpy()
    assert 0.3 < p.mean() < 0.7
    assert sps.kstest(p, "uniform").pvalue > 0.01
    assert (p < 0.05).sum() <= 6


def test_keep_broader_null_keeps_the_real_broader_concept() -> None:
    """The paper's baseline: "animal" keeps its place, its 4 specific concepts are drawn from
    all concepts (its own included, never itself)."""
    m, names, table = _planted_domain()
    masks = np.vstack([m, _random_masks(25, 1000, 0.2, 4)])
    all_names = names + [f"x{i}" for i in range(25)]
    parsed = domains.parse_domains(all_names, table)
    null = domain_null.keep_broader_domains(masks, parsed, n_perm=400, seed=1)
    assert len(null) == 400 and set(null["domain"]) == {"animals"}
    assert (null["broader_row"] == all_names.index("animal")).all()
    drawn = np.array(null["specific_rows"].tolist())
    assert all(len(set(r)) == 4 for r in drawn)
    assert not (drawn == 4).any()  # never the broader concept itself
    assert set(np.unique(drawn)) == set(range(30)) - {4}  # from all concepts, domain ones too
    for _, r in null.head(50).iterrows():
        spec = masks[list(r["specific_rows"])]
        core = spec.all(axis=0)
        assert r["n_core"] == core.sum() and r["n_union"] == spec.any(axis=0).sum()
        assert r["n_core_in_broader"] == (core & masks[4]).sum()
    again = domain_null.keep_broader_domains(masks, parsed, n_perm=400, seed=1)
    pd.testing.assert_frame_equal(null, again)


def test_mean_over_domains_and_its_permutation_p() -> None:
    m, names, table = _planted_domain()
    m2 = m[:, ::-1].copy()  # a second planted domain on other units
    names2 = [f"{c}2" for c in names]
    table2 = pd.concat([table, table.assign(concept=names2, domain="animals2")], ignore_index=True)
    masks = np.vstack([m, m2, _random_masks(40, 1000, 0.15, 2)])
    all_names = names + names2 + [f"x{i}" for i in range(40)]
    observed = domains.domain_shares(masks, all_names, table2)
    null = domain_null.keep_broader_domains(
        masks, domains.parse_domains(all_names, table2), n_perm=999, seed=0
    )
    per_domain = domain_null.permutation_pvalues(observed, null)
    assert (per_domain["p_core_share"] < 0.01).all()
    # each domain is compared with its own draws (its own broader concept)
    assert per_domain["null_n_core_share"].tolist() == [999, 999]
    mean = domain_null.mean_over_domains(observed, null).iloc[0]
    assert mean["domain"] == "mean" and mean["n_domains"] == 2
    assert mean["core_share"] == pytest.approx(observed["core_share"].mean())
    assert mean["broader_share"] == pytest.approx(0.6)
    assert mean["p_core_share"] == pytest.approx(1 / 1000)
    assert mean["null_mean_core_share"] < 0.05 and mean["null_n_core_share"] == 999


def _domains_step(
    tmp_path: Path, masks: np.ndarray, names: list[str], table: pd.DataFrame, **kwargs
) -> dict[str, pd.DataFrame]:
    """Write ``masks`` as one expert shard (AP 0.8 for an expert, 0.3 otherwise) and ``table`` as
    a concept table of ``names``, run the domains step with each null (``kwargs``: taus, n_perm)
    and return its table per null."""
    from expertalign.storage import expertise_table, write_table_atomic

    ap = np.where(masks, 0.8, 0.3).astype(np.float32)
    shard = tmp_path / "experts" / "generated" / "m" / "final" / "shard-0000.arrow"
    shard.parent.mkdir(parents=True)
    n = len(names)
    write_table_atomic(expertise_table(names, ap, n_pos=[4] * n, n_neg=[10] * n), shard)
    concept_table = tmp_path / "concepts.tsv"
    full = pd.DataFrame({"concept": names, "word": names, "pos": "noun"}).merge(
        table, on="concept", how="left"
    )
    full.fillna({"domain": "", "broader": "false"}).to_csv(concept_table, sep="\t", index=False)
    results = {}
    for null in ("keep_broader", "random"):
        out = tmp_path / f"{null}.parquet"
        steps.domains(
            [str(shard)],
            str(concept_table),
            str(out),
            str(tmp_path / "g.png"),
            seed=0,
            model="m",
            revision="final",
            null=null,
            **kwargs,
        )
        results[null] = pd.read_parquet(out)
    return results


def test_domains_step_writes_per_domain_and_mean_rows(tmp_path: Path) -> None:
    m, names, table = _planted_domain()
    masks = np.vstack([m, _random_masks(20, 1000, 0.15, 3)])
    all_names = names + [f"x{i}" for i in range(20)]
    results = _domains_step(tmp_path, masks, all_names, table, taus=[0.5, 0.7], n_perm=200)
    for null, res in results.items():
        assert res["domain"].tolist() == ["animals", "mean"] * 2
        assert (res["null"] == null).all()
        mean = res[res.domain == "mean"]
        assert (mean["p_core_share"] < 0.02).all()


# domains of unequal size (the Brown-qualified default table has domains of 2, 3 and 4 specific
# concepts): each domain's null must draw as many specific concepts as the domain has
_SIZES = (2, 3, 4, 2, 3)


def _unequal_domains(
    n_other: int = 40, seed: int = 0, n_units: int = 500, density: float = 0.3
) -> tuple[np.ndarray, list[str], pd.DataFrame]:
    """Random masks (no structure at all) for domains of ``_SIZES`` specific concepts + 1
    broader each, then ``n_other`` concepts in no domain."""
    rows = []
    for j, k in enumerate(_SIZES):
        rows += [{"concept": f"d{j}s{i}", "domain": f"d{j}", "broader": False} for i in range(k)]
        rows.append({"concept": f"d{j}b", "domain": f"d{j}", "broader": True})
    table = pd.DataFrame(rows)
    names = table["concept"].tolist() + [f"x{i}" for i in range(n_other)]
    return _random_masks(len(names), n_units, density, seed), names, table


def test_keep_broader_null_draws_as_many_specific_as_the_domain_has() -> None:
    masks, names, table = _unequal_domains()
    parsed = domains.parse_domains(names, table)
    assert [len(d.specific) for d in parsed] == list(_SIZES)
    null = domain_null.keep_broader_domains(masks, parsed, n_perm=300, seed=2)
    for d in parsed:
        mine = null[null["domain"] == d.name]
        assert len(mine) == 300 and (mine["n_specific"] == len(d.specific)).all()
        assert all(len(r) == len(set(r)) == len(d.specific) for r in mine["specific_rows"])
        assert (mine["broader_row"] == d.broader).all()
        assert not any(d.broader in r for r in mine["specific_rows"])
        for _, r in mine.head(30).iterrows():
            spec = masks[list(r["specific_rows"])]
            core = spec.all(axis=0)
            assert r["n_core"] == core.sum() and r["n_union"] == spec.any(axis=0).sum()
            assert r["n_core_in_broader"] == (core & masks[d.broader]).sum()
    # a 2-specific domain's null is the null of 2 sets, not of 4: the core of 2 random sets of
    # density 0.3 is about 0.09 / 0.51 of their union, of 4 about 0.008 / 0.76
    by_size = null.groupby("n_specific")["core_share"].mean()
    assert 0.12 < by_size[2] < 0.25 and by_size[4] < 0.03


def test_keep_broader_null_of_four_specific_domains_is_unchanged_by_smaller_domains() -> None:
    """Every domain consumes the generator alike, so a 4-specific domain's draws do not depend on
    the sizes of the other domains (a table of 4-specific domains keeps its draws)."""
    masks, names, table = _unequal_domains()
    parsed = domains.parse_domains(names, table)
    null = domain_null.keep_broader_domains(masks, parsed, n_perm=200, seed=5)
    as_four = [
        domains.Domain(d.name, tuple(range(4)) if len(d.specific) != 4 else d.specific, d.broader)
        for d in parsed
    ]
    null4 = domain_null.keep_broader_domains(masks, as_four, n_perm=200, seed=5)
    pd.testing.assert_frame_equal(null[null["domain"] == "d2"], null4[null4["domain"] == "d2"])


def test_random_domains_matched_draws_each_domain_size() -> None:
    masks, names, table = _unequal_domains()
    parsed = domains.parse_domains(names, table)
    cand = domains.non_domain_rows(names, table)
    null = domain_null.random_domains_matched(masks, parsed, n_perm=200, seed=3, candidates=cand)
    assert len(null) == 200 * len(parsed)
    assert null["domain"].tolist()[: len(parsed)] == [d.name for d in parsed]
    assert (null.groupby("perm")["domain"].count() == len(parsed)).all()
    for d in parsed:
        mine = null[null["domain"] == d.name]
        assert (mine["n_specific"] == len(d.specific)).all()
        assert all(len(r) == len(d.specific) for r in mine["specific_rows"])
    for _, r in null.head(40).iterrows():
        rows = [*r["specific_rows"], r["broader_row"]]
        assert len(set(rows)) == len(rows) and set(rows) <= set(cand)
        spec = masks[list(r["specific_rows"])]
        core = spec.all(axis=0)
        assert r["n_core"] == core.sum() and r["n_union"] == spec.any(axis=0).sum()
        assert r["n_core_in_broader"] == (core & masks[r["broader_row"]]).sum()
    # with one size, the draws are random_domains' with that size (as before sizes per draw)
    four = [d for d in parsed if len(d.specific) == 4]
    plain = domain_null.random_domains(masks, n_perm=200, seed=3, candidates=cand)
    matched = domain_null.random_domains_matched(masks, four, n_perm=200, seed=3, candidates=cand)
    pd.testing.assert_frame_equal(matched.drop(columns="domain"), plain)
    # a domain is compared with draws of its own size only
    observed = domains.domain_shares(masks, names, table)
    res = domain_null.permutation_pvalues(observed, null.drop(columns="domain"))
    assert res["null_n_core_share"].tolist() == [200 * _SIZES.count(k) for k in _SIZES]
    with pytest.raises(ValueError, match="no draws of 2 specific"):
        domain_null.permutation_pvalues(observed, plain)


@pytest.mark.parametrize("null_kind", ["keep_broader", "random"])
def test_unequal_domain_sizes_give_calibrated_p_values(null_kind: str) -> None:
    """Random masks, domains of 2, 3 and 4 specific concepts: no domain structure, so p-values
    must not be systematically small (drawing 4 specific concepts for every domain gave the
    2-specific domains p ~ 0.002 on every seed)."""
    per_domain, means = [], []
    for seed in range(8):
        masks, names, table = _unequal_domains(seed=100 + seed)
        parsed = domains.parse_domains(names, table)
        observed = domains.domain_shares(masks, names, table)
        if null_kind == "keep_broader":
            null = domain_null.keep_broader_domains(masks, parsed, n_perm=400, seed=seed)
            res = domain_null.permutation_pvalues(observed, null)
        else:
            null = domain_null.random_domains_matched(
                masks,
                parsed,
                n_perm=400,
                seed=seed,
                candidates=domains.non_domain_rows(names, table),
            )
            res = domain_null.permutation_pvalues(observed, null.drop(columns="domain"))
        per_domain.append(res[["n_specific", "p_core_share", "p_broader_share"]])
        means.append(domain_null.mean_over_domains(observed, null).iloc[0])
    p = pd.concat(per_domain, ignore_index=True)
    assert len(p) == 8 * len(_SIZES)
    for col in ("p_core_share", "p_broader_share"):
        v = p[col].dropna().to_numpy()
        assert v.size >= 20
        assert (v < 0.05).mean() <= 0.15, (col, np.sort(v)[:10])
        assert 0.3 < v.mean() < 0.7
    for k in (2, 3):  # the sizes the 4-concept null got wrong
        assert (p.loc[p["n_specific"] == k, "p_core_share"] < 0.05).mean() <= 0.25
    mean_p = np.array([m["p_core_share"] for m in means])
    assert (mean_p < 0.05).sum() <= 2, mean_p
    assert mean_p.mean() > 0.2


def test_domains_step_matches_null_sizes_to_domain_sizes(tmp_path: Path) -> None:
    masks, names, table = _unequal_domains(n_other=20, seed=11)
    results = _domains_step(tmp_path, masks, names, table, taus=[0.5], n_perm=300)
    for null, res in results.items():
        per = res[res.domain != "mean"].set_index("domain")
        assert per["n_specific"].tolist() == list(_SIZES)
        # each domain's null is of its own size: its null mean is near its observed share
        for k in (2, 3, 4):
            rows = per[per["n_specific"] == k]
            ratio = rows["null_mean_core_share"] / rows["core_share"]
            assert ((ratio > 0.6) & (ratio < 1.6)).all(), (null, k, rows)
        assert not (per["p_core_share"] < 0.01).any()
        assert res.loc[res.domain == "mean", "p_core_share"].iloc[0] > 0.01


def test_reciprocal_overlap() -> None:
    m = np.array([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=bool)
    w = domain_graph.reciprocal_overlap(m)
    assert w[0, 1] == pytest.approx((2 / 4 + 2 / 2) / 2)
    assert w[0, 0] == 1.0 and w[2, 2] == 0.0 and w[0, 2] == 0.0
    np.testing.assert_allclose(w, w.T)


def test_strongest_neighbours_link_within_planted_blocks() -> None:
    rng = np.random.default_rng(0)
    block = np.repeat(np.arange(4), 5)  # 4 planted domains of 5 concepts
    w = rng.uniform(0.0, 0.1, (20, 20)) + 0.5 * (block[:, None] == block[None, :])
    w = (w + w.T) / 2
    edges = domain_graph.strongest_neighbours(w, 3)
    assert all(block[a] == block[b] for a, b in edges)
    degree = np.bincount(np.ravel(edges), minlength=20)
    assert (degree >= 3).all() and all(a < b for a, b in edges)
    # ties keep the lower index; an empty row gets no links; k larger than the graph is capped
    assert domain_graph.strongest_neighbours(np.zeros((3, 3)), 2) == []
    assert domain_graph.strongest_neighbours(np.ones((3, 3)), 5) == [(0, 1), (0, 2), (1, 2)]
    with pytest.raises(ValueError, match="square"):
        domain_graph.strongest_neighbours(np.ones((2, 3)), 1)


def test_domain_graph_figure(tmp_path: Path) -> None:
    m, names, table = _planted_domain()
    m2 = np.vstack([m, m[[1, 0, 2, 3, 4]]])
    t2 = pd.concat(
        [table, table.assign(concept=[f"{c}2" for c in names], domain="animals2")],
        ignore_index=True,
    )
    out = domain_graph.plot_domain_graph(
        m2, names + [f"{c}2" for c in names], t2, tmp_path / "g.png"
    )
    _assert_png(out)


# ------------------------------------------------------------------------------------- development
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


def _units(n_layers: int = 4, attn: int = 10, mlp: int = 30) -> pd.DataFrame:
    rows = []
    for layer in range(n_layers):
        for kind, sub, n in (("attention", "query_key_value", attn), ("mlp", "dense_h_to_4h", mlp)):
            for i in range(n):
                rows.append((layer, f"layers.{layer}.{sub}", kind, sub, i))
    df = pd.DataFrame(rows, columns=["layer", "module", "kind", "submodule", "index"])
    df.insert(0, "unit", np.arange(len(df)))
    return df


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


# --------------------------------------------------------------------------------------------- SPP
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


def _synthetic_spp(effects: dict[str, float], n_per_level: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(80)]
    word_effect = dict(zip(words, rng.normal(0, 0.02, len(words))))
    rows = []
    seen: set[frozenset[str]] = set()  # like relation_levels: each pair has one level
    for level, mu in effects.items():
        n = 0
        while n < n_per_level:
            a, b = rng.choice(words, 2, replace=False)
            if frozenset((a, b)) in seen:
                continue
            seen.add(frozenset((a, b)))
            rows.append((a, b, level, mu + word_effect[a] + word_effect[b] + rng.normal(0, 0.03)))
            n += 1
    return pd.DataFrame(rows, columns=["word1", "word2", "level", "overlap"])


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


# ------------------------------------------------------------------------------------------- pilot
def _pilot_data(seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """4 concepts, 60 sentences each; concept c drives units [20c, 20c+20) strongly, so its
    expert set is that block (more or less) in every fold; 300 extra neutral sentences."""
    rng = np.random.default_rng(seed)
    n_c, per, n_units = 4, 60, 120
    r = rng.normal(size=(n_c * per + 300, n_units)).astype(np.float32)
    pools = {}
    for c in range(n_c):
        rows = np.arange(c * per, (c + 1) * per)
        r[np.ix_(rows, np.arange(20 * c, 20 * c + 20))] += 3.0
        pools[f"c{c}"] = rows
    return r, pools, np.arange(r.shape[0])


def test_pilot_within_beats_across_and_folds_are_disjoint() -> None:
    r, pools, neg = _pilot_data()
    res = pilot.pilot_stability(
        r, pools, neg, n_positives=(10, 20), n_negatives=(60,), taus=(0.6,), k=3, seed=0
    )
    s = res.summary.set_index(["n_positives", "comparison"])
    assert s.loc[(20, "within"), "mean_jaccard"] > 0.8
    assert s.loc[(20, "across"), "mean_jaccard"] < 0.05
    assert s.loc[(20, "within"), "n_pairs"] == 4 * 3  # 4 concepts x C(3, 2) fold pairs
    assert s.loc[(20, "across"), "n_pairs"] == 3 * 6  # 3 folds x C(4, 2) concept pairs
    expected = {"n_positives", "n_negatives", "tau", "fold", "concept", "size"}
    assert set(res.sizes.columns) >= expected
    rows = pilot.fold_rows(pools, neg, 20, 60, k=3, seed=0)
    for c, own in pools.items():
        folds = [set(rows[(c, f)][0]) for f in range(3)]
        assert all(len(x) == 20 and x <= set(own) for x in folds)
        assert not (folds[0] & folds[1]) and not (folds[1] & folds[2])
        for f in range(3):
            assert len(rows[(c, f)][1]) == 60 and not set(rows[(c, f)][1]) & set(own)


def test_pilot_matches_sklearn_ap_and_identical_folds() -> None:
    from sklearn.metrics import average_precision_score

    r, pools, neg = _pilot_data(1)
    rows = pilot.fold_rows(pools, neg, 15, 40, k=2, seed=5, disjoint=False)
    pos, negs = rows[("c2", 1)]
    sel = np.concatenate([pos, negs])
    y = np.r_[np.ones(pos.size, bool), np.zeros(negs.size, bool)]
    ref = np.array([average_precision_score(y, r[sel, u]) for u in range(r.shape[1])])
    import torch

    from expertalign.ap import SortedNegatives

    union = np.unique(np.concatenate([rows[(c, 1)][1] for c in pools]))
    bank = SortedNegatives(torch.from_numpy(r[union]))
    ap = pilot.concept_fold_ap(bank, union, torch.from_numpy(r[pos]), negs)
    np.testing.assert_allclose(ap, ref, atol=1e-6)
    # a pool exactly as large as one fold: every (non-disjoint) fold draws the same sentences
    small = {c: v[:15] for c, v in pools.items()}
    res = pilot.pilot_stability(
        r,
        small,
        np.arange(240, r.shape[0]),
        n_positives=(15,),
        n_negatives=(300,),
        taus=(0.5,),
        k=2,
        disjoint=False,
    )
    within = res.pairs[res.pairs.comparison == "within"]
    assert (within["jaccard"] == 1.0).all()


def test_pilot_on_demand_responses_run_each_sentence_once_with_disjoint_folds() -> None:
    """Responses computed on demand: with disjoint folds no positive sentence is asked for twice
    (each fold's positives are its own), and the result equals the in-memory one."""
    r, pools, neg = _pilot_data(2)
    neg_pool = np.arange(240, r.shape[0])  # the 300 neutral sentences
    asked: list[np.ndarray] = []

    def run(rows: np.ndarray) -> np.ndarray:
        asked.append(np.asarray(rows).copy())
        return r[rows]

    kwargs = dict(n_positives=(5, 15), n_negatives=(20, 40), taus=(0.6,), k=4, seed=3)
    lazy = pilot.pilot_stability(run, pools, neg_pool, **kwargs)
    eager = pilot.pilot_stability(r, pools, neg_pool, **kwargs)
    pd.testing.assert_frame_equal(lazy.pairs, eager.pairs)
    positives = np.concatenate([a for a in asked if a.max() < 240])
    assert positives.size == 4 * 4 * 15 and np.unique(positives).size == positives.size
    for c, own in pools.items():
        folds = pilot.fold_rows(pools, neg_pool, 15, 40, k=4, seed=3)
        sets = [set(folds[(c, f)][0].tolist()) for f in range(4)]
        assert all(x <= set(own.tolist()) for x in sets)
        assert sum(len(x) for x in sets) == len(set().union(*sets))  # pairwise disjoint
        negatives = [set(folds[(c, f)][1].tolist()) for f in range(4)]
        assert sum(len(x) for x in negatives) == len(set().union(*negatives))
    s = lazy.summary.set_index(["n_positives", "n_negatives", "comparison"])
    assert s.loc[(15, 40, "within"), "n_pairs"] == 4 * 6  # 4 concepts x C(4, 2) fold pairs


def test_men_pilot_concepts_from_training_pairs() -> None:
    men = pd.DataFrame(
        {
            "word1": ["cat", "sun", "car", "dog", "x", "tea"],
            "word2": ["dog", "moon", "bus", "cat", "cat", "tea"],
            "score": 1.0,
        }
    )
    concept_of = {w: f"c_{w}" for w in ("cat", "dog", "sun", "moon", "car", "bus", "tea")}
    chosen = pilot.men_pilot_concepts(men, concept_of, n_pairs=3, seed=0)
    # eligible: rows 0-3 (row 4 has an unknown word, row 5 a self-pair); 3 of them drawn
    assert len(chosen) == len(set(chosen)) and set(chosen) <= set(concept_of.values())
    assert pilot.men_pilot_concepts(men, concept_of, n_pairs=3, seed=0) == chosen
    assert set(pilot.men_pilot_concepts(men, concept_of, n_pairs=4)) == {
        "c_cat",
        "c_dog",
        "c_sun",
        "c_moon",
        "c_car",
        "c_bus",
    }
    with pytest.raises(ValueError, match="only 4 MEN pairs"):
        pilot.men_pilot_concepts(men, concept_of, n_pairs=5)


def test_pilot_errors() -> None:
    r, pools, neg = _pilot_data()
    with pytest.raises(ValueError, match="disjoint folds"):
        pilot.pilot_stability(r, pools, neg, n_positives=(30,), n_negatives=(10,), taus=(0.5,), k=3)
    with pytest.raises(ValueError, match="leaving"):
        pilot.pilot_stability(
            r, pools, neg[:100], n_positives=(10,), n_negatives=(90,), taus=(0.5,), k=2
        )
    with pytest.raises(ValueError, match="outside"):
        pilot.pilot_stability(
            r, pools, np.array([0, 10_000]), n_positives=(10,), n_negatives=(1,), taus=(0.5,), k=2
        )


# ----------------------------------------------------------------------------------------- figures
def _assert_png(path: Path, min_size: int = 5000) -> None:
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > min_size
    leftovers = [p for p in Path(path).parent.iterdir() if p.name.endswith(".tmp")]
    assert not leftovers


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
