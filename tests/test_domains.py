"""Domain analysis: planted domain shares, permutation nulls, the domains step, the graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from workflow_helpers import _assert_png

from expertalign.analysis import domain_graph, domain_null, domains
from expertalign.jobs import analysis as steps


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
