"""A corpus source whose concepts partly took their ``fallback`` source's sentences (issue 21).

Expert sets pick up sentence style: concepts whose sentences share a style share experts,
whatever they mean. Here half the concepts of a source fall back to text of another style (their
AP vectors share a block of "style" units on top of their meaning units), and the alignment
tables must say so: the share of concepts that fell back, the judged pairs with such a concept,
every statistic again on the pairs where neither concept fell back (recomputed here with Python
sets and scipy, not the package's helpers), and a warning naming the source in the job log.
"""

from __future__ import annotations

import itertools
import logging
import re

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from synthetic_data import cosine_of_ap as _cosine
from synthetic_data import jaccard_of_ap as _jaccard
from workflow_helpers import REPO

from expertalign.baselines import baseline_pairs
from expertalign.jobs import alignment as jobs
from expertalign.sentences import sentences_frame, write_failed_sentences, write_sentences_atomic
from expertalign.similarity import pairwise_similarity, similarity_frame

CONCEPTS = [
    "cat",
    "dog",
    "car",
    "road",
    "chair",
    "table",
    "mat",
    "postman",
    "river",
    "bread",
    "music",
    "storm",
]
# every other concept: which ones fell back has nothing to do with what they mean
FELL_BACK = set(CONCEPTS[1::2])
TAUS = [0.5, 0.7]
N_BOOT, SEED = 200, 3
MEANING_UNITS, STYLE_UNITS = 1400, 600


def _ap(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """AP vectors (concepts x units) and each concept's meaning (a point on a line): experts
    among the meaning units near the concept's meaning, and for the concepts that fell back
    also the whole block of style units."""
    meaning = rng.uniform(0, 1, len(CONCEPTS))
    centres = np.linspace(0, 1, MEANING_UNITS)
    ap = rng.uniform(0, 0.4, (len(CONCEPTS), MEANING_UNITS + STYLE_UNITS))
    for i, concept in enumerate(CONCEPTS):
        near = np.abs(centres - meaning[i]) < 0.15
        ap[i, :MEANING_UNITS][near] = rng.uniform(0.75, 0.95, near.sum())
        if concept in FELL_BACK:
            ap[i, MEANING_UNITS:] = rng.uniform(0.75, 0.95, STYLE_UNITS)
    return ap.astype(np.float32), meaning


def _bootstrap_ci(x, y, n_boot, seed, level=0.95):
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    boots = np.array([spearmanr(x[k], y[k]).statistic for k in idx])
    boots = boots[np.isfinite(boots)]
    return np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])


def _sentence_files(folder, fell_back, failed=()):
    """One sentence file per concept, as the sentence jobs write them: corpus sentences in
    Brown's detokenised style, or (a concept that fell back) the generated source's sentences
    with column source = fallback:generated; a concept in ``failed`` records that it has none."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for concept in CONCEPTS:
        path = folder / f"{concept}.parquet"
        if concept in failed:
            write_failed_sentences(path, concept, "TooFewSentencesError: 2 of 10", "print")
        elif concept in fell_back:
            texts = [f"Here is a short story about a {concept} number {k}." for k in range(10)]
            frame = sentences_frame(concept, texts, "short", "generated")
            frame["source"] = "fallback:generated"
            write_sentences_atomic(frame, path, "print")
        else:
            texts = [f"The `` {concept} '' , he said , was n't there ({k}) ." for k in range(10)]
            write_sentences_atomic(
                sentences_frame(concept, texts, "corpus", "corpus:brown"), path, "print"
            )
        files.append(str(path))
    return files


@pytest.fixture
def inputs(tmp_path):
    """Similarities of the concepts' expert sets and embedding baselines, MEN-like human scores
    that follow the concepts' meaning, and what the scores and measures are, pair by pair."""
    rng = np.random.default_rng(21)
    ap, meaning = _ap(rng)
    pairs_path = tmp_path / "pairs.parquet"
    similarity_frame(pairwise_similarity(ap, TAUS, CONCEPTS)).to_parquet(pairs_path)
    embedding = rng.normal(size=(len(CONCEPTS), 6))
    embedding[:, 0] += 4 * meaning  # the baseline knows something of the meaning too
    baselines_path = tmp_path / "baselines.parquet"
    baseline_pairs(CONCEPTS, {"input": embedding, "hidden": embedding**2}).to_parquet(
        baselines_path
    )
    lines, judged = ["word1\tword2\tscore"], []
    for i, j in itertools.combinations(range(len(CONCEPTS)), 2):
        score = round(float(10 * (1 - abs(meaning[i] - meaning[j])) + rng.normal(0, 0.4)), 3)
        lines.append(f"{CONCEPTS[i]}\t{CONCEPTS[j]}\t{score}")
        judged.append((i, j, score))
    judgment_file = tmp_path / "judged.tsv"
    judgment_file.write_text("\n".join(lines) + "\n")
    measures = {
        **{(f"jaccard@{tau}"): [_jaccard(ap[i], ap[j], tau) for i, j, _ in judged] for tau in TAUS},
        "cosine_ap": [_cosine(ap[i], ap[j]) for i, j, _ in judged],
        "cosine_ap_centered": [_cosine(ap[i] - 0.5, ap[j] - 0.5) for i, j, _ in judged],
        "cosine_input_embedding": [_cosine(embedding[i], embedding[j]) for i, j, _ in judged],
        "cosine_last_hidden": [_cosine(embedding[i] ** 2, embedding[j] ** 2) for i, j, _ in judged],
    }
    return {
        "root": tmp_path,
        "pairs": [str(pairs_path), str(baselines_path)],
        "judgment": {"path": str(judgment_file)},
        "judged": judged,
        "scores": np.array([s for _, _, s in judged]),
        "measures": {k: np.asarray(v) for k, v in measures.items()},
    }


def _run(inputs, name, sentence_files):
    out = inputs["root"] / f"{name}.parquet"
    vs = inputs["root"] / f"{name}-vs-baselines.parquet"
    jobs.alignment(
        inputs["pairs"],
        str(out),
        str(vs),
        judgment=inputs["judgment"],
        judgment_name="men",
        data_dir="",
        words={c: c for c in CONCEPTS},
        n_boot=N_BOOT,
        seed=SEED,
        model="m",
        revision="r",
        source="brown",
        sentence_files=sentence_files,
    )
    return pd.read_parquet(out), pd.read_parquet(vs)


def _row(table, measure):
    name, _, tau = measure.partition("@")
    match = table[
        (table["measure"] == name)
        & (table["tau"].isna() if not tau else table["tau"] == float(tau))
    ]
    assert len(match) == 1, measure
    return match.iloc[0]


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_half_the_concepts_fall_back_share_and_no_fallback_alignment(inputs, caplog):
    """The must-show of issue 21: half of a source's concepts took another style's sentences;
    the tables report the share and the alignment on the pairs with no fallback concept."""
    files = _sentence_files(inputs["root"] / "sentences/brown", FELL_BACK)
    with caplog.at_level(logging.INFO, logger="expertalign"):
        table, vs = _run(inputs, "brown", files)

    judged, scores = inputs["judged"], inputs["scores"]
    clean = np.array(
        [CONCEPTS[i] not in FELL_BACK and CONCEPTS[j] not in FELL_BACK for i, j, _ in judged]
    )
    n_clean = len(CONCEPTS) - len(FELL_BACK)
    assert clean.sum() == n_clean * (n_clean - 1) // 2 == 15
    assert (~clean).sum() == 51

    # the warning: source, count and a few of the concepts, at WARNING level in the job log
    warnings = _warnings(caplog)
    assert len(warnings) == 1, warnings
    message = warnings[0]
    assert "brown" in message and "6 of 12 concepts" in message, message
    assert "generated" in message, message
    named = set(re.findall(r"[a-z]+", message)) & set(CONCEPTS)
    assert len(named) >= 3 and named <= FELL_BACK, message

    # every row: the source's share of concepts that fell back and the pairs that have one
    for frame in (table, vs):
        assert (frame["fallback_share"] == 0.5).all()
        assert (frame["n_concepts_fallback"] == 6).all()
        assert (frame["n_pairs_with_fallback"] == 51).all()
        assert (frame["n_pairs_no_fallback"] == 15).all()
        assert (frame["n_pairs"] == len(judged)).all()

    for measure, values in inputs["measures"].items():
        row = _row(table, measure)
        # all pairs: what the table always reported
        ref = spearmanr(values, scores)
        assert row["rho"] == pytest.approx(ref.statistic, abs=1e-6), measure
        assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-4), measure
        # the pairs where neither concept fell back, recomputed here
        x, y = values[clean], scores[clean]
        ref = spearmanr(x, y)
        assert row["rho_no_fallback"] == pytest.approx(ref.statistic, abs=1e-6), measure
        assert row["p_value_no_fallback"] == pytest.approx(ref.pvalue, rel=1e-4), measure
        low, high = _bootstrap_ci(x, y, N_BOOT, SEED)
        assert (row["ci_low_no_fallback"], row["ci_high_no_fallback"]) == pytest.approx(
            (low, high), abs=1e-6
        ), measure

    # the confound the columns are there for: the shared style pulls the expert overlap of
    # unrelated concepts together, and all pairs understate what the pairs without it show
    for tau in TAUS:
        row = _row(table, f"jaccard@{tau}")
        assert row["rho_no_fallback"] > row["rho"] + 0.2, row.to_dict()

    assert len(vs) == len(TAUS) * 4
    for row in vs.to_dict("records"):
        experts = inputs["measures"][f"jaccard@{row['tau']}"]
        other = inputs["measures"][row["baseline"]]
        r1 = spearmanr(experts[clean], scores[clean]).statistic
        r2 = spearmanr(other[clean], scores[clean]).statistic
        assert row["rho_experts_no_fallback"] == pytest.approx(r1, abs=1e-6), row
        assert row["rho_baseline_no_fallback"] == pytest.approx(r2, abs=1e-6), row
        assert row["difference_no_fallback"] == pytest.approx(r1 - r2, abs=1e-6), row
        assert row["ci_low_no_fallback"] <= row["ci_high_no_fallback"], row
        assert 0 < row["p_bootstrap_no_fallback"] <= 1 and 0 <= row["p_williams_no_fallback"] <= 1
        # and on all pairs, the numbers the table always had
        r1_all = spearmanr(experts, scores).statistic
        assert row["rho_experts"] == pytest.approx(r1_all, abs=1e-6), row


def test_a_source_without_fallback_keeps_its_numbers_and_warns_nothing(inputs, caplog):
    """No concept fell back: the existing columns are what they were without the sentence files,
    the share is 0 and the no-fallback columns repeat the all-pairs ones (the same pairs)."""
    files = _sentence_files(inputs["root"] / "sentences/brown", fell_back=set())
    with caplog.at_level(logging.INFO, logger="expertalign"):
        table, vs = _run(inputs, "brown", files)
        before, before_vs = _run(inputs, "unknown", None)
    assert not _warnings(caplog)
    for got, old in ((table, before), (vs, before_vs)):
        pd.testing.assert_frame_equal(
            got[old.columns.drop(_added(old))], old.drop(columns=_added(old))
        )
        assert (got["fallback_share"] == 0).all() and (got["n_pairs_with_fallback"] == 0).all()
        assert old["fallback_share"].isna().all()  # not known without the sentence files
    for stat in jobs.NO_FALLBACK_ALIGNMENT:
        np.testing.assert_array_equal(table[f"{stat}_no_fallback"], table[stat])
    for stat in jobs.NO_FALLBACK_COMPARISON:
        np.testing.assert_array_equal(vs[f"{stat}_no_fallback"], vs[stat])


def _added(frame):
    return [
        c
        for c in frame.columns
        if c.endswith("_no_fallback")
        or c
        in ("fallback_share", "n_concepts_fallback", "n_pairs_with_fallback", "n_concepts_left_out")
    ]


def test_a_concept_without_sentences_counts_for_neither_side(inputs, caplog):
    """A concept whose file records that it has no sentences is no concept of the source (left
    out of a too_few: leave_out source): the share is over the concepts with sentences, the
    concept is counted, and its pairs are dropped from every measure, baselines included."""
    fell_back = {"dog", "road"}
    files = _sentence_files(inputs["root"] / "s", fell_back, failed={"storm"})
    assert jobs.fallback_concepts(files) == ({"dog": "generated", "road": "generated"}, 11)
    assert list(jobs.left_out_concepts(files)) == ["storm"]
    with caplog.at_level(logging.WARNING, logger="expertalign"):
        table, vs = _run(inputs, "some", files)
    assert table["fallback_share"].iloc[0] == pytest.approx(2 / 11)
    warnings = _warnings(caplog)
    assert any("2 of 11 concepts" in w for w in warnings), warnings
    assert any("1 concepts have no sentences" in w and "storm" in w for w in warnings), warnings
    storm = CONCEPTS.index("storm")
    kept = np.array([storm not in (i, j) for i, j, _ in inputs["judged"]])
    assert kept.sum() == len(kept) - (len(CONCEPTS) - 1)
    for frame in (table, vs):
        assert (frame["n_concepts_left_out"] == 1).all()
        assert (frame["n_pairs"] == kept.sum()).all()
    for measure in ("jaccard@0.7", "cosine_input_embedding"):
        ref = spearmanr(inputs["measures"][measure][kept], inputs["scores"][kept])
        assert _row(table, measure)["rho"] == pytest.approx(ref.statistic, abs=1e-6), measure


def test_the_alignment_rule_gives_the_job_its_sources_sentence_files():
    """The workflow passes each source's sentence files to the alignment job (its input), so
    the job knows which concepts fell back."""
    rules = (REPO / "workflow/rules/alignment.smk").read_text(encoding="utf-8")
    rule = rules.split("rule alignment:", 1)[1].split("\nrule ", 1)[0]
    inputs_block = rule.split("output:", 1)[0]
    assert "sentences=" in inputs_block and "sentence_file(wildcards.source" in inputs_block
    script = (REPO / "workflow/scripts/alignment.py").read_text(encoding="utf-8")
    assert "sentence_files=list(snakemake.input.sentences)" in script
