"""Which sentences a concept's AP sees in a shard job: a text is never its own concept's negative.

``shard_expertise`` runs every distinct text once and gives it one response column. When a
concept's positive sentence is also in the negative bank under another concept (the generator
can write the same sentence for two concepts), that text is one of the concept's positives and
is skipped as a negative, like the concept's own bank rows; the next bank row takes its place.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score
from tiny_models import tiny_model, word_tokenizer

from expertalign import extract
from expertalign.extract import ConceptSentences, concept_expertise, shard_expertise
from expertalign.models import LoadedModel
from expertalign.units import find_units

CAT = ["the cat sat on the mat", "a cat was purring", "the cat and the dog"]
BANK = [  # (sentence id, concept, text) in bank order
    ("car:0", "car", "the red car drove fast"),
    ("dog:3", "dog", "a cat was purring"),  # also one of cat's positives
    ("cat:9", "cat", "the cat is green"),  # cat's own bank sentence
    ("road:1", "road", "she drove on the road"),
    ("chair:0", "chair", "blue chair"),
    ("table:2", "table", "the table is green"),
    ("postman:5", "postman", "they were at the postman"),
]


@pytest.fixture
def fixed_responses(monkeypatch):
    """Responses that depend on the text alone (integers, so ties are common), in place of the
    model: the expected AP is then computable exactly from the same table."""
    texts = sorted({t for _, _, t in BANK} | set(CAT))
    rng = np.random.default_rng(42)
    lm = LoadedModel(tiny_model("gpt_neox"), word_tokenizer(), "tiny", None)
    layout = find_units(lm.model)
    table = {t: rng.integers(0, 4, layout.n_units).astype(np.float32) for t in texts}

    def fake_pool(model, tokenizer, sentences, layout, out, **kwargs):
        for column, text in enumerate(sentences):
            out[:, column] = torch.from_numpy(table[text])
        return list(range(len(sentences)))

    monkeypatch.setattr(extract, "pool_responses_into", fake_pool)
    return lm, layout, table


def _sklearn(table, positives, negatives):
    scores = np.stack([table[t] for t in positives + negatives])
    labels = np.r_[np.ones(len(positives), bool), np.zeros(len(negatives), bool)]
    return np.array([average_precision_score(labels, scores[:, u]) for u in range(scores.shape[1])])


def test_a_positive_text_in_the_bank_is_not_a_negative(fixed_responses):
    lm, layout, table = fixed_responses
    ids, texts = [i for i, _, _ in BANK], [t for _, _, t in BANK]
    cat = ConceptSentences("cat", CAT, own_bank_ids={"cat:9"})
    dog = ConceptSentences("dog", ["the dog barked loudly"], own_bank_ids={"dog:3"})
    table["the dog barked loudly"] = (
        np.random.default_rng(7).integers(0, 4, layout.n_units).astype(np.float32)
    )
    result = shard_expertise(lm, layout, [cat, dog], ids, texts, n_negatives=4)
    # cat: skips "a cat was purring" (its own text, under dog's id) and cat:9 (its own id)
    cat_negatives = [
        "the red car drove fast",
        "she drove on the road",
        "blue chair",
        "the table is green",
    ]
    np.testing.assert_allclose(result.ap[0], _sklearn(table, CAT, cat_negatives), atol=1e-6)
    assert result.n_negatives[0] == 4 and result.n_positives[0] == 3
    # dog: its own id skipped; the text it shares with cat is nothing to dog
    dog_negatives = [
        "the red car drove fast",
        "the cat is green",
        "she drove on the road",
        "blue chair",
    ]
    np.testing.assert_allclose(
        result.ap[1], _sklearn(table, ["the dog barked loudly"], dog_negatives), atol=1e-6
    )


def test_explicit_negatives_equal_to_a_positive_are_dropped(fixed_responses):
    lm, layout, table = fixed_responses
    negatives = ["the red car drove fast", "a cat was purring", "blue chair"]
    ap = concept_expertise(lm, layout, CAT, negatives)
    expected = _sklearn(table, CAT, ["the red car drove fast", "blue chair"])
    np.testing.assert_allclose(ap, expected, atol=1e-6)
    with pytest.raises(ValueError, match="every negative sentence is also a positive"):
        concept_expertise(lm, layout, CAT, ["a cat was purring"])


def test_too_few_negatives_after_the_text_rule_is_an_error(fixed_responses):
    lm, layout, _ = fixed_responses
    ids, texts = [i for i, _, _ in BANK], [t for _, _, t in BANK]
    cat = ConceptSentences("cat", CAT, own_bank_ids={"cat:9"})
    with pytest.raises(ValueError, match=r"'cat'.*2 of them its own.*leaving 5 < n_negatives=6"):
        shard_expertise(lm, layout, [cat], ids, texts, n_negatives=6)
