"""The negative bank: deterministic, balanced, independent of appended concepts."""

from __future__ import annotations

import pandas as pd
import pytest

from expertalign.negatives import build_negative_bank, check_ratio, concept_negatives


def frame(concept: str, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sentence_id": [f"{concept}:{i:04d}" for i in range(n)],
            "concept": concept,
            "text": [f"sentence {i} about the {concept}" for i in range(n)],
            "prompt": "facts",
            "source": "test",
        }
    )


FRAMES = [frame(c, 10) for c in ("cat", "dog", "car", "sun", "tea")]


def test_bank_is_deterministic_balanced_and_ranked():
    bank = build_negative_bank(FRAMES, size=23, seed=0, version="v1")
    again = build_negative_bank(list(reversed(FRAMES)), size=23, seed=0, version="v1")
    pd.testing.assert_frame_equal(bank, again)
    assert len(bank) == 23 and bank["sentence_id"].is_unique
    assert sorted(bank["bank_rank"]) == list(range(23))
    counts = bank["concept"].value_counts()
    assert counts.max() - counts.min() <= 1
    other = build_negative_bank(FRAMES, size=23, seed=1, version="v1")
    assert set(other["sentence_id"]) != set(bank["sentence_id"])


def test_bank_takes_what_small_concepts_have_and_refuses_too_large():
    bank = build_negative_bank([frame("a", 2), frame("b", 30)], size=20, seed=0, version="v")
    assert bank["concept"].value_counts().to_dict() == {"b": 18, "a": 2}
    with pytest.raises(ValueError, match="only 32"):
        build_negative_bank([frame("a", 2), frame("b", 30)], size=40, seed=0, version="v")


def test_appended_concepts_do_not_change_a_concepts_own_sample():
    """The workflow builds the bank from the first N concepts only; the per-concept draw is keyed
    by the concept, so one concept's sentences in the bank depend on its own table alone."""
    small = build_negative_bank(FRAMES[:4], size=20, seed=0, version="v1")
    cat_small = set(small.loc[small["concept"] == "cat", "sentence_id"])
    again = build_negative_bank(FRAMES[:4], size=20, seed=0, version="v1")
    assert cat_small == set(again.loc[again["concept"] == "cat", "sentence_id"])


def test_concept_negatives_skip_own_sentences_in_bank_order():
    bank = build_negative_bank(FRAMES, size=25, seed=0, version="v1")
    rows = concept_negatives(bank, "cat", n_negatives=18)
    assert len(rows) == 18
    assert (bank.iloc[rows]["concept"] != "cat").all()
    ranks = bank.iloc[rows]["bank_rank"].tolist()
    assert ranks == sorted(ranks)
    with pytest.raises(ValueError, match="'cat'.*n_negatives=24"):
        concept_negatives(bank, "cat", n_negatives=24)


def test_concept_negatives_skip_a_text_that_is_one_of_the_concepts_positives():
    """The CLI's negatives follow the expert job's rule: never one of the concept's own texts."""
    bank = build_negative_bank(FRAMES, size=25, seed=0, version="v1")
    first = concept_negatives(bank, "cat", n_negatives=5)
    shared_text = bank["text"].iat[first[0]]  # another concept's sentence cat also has
    rows = concept_negatives(bank, "cat", n_negatives=5, positives=[shared_text])
    assert shared_text not in set(bank["text"].iloc[rows])
    assert rows == first[1:] + [concept_negatives(bank, "cat", n_negatives=6)[-1]]


def test_ratio_check():
    check_ratio(400, 1000)
    check_ratio(20, 50)
    with pytest.raises(ValueError, match="400:1000"):
        check_ratio(60, 1000)


def test_shard_expertise_uses_exactly_the_concepts_negatives():
    """The shared-bank path (one sort, excluded rows) equals AP on concept_negatives' rows."""
    import numpy as np
    from tiny_models import WORDS, tiny_model, word_tokenizer

    from expertalign.extract import ConceptSentences, concept_expertise, shard_expertise
    from expertalign.models import LoadedModel
    from expertalign.units import find_units

    rng = np.random.default_rng(0)

    def sentences(concept: str, n: int) -> pd.DataFrame:
        texts = [" ".join(rng.choice(WORDS, size=6)) + f" {concept}" for _ in range(n)]
        out = frame(concept, n)
        out["text"] = texts
        return out

    frames = [sentences(c, 8) for c in ("cat", "dog", "car", "red")]
    bank = build_negative_bank(frames, size=16, seed=0, version="t")
    lm = LoadedModel(tiny_model("gpt2"), word_tokenizer(), "tiny", None)
    layout = find_units(lm.model)
    shard = [
        ConceptSentences(
            f["concept"].iat[0],
            f["text"].tolist(),
            set(bank.loc[bank["concept"] == f["concept"].iat[0], "sentence_id"]),
        )
        for f in frames[:2]
    ]
    result = shard_expertise(
        lm, layout, shard, bank["sentence_id"].tolist(), bank["text"].tolist(), n_negatives=10
    )
    for i, concept in enumerate(shard):
        rows = concept_negatives(bank, concept.concept, 10)
        expected = concept_expertise(
            lm, layout, concept.positives, bank.iloc[rows]["text"].tolist()
        )
        np.testing.assert_array_equal(result.ap[i], expected)
        assert result.n_negatives[i] == 10
