"""Every reported alignment number recomputed independently, from its definition.

The glue between the AP vectors and a reported ρ: similarity_frame's values and pair labels
(Jaccard of the expert sets, AP cosines, centred at 0.5), the embedding baselines, the mapping of
judged words to concepts (case, reversed pairs, a word with two concepts) and the Spearman
statistics written by ``jobs.alignment.alignment``. The expected values here come from Python sets,
explicit loops and scipy, never from the package's own helpers.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr
from synthetic_data import cosine_of_ap as _cosine
from synthetic_data import jaccard_of_ap as _jaccard
from tiny_models import tiny_model, word_tokenizer

from expertalign.baselines import baseline_pairs, word_vectors
from expertalign.jobs import alignment as jobs
from expertalign.similarity import pairwise_similarity, similarity_frame

CONCEPTS = ["cat", "dog", "car", "road", "chair", "table", "mat", "postman"]


def _ap(seed: int, n_units: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ap = rng.beta(2, 3, (len(CONCEPTS), n_units)).astype(np.float32)
    ap[1] = np.clip(ap[0] + rng.normal(0, 0.05, n_units), 0, 1)  # dog close to cat
    return ap


def _expected_measure(ap: np.ndarray, i: int, j: int, measure: str, tau: float) -> float:
    if measure == "jaccard":
        return _jaccard(ap[i], ap[j], tau)
    if measure == "cosine_ap":
        return _cosine(ap[i], ap[j])
    assert measure == "cosine_ap_centered"
    return _cosine(ap[i] - 0.5, ap[j] - 0.5)


def test_similarity_frame_values_and_pair_labels():
    ap = _ap(1)
    taus = [0.5, 0.8]
    frame = similarity_frame(pairwise_similarity(ap, taus, CONCEPTS, chunk_units=700))
    n_pairs = len(CONCEPTS) * (len(CONCEPTS) - 1) // 2
    assert len(frame) == n_pairs * (len(taus) + 2)
    index = {c: i for i, c in enumerate(CONCEPTS)}
    for row in frame.itertuples():
        i, j = index[row.concept_a], index[row.concept_b]
        assert i < j, (row.concept_a, row.concept_b)  # each unordered pair once, in table order
        tau = None if np.isnan(row.tau) else row.tau
        expected = _expected_measure(ap, i, j, row.measure, tau)
        assert row.value == pytest.approx(expected, abs=2e-6), row
    for measure, tau in [
        ("jaccard", 0.5),
        ("jaccard", 0.8),
        ("cosine_ap", None),
        ("cosine_ap_centered", None),
    ]:
        part = frame[
            (frame["measure"] == measure)
            & (frame["tau"].isna() if tau is None else frame["tau"] == tau)
        ]
        assert sorted(zip(part["concept_a"], part["concept_b"])) == sorted(
            (CONCEPTS[i], CONCEPTS[j]) for i, j in itertools.combinations(range(8), 2)
        )
    # centring matters: cosine_ap and cosine_ap_centered are different numbers
    assert not np.allclose(
        frame.loc[frame["measure"] == "cosine_ap", "value"],
        frame.loc[frame["measure"] == "cosine_ap_centered", "value"],
    )


def test_baselines_are_mean_pooled_word_vectors_and_their_cosines():
    model, tokenizer = tiny_model("gpt_neox"), word_tokenizer()
    words = ["cat", "dog", "red car", "the table"]  # two-token words are mean-pooled
    vectors = word_vectors(model, tokenizer, words)
    embedding = model.get_input_embeddings().weight.detach().double().numpy()
    for k, word in enumerate(words):
        ids = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        assert len(ids) == len(word.split())
        np.testing.assert_allclose(vectors["input"][k], embedding[ids].mean(axis=0), atol=1e-6)
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
        last = out.hidden_states[-1][0].double().numpy()  # after the final layer norm
        np.testing.assert_allclose(vectors["hidden"][k], last.mean(axis=0), atol=1e-5)
    concepts = ["cat", "dog", "red_car", "table"]
    pairs = baseline_pairs(concepts, vectors)
    assert len(pairs) == 2 * 6
    for row in pairs.itertuples():
        i, j = concepts.index(row.concept_a), concepts.index(row.concept_b)
        assert i < j
        key = {"cosine_input_embedding": "input", "cosine_last_hidden": "hidden"}[row.measure]
        assert row.value == pytest.approx(_cosine(vectors[key][i], vectors[key][j]), abs=1e-12)
        assert np.isnan(row.tau)


def _similarity_table(ap: np.ndarray, taus) -> pd.DataFrame:
    return similarity_frame(pairwise_similarity(ap, taus, CONCEPTS))


def test_judged_words_map_to_concepts_by_case_order_and_first_sense():
    ap = _ap(2)
    taus = [0.5]
    concepts = CONCEPTS + ["cat_2"]  # a second sense of "cat": the first concept is used
    words = {c: c for c in CONCEPTS} | {"cat_2": "cat", "postman": "Postman"}
    ap_all = np.vstack([ap, ap[:1] * 0 + 0.9])
    table = similarity_frame(pairwise_similarity(ap_all, taus, concepts))
    judgments = pd.DataFrame(
        [
            ("dog", "cat", 9.0),  # stored as (cat, dog): reversed
            ("CAR", "Road", 7.0),  # case differs from the table
            ("postman", "mat", 3.0),  # the table's word is "Postman"
            ("table", "chair", 8.0),  # reversed again
            ("cat", "unicorn", 5.0),  # not a concept: dropped
            ("cat", "CAT", 1.0),  # a self-pair: dropped
            ("cat", "dog", 2.0),  # the same pair again: dropped (first kept)
        ],
        columns=["word1", "word2", "score"],
    )
    got = jobs.word_pair_similarities(table, judgments, words)
    assert got[["word1", "word2", "score"]].values.tolist() == [
        ["dog", "cat", 9.0],
        ["CAR", "Road", 7.0],
        ["postman", "mat", 3.0],
        ["table", "chair", 8.0],
    ]
    assert got["concept_a"].tolist() == ["dog", "car", "postman", "table"]
    assert got["concept_b"].tolist() == ["cat", "road", "mat", "chair"]
    index = {c: i for i, c in enumerate(concepts)}
    for row in got.to_dict("records"):
        i, j = index[row["concept_a"]], index[row["concept_b"]]
        assert row["jaccard@0.5"] == pytest.approx(_jaccard(ap_all[i], ap_all[j], 0.5))
        assert row["cosine_ap"] == pytest.approx(_cosine(ap_all[i], ap_all[j]), abs=2e-6)
        assert row["cosine_ap_centered"] == pytest.approx(
            _cosine(ap_all[i] - 0.5, ap_all[j] - 0.5), abs=2e-6
        )


def _bootstrap_ci(x, y, n_boot, seed, level=0.95):
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    boots = np.array([spearmanr(x[k], y[k]).statistic for k in idx])
    boots = boots[np.isfinite(boots)]
    return np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])


def test_alignment_step_recomputed_from_scratch(tmp_path):
    """jobs.alignment's ρ, CI, p and n for every measure, and its experts-vs-baseline rows,
    against values built here from the AP vectors, a judgment file and scipy."""
    ap = _ap(3)
    taus = [0.5, 0.7]
    pairs_path = tmp_path / "pairs.parquet"
    _similarity_table(ap, taus).to_parquet(pairs_path)
    rng = np.random.default_rng(4)
    baseline = rng.normal(size=(len(CONCEPTS), 5))
    baseline_path = tmp_path / "baselines.parquet"
    baseline_pairs(CONCEPTS, {"input": baseline, "hidden": baseline**2}).to_parquet(baseline_path)
    # every pair judged once, half of them in reversed order and in upper case
    lines = ["word1\tword2\tscore"]
    judged = []
    for k, (i, j) in enumerate(itertools.combinations(range(len(CONCEPTS)), 2)):
        score = round(float(10 * _jaccard(ap[i], ap[j], 0.5) + rng.normal(0, 0.3)), 3)
        a, b = (CONCEPTS[j].upper(), CONCEPTS[i]) if k % 2 else (CONCEPTS[i], CONCEPTS[j])
        lines.append(f"{a}\t{b}\t{score}")
        judged.append((i, j, score))
    judgment_file = tmp_path / "judged.tsv"
    judgment_file.write_text("\n".join(lines) + "\n")
    out, comparison = tmp_path / "alignment.parquet", tmp_path / "vs.parquet"
    n_boot, seed = 300, 5
    jobs.alignment(
        [str(pairs_path), str(baseline_path)],
        str(out),
        str(comparison),
        judgment={"path": str(judgment_file)},
        judgment_name="mine",
        data_dir="",
        words={c: c for c in CONCEPTS},
        n_boot=n_boot,
        seed=seed,
        model="m",
        revision="r",
        source="s",
    )

    scores = np.array([s for _, _, s in judged])

    def cos(v, i, j):
        return _cosine(v[i], v[j])

    expected = {
        ("jaccard", 0.5): [_jaccard(ap[i], ap[j], 0.5) for i, j, _ in judged],
        ("jaccard", 0.7): [_jaccard(ap[i], ap[j], 0.7) for i, j, _ in judged],
        ("cosine_ap", None): [_cosine(ap[i], ap[j]) for i, j, _ in judged],
        ("cosine_ap_centered", None): [_cosine(ap[i] - 0.5, ap[j] - 0.5) for i, j, _ in judged],
        ("cosine_input_embedding", None): [cos(baseline, i, j) for i, j, _ in judged],
        ("cosine_last_hidden", None): [cos(baseline**2, i, j) for i, j, _ in judged],
    }
    table = pd.read_parquet(out)
    assert len(table) == len(expected)
    for (measure, tau), values in expected.items():
        row = table[
            (table["measure"] == measure)
            & (table["tau"].isna() if tau is None else table["tau"] == tau)
        ]
        assert len(row) == 1, (measure, tau)
        row = row.iloc[0]
        x = np.asarray(values)
        ref = spearmanr(x, scores)
        assert row["rho"] == pytest.approx(ref.statistic, abs=1e-6), measure
        assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-4), measure
        assert row["n_pairs"] == len(judged)
        low, high = _bootstrap_ci(x, scores, n_boot, seed)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), abs=1e-6), measure
        assert (row["judgment"], row["model"], row["checkpoint"]) == ("mine", "m", "r")
    vs = pd.read_parquet(comparison)
    assert len(vs) == 2 * 4  # each tau against each non-Jaccard measure
    for row in vs.to_dict("records"):
        experts = np.asarray(expected[("jaccard", row["tau"])])
        other = np.asarray(expected[(row["baseline"], None)])
        r1, r2 = spearmanr(experts, scores).statistic, spearmanr(other, scores).statistic
        assert row["rho_experts"] == pytest.approx(r1, abs=1e-6)
        assert row["rho_baseline"] == pytest.approx(r2, abs=1e-6)
        assert row["difference"] == pytest.approx(r1 - r2, abs=1e-6)
        assert row["n_pairs"] == len(judged)
