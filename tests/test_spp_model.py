"""The SPP analysis as the paper's App. B defines it, on synthetic data with planted effects:
sliding-difference contrasts for relation level and model size, crossed random intercepts for
both concepts of a pair, one model across sizes, the final checkpoint only, pairs read back from
the file written when the concept table was built."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from expertalign.analysis import spp

LEVEL_MEANS = {"none": 0.10, "weak": 0.14, "strong": 0.22}
SIZE_SHIFT = {"small": 0.0, "mid": 0.02, "large": 0.07}


def test_sliding_difference_is_contr_sdif() -> None:
    # MASS::contr.sdif(3) and contr.sdif(4)
    three = spp.sliding_difference(spp.LEVELS)
    assert list(three.columns) == ["weak - none", "strong - weak"]
    np.testing.assert_allclose(
        three.to_numpy(), [[-2 / 3, -1 / 3], [1 / 3, -1 / 3], [1 / 3, 2 / 3]]
    )
    four = spp.sliding_difference(["a", "b", "c", "d"]).to_numpy()
    np.testing.assert_allclose(
        four, [[-0.75, -0.5, -0.25], [0.25, -0.5, -0.25], [0.25, 0.5, -0.25], [0.25, 0.5, 0.75]]
    )
    # with an intercept, least squares on the contrasts gives differences of adjacent means
    means = np.array([1.0, 4.0, 2.0, 7.0])
    x = np.column_stack([np.ones(4), four])
    coef = np.linalg.solve(x, means)
    np.testing.assert_allclose(coef, [means.mean(), 3.0, -2.0, 5.0])
    with pytest.raises(ValueError, match="distinct"):
        spp.sliding_difference(["a", "a"])


def _pairs(n_per_level: int, seed: int, n_words: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(n_words)]
    seen: set[frozenset[str]] = set()
    rows = []
    for level in spp.LEVELS:
        n = 0
        while n < n_per_level:
            a, b = (str(w) for w in rng.choice(words, 2, replace=False))
            if frozenset((a, b)) in seen:
                continue
            seen.add(frozenset((a, b)))
            rows.append((a, b, level))
            n += 1
    return pd.DataFrame(rows, columns=["word1", "word2", "level"])


def _overlaps(
    pairs: pd.DataFrame, seed: int, word1_sd: float = 0.03, word2_sd: float = 0.03
) -> pd.DataFrame:
    """Every pair in three models: level mean + size shift + prime and target effects + noise."""
    rng = np.random.default_rng(seed)
    words = sorted(set(pairs.word1) | set(pairs.word2))
    e1 = dict(zip(words, rng.normal(0, word1_sd, len(words))))
    e2 = dict(zip(words, rng.normal(0, word2_sd, len(words))))
    frames = []
    for model, shift in SIZE_SHIFT.items():
        y = (
            pairs.level.map(LEVEL_MEANS)
            + shift
            + pairs.word1.map(e1)
            + pairs.word2.map(e2)
            + rng.normal(0, 0.01, len(pairs))
        )
        frames.append(pairs.assign(model=model, overlap=y))
    return pd.concat(frames, ignore_index=True)


def test_design_codes_level_and_size_as_sliding_differences() -> None:
    df = _overlaps(_pairs(5, 0), 0)
    d, fixed, names = spp.design(df, size_order=["small", "mid", "large"])
    assert [names[c] for c in fixed] == [
        "weak - none",
        "strong - weak",
        "mid - small",
        "large - mid",
    ]
    level_code = {"none": (-2 / 3, -1 / 3), "weak": (1 / 3, -1 / 3), "strong": (1 / 3, 2 / 3)}
    size_code = {"small": (-2 / 3, -1 / 3), "mid": (1 / 3, -1 / 3), "large": (1 / 3, 2 / 3)}
    for _, r in d.iterrows():
        assert (r["lvl0"], r["lvl1"]) == pytest.approx(level_code[r["level"]])
        assert (r["size0"], r["size1"]) == pytest.approx(size_code[r["model"]])
    # the size order is the one given, not the order of appearance
    _, fixed2, names2 = spp.design(df, size_order=["large", "mid", "small"])
    assert [names2[c] for c in fixed2][2:] == ["mid - large", "small - mid"]
    with pytest.raises(ValueError, match="missing from size_order"):
        spp.design(df, size_order=["small", "mid"])
    _, fixed3, names3 = spp.design(df, size_order=["small", "mid", "large"], interaction=True)
    assert len(fixed3) == 4 + 4 and "(weak - none) x (mid - small)" in names3.values()
    one = spp.design(df[df.model == "small"])[1]
    assert len(one) == 2  # a single model: no size contrasts


def test_one_model_across_sizes_recovers_planted_differences() -> None:
    df = _overlaps(_pairs(25, 1), 2)
    fit = spp.fit_mixed_model(df, size_order=["small", "mid", "large"])
    t = fit.coefficients.set_index("term")
    truth = {"weak - none": 0.04, "strong - weak": 0.08, "mid - small": 0.02, "large - mid": 0.05}
    for term, value in truth.items():
        assert abs(t.loc[term, "estimate"] - value) < 4 * t.loc[term, "se"] + 1e-3, term
    assert t.loc["strong - weak", "p"] < 1e-6 and t.loc["large - mid", "p"] < 1e-6
    assert fit.n_obs == 3 * 75  # one model for all three sizes
    assert "mid - small" in fit.caption and "weak − none" in fit.caption


def test_random_intercepts_are_crossed_for_both_concepts_of_a_pair() -> None:
    pairs = _pairs(25, 3)
    df = _overlaps(pairs, 4, word1_sd=0.06, word2_sd=0.0)
    fit = spp.fit_mixed_model(df, size_order=["small", "mid", "large"])
    model = fit.result.model
    # one group spanning every row; one variance component per concept position (crossed)
    assert model.n_groups == 1
    assert {"word1", "word2"} <= set(model.exog_vc.names)
    w1 = model.exog_vc.names.index("word1")
    n_w1 = pairs.word1.nunique()
    assert model.exog_vc.mats[w1][0].shape == (len(df), n_w1)
    # the planted prime effect (sd 0.06) is found; the absent target effect is ~0
    assert fit.variance_components["word1"] > 0.5 * 0.06**2
    assert fit.variance_components["word2"] < 0.2 * fit.variance_components["word1"]
    assert fit.coefficients["structure"].iloc[0].startswith("(1 | word1) + (1 | word2)")


def test_pairs_file_round_trip(tmp_path: Path) -> None:
    pairs = _pairs(3, 5).assign(fas=np.nan, relation="unrelated")
    pairs.loc[pairs.level != "none", "fas"] = 0.25
    path = spp.write_pairs(pairs, tmp_path / "pairs.tsv")
    back = spp.read_pairs(path)
    pd.testing.assert_frame_equal(back[pairs.columns], pairs, check_dtype=False)
    (tmp_path / "bad.tsv").write_text("word1\tword2\tlevel\na\tb\tmedium\n")
    with pytest.raises(ValueError, match="unknown level"):
        spp.read_pairs(tmp_path / "bad.tsv")


def _shard(root: Path, model: str, revision: str, concepts: list[str], ap: np.ndarray) -> str:
    from expertalign.storage import expertise_table, write_table_atomic

    path = root / "experts" / "generated" / model / revision / "shard-0000.arrow"
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(concepts)
    write_table_atomic(
        expertise_table(concepts, ap.astype(np.float32), n_pos=[4] * n, n_neg=[10] * n), path
    )
    return str(path)


def test_step_uses_the_final_checkpoint_and_the_pairs_file(tmp_path: Path) -> None:
    """Two models of different sizes, two checkpoints each: only the final checkpoints enter,
    the pairs are exactly those of the file, and one mixed model orders the models by size."""
    from expertalign.jobs import analysis as jobs

    pairs = _pairs(6, 7, n_words=30).assign(fas=0.3, relation="x")
    pairs_file = spp.write_pairs(pairs, tmp_path / "spp_pairs.tsv")
    words = sorted(set(pairs.word1) | set(pairs.word2)) + ["unused"]
    rng = np.random.default_rng(0)
    files = []
    for model, n_units in (("big", 400), ("small", 200)):  # listed large first on purpose
        for revision in ("step1", "step143000"):
            ap = rng.random((len(words), n_units))
            if revision == "step1":
                ap[:] = 0.99  # every unit an expert: overlap 1 if this checkpoint were used
            files.append(_shard(tmp_path, model, revision, words, ap))
    out = {
        k: str(tmp_path / f"{k}.{'png' if k == 'figure_out' else 'csv'}")
        for k in ("pairs_out", "model_out", "figure_out")
    }
    jobs.spp(
        files,
        {w: w for w in words},
        str(tmp_path),
        final={"big": "step143000", "small": "step143000"},
        pairs_file=str(pairs_file),
        n_per_level=100,
        seed=0,
        split="tercile",
        tau=0.5,
        interaction=False,
        **out,
    )
    table = pd.read_csv(out["pairs_out"])
    assert set(table.checkpoint) == {"step143000"}
    assert (table.overlap < 0.9).all()
    for model in ("big", "small"):
        mine = table[table.model == model]
        pd.testing.assert_frame_equal(
            mine[["word1", "word2", "level"]].reset_index(drop=True),
            pairs[["word1", "word2", "level"]],
        )
    fit = pd.read_csv(out["model_out"])
    assert "big - small" in set(fit.term)  # sized by units: small (200) before big (400)
    assert fit["models"].iloc[0] == "small,big" and (fit["n_obs"] == 2 * len(pairs)).all()
    with pytest.raises(ValueError, match="no concept"):
        jobs.spp(
            files,
            {w: w for w in words[2:]},
            str(tmp_path),
            final={"big": "step143000"},
            pairs_file=str(pairs_file),
            n_per_level=100,
            seed=0,
            split="tercile",
            tau=0.5,
            interaction=False,
            **out,
        )


def test_pair_intercept_kept_when_pairs_repeat_and_it_converges() -> None:
    pairs = _pairs(30, 11)
    rng = np.random.default_rng(5)
    effect = dict(zip(zip(pairs.word1, pairs.word2), rng.normal(0, 0.04, len(pairs))))
    df = _overlaps(pairs, 6)
    df["overlap"] += [effect[(a, b)] for a, b in zip(df.word1, df.word2)]
    fit = spp.fit_mixed_model(df, size_order=["small", "mid", "large"])
    assert fit.converged and not fit.warnings
    assert fit.coefficients["structure"].iloc[0] == "(1 | word1) + (1 | word2) + (1 | pair)"
    assert fit.variance_components["pair"] == pytest.approx(0.04**2, rel=0.5)
    # each pair measured once (one model): no pair intercept is tried
    single = spp.fit_mixed_model(df[df.model == "small"])
    assert single.coefficients["structure"].iloc[0] == "(1 | word1) + (1 | word2)"


ROOT = Path(__file__).resolve().parents[1]


def test_committed_pair_files_are_the_pairs_the_tables_were_built_for() -> None:
    """config/paper_spp_pairs.tsv is make_paper_concepts.py's draw (100 per level, seed 0) and
    config/spp_pairs.tsv make_concepts.py's (--corpus brown --corpus-min 24: its seed and
    vocabulary are the words with 24 Brown sentences); every word of both is a concept of its
    table."""
    from prerequisites import DATA, require

    require((DATA / "SPP").is_dir() and (DATA / "MEN").is_dir(), f"MEN and SPP under {DATA}")
    brown = DATA / "nltk_data" / "corpora" / "brown.zip"
    require(brown.is_file(), f"Brown under {DATA / 'nltk_data'}")
    import importlib.util
    import sys

    from expertalign.concepts import load_concepts

    paper = spp.read_pairs(ROOT / "config/paper_spp_pairs.tsv")
    drawn = spp.relation_levels(DATA / "SPP", n_per_level=100, seed=0).pairs
    cols = ["word1", "word2", "level"]
    pd.testing.assert_frame_equal(paper[cols], drawn[cols])
    words = set(load_concepts(ROOT / "config/paper_concepts.tsv")["word"].str.lower())
    assert set(paper.word1) | set(paper.word2) <= words

    sys.path.insert(0, str(ROOT / "tools"))
    try:
        module_spec = importlib.util.spec_from_file_location(
            "make_concepts_pairs", ROOT / "tools/make_concepts.py"
        )
        mc = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(mc)
    finally:
        sys.path.remove(str(ROOT / "tools"))
    from expertalign.corpus import load_corpus

    # as make_concepts.build_rows with --corpus brown --corpus-min 24 (default 5-40 words): the
    # seed is the domains kept (broader + >= 2 specific concepts with 24 sentences, nouns), the
    # vocabulary the MEN words with 24 sentences in their POS, MEN pairs of two such words
    corpus = load_corpus("brown", data_dir=DATA)

    def qualifies(word: str, pos: str) -> bool:
        return corpus.count(word, pos) >= 24

    men_pairs, men_pos = mc.read_men_full(DATA / "MEN")
    seed: set[str] = set()
    for specific, broader in mc.DOMAINS.values():
        kept = [w for w in specific if qualifies(w, "noun")]
        if qualifies(broader, "noun") and len(kept) >= 2:
            seed |= {*kept, broader}
    table = load_concepts(ROOT / "config/concepts.tsv")
    assert seed == set(table.loc[table["domain"] != "", "word"])
    vocabulary = {w for w, pos in men_pos.items() if w in seed or qualifies(w, pos)}
    men_pairs = [(a, b) for a, b in men_pairs if a in vocabulary and b in vocabulary]
    _, chosen = mc.spp_words(seed, vocabulary, DATA / "SPP", 4, men_pairs, allow_fewer=True)
    default = spp.read_pairs(ROOT / "config/spp_pairs.tsv")
    pd.testing.assert_frame_equal(default[cols], chosen[cols].reset_index(drop=True))
    words = set(table["word"].str.lower())
    assert set(default.word1) | set(default.word2) <= words
