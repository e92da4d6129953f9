"""Per-concept negatives (issue 11 item 4, the paper's Sec. 3.2): each concept's own seeded sample
of the pool, never its own sentences; the shared bank stays as it was."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from expertalign.negatives import (
    build_negative_bank,
    concept_negatives,
    negative_rows,
    pick_negatives,
)

CONCEPTS = ("cat", "dog", "car", "sun", "tea", "red")


def frame(concept: str, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sentence_id": [f"{concept}:{i:04d}" for i in range(n)],
            "concept": concept,
            "text": [f"sentence {i} about the {concept}" for i in range(n)],
        }
    )


POOL = build_negative_bank([frame(c, 12) for c in CONCEPTS], size=48, seed=0, version="v1")


def old_shared_rule(ids, texts, own, positives, n):
    """The rule before modes existed: the first n rows neither own by id nor a positive text."""
    keep = [r for r, (i, t) in enumerate(zip(ids, texts)) if i not in own and t not in positives]
    return keep[:n], [r for r in range(len(ids)) if r not in set(keep[:n])]


def test_per_concept_negatives_are_never_the_concepts_own_by_id_or_text():
    ids, texts = POOL["sentence_id"].tolist(), POOL["text"].tolist()
    for concept in CONCEPTS:
        own = {i for i in ids if i.startswith(f"{concept}:")}
        # another concept's sentence that this concept also has among its positives (only the
        # text rule excludes it), and own sentences that are not among its positives (only the
        # id rule excludes them: e.g. dropped from the positives after the bank was drawn)
        foreign = next(t for i, t in zip(ids, texts) if i not in own)
        positives = {t for i, t in zip(ids, texts) if i in own and int(i[-1]) % 2} | {foreign}
        assert {t for i, t in zip(ids, texts) if i in own} - positives, "own, not positive"
        for seed in range(5):
            keep, excluded = negative_rows(
                ids, texts, own, positives, 30, concept, mode="per_concept", seed=seed
            )
            assert len(keep) == 30 and keep == sorted(keep)
            assert sorted(keep + excluded) == list(range(len(ids)))
            assert not {ids[r] for r in keep} & own
            assert not {texts[r] for r in keep} & positives


def test_per_concept_negatives_are_reproducible_and_differ_between_seeds_and_concepts():
    def rows(concept, seed):
        return concept_negatives(POOL, concept, 30, mode="per_concept", seed=seed)

    assert rows("cat", 0) == rows("cat", 0)
    assert rows("cat", 0) != rows("cat", 1)
    assert rows("cat", 0) != rows("dog", 0)
    # the shared bank gives every concept the same negatives up to its own rows
    shared = {c: set(concept_negatives(POOL, c, 30)) for c in CONCEPTS}
    per = {c: set(rows(c, 0)) for c in CONCEPTS}
    assert len(per["cat"] ^ per["dog"]) > len(shared["cat"] ^ shared["dog"])
    # and they come from the other concepts only
    for c in CONCEPTS:
        assert (POOL.iloc[sorted(per[c])]["concept"] != c).all()


def test_a_smaller_sample_is_a_prefix_of_a_larger_one():
    eligible = list(range(100, 200))
    big = pick_negatives(eligible, 60, "cat", mode="per_concept", seed=3)
    small = pick_negatives(eligible, 20, "cat", mode="per_concept", seed=3)
    assert small == big[:20] and len(set(big)) == 60 and set(big) <= set(eligible)
    assert pick_negatives(eligible, 20, "cat", mode="shared") == eligible[:20]
    assert pick_negatives(eligible, 20, "cat", mode="per_concept", seed=3, draw=(1,)) != small


def test_errors_name_the_concept_and_the_mode():
    ids, texts = POOL["sentence_id"].tolist(), POOL["text"].tolist()
    with pytest.raises(ValueError, match="'cat'.*n_negatives=45.*bank_size"):
        negative_rows(
            ids,
            texts,
            {i for i in ids if i.startswith("cat:")},
            set(),
            45,
            "cat",
            mode="per_concept",
        )
    with pytest.raises(ValueError, match="mode 'random' is not one of shared, per_concept"):
        pick_negatives([1, 2, 3], 2, "cat", mode="random")


def test_shared_mode_is_the_old_rule():
    ids, texts = POOL["sentence_id"].tolist(), POOL["text"].tolist()
    for concept in CONCEPTS:
        own = {i for i in ids if i.startswith(f"{concept}:")}
        positives = {texts[3], texts[11]}
        for n in (1, 20, 35):
            expected = old_shared_rule(ids, texts, own, positives, n)
            assert negative_rows(ids, texts, own, positives, n, concept) == expected
            assert (
                negative_rows(ids, texts, own, positives, n, concept, mode="shared", seed=7)
                == expected
            )


def test_pilot_per_concept_negatives_skip_the_concepts_pool():
    from expertalign.analysis.pilot import fold_rows

    pools = {c: np.arange(i * 20, (i + 1) * 20) for i, c in enumerate(("a", "b", "c", "d"))}
    negative_pool = np.arange(80)
    shared = fold_rows(pools, negative_pool, 5, 12, k=2, seed=0)
    per = fold_rows(pools, negative_pool, 5, 12, k=2, seed=0, negatives_mode="per_concept")
    again = fold_rows(pools, negative_pool, 5, 12, k=2, seed=0, negatives_mode="per_concept")
    for key, (pos, neg) in per.items():
        assert not set(neg) & set(pools[key[0]].tolist())
        np.testing.assert_array_equal(neg, again[key][1])
        np.testing.assert_array_equal(pos, shared[key][0])  # positives do not depend on the mode
    folds = {f: set().union(*(set(per[(c, f)][1]) for c in pools)) for f in range(2)}
    assert not folds[0] & folds[1]  # disjoint folds stay disjoint
    assert not np.array_equal(per[("a", 0)][1], per[("b", 0)][1])


@pytest.fixture(scope="module")
def tiny():
    from tiny_models import WORDS, tiny_model, word_tokenizer

    from expertalign.models import LoadedModel
    from expertalign.units import find_units

    rng = np.random.default_rng(0)
    frames = []
    for c in ("cat", "dog", "car", "red", "sun"):
        f = frame(c, 8)
        f["text"] = [" ".join(rng.choice(WORDS, size=6)) + f" {c}" for _ in range(8)]
        frames.append(f)
    pool = build_negative_bank(frames, size=30, seed=0, version="t")
    lm = LoadedModel(tiny_model("gpt2"), word_tokenizer(), "tiny", None)
    return lm, find_units(lm.model), frames, pool


def shard_of(frames, pool, extra_positive=None):
    from expertalign.extract import ConceptSentences

    shard = []
    for f in frames[:2]:
        concept = f["concept"].iat[0]
        positives = f["text"].tolist()
        if extra_positive and concept == "cat":
            positives = positives + [extra_positive]
        shard.append(
            ConceptSentences(
                concept, positives, set(pool.loc[pool["concept"] == concept, "sentence_id"])
            )
        )
    return shard


def test_shard_ap_equals_sklearn_on_exactly_the_sampled_negatives(tiny):
    from sklearn.metrics import average_precision_score

    from expertalign.extract import shard_expertise
    from expertalign.responses import max_pooled_responses

    lm, layout, frames, pool = tiny
    # cat's positives also contain one of the pool's dog sentences: never its negative
    dog_text = pool.loc[pool["concept"] == "dog", "text"].iat[0]
    shard = shard_of(frames, pool, extra_positive=dog_text)
    result = shard_expertise(
        lm,
        layout,
        shard,
        pool["sentence_id"].tolist(),
        pool["text"].tolist(),
        n_negatives=15,
        negatives_mode="per_concept",
        negatives_seed=4,
    )
    rng = np.random.default_rng(1)
    units = rng.choice(layout.n_units, size=min(300, layout.n_units), replace=False)
    for i, concept in enumerate(shard):
        rows = concept_negatives(
            pool, concept.concept, 15, concept.positives, mode="per_concept", seed=4
        )
        negatives = pool.iloc[rows]["text"].tolist()
        assert not set(negatives) & set(concept.positives)
        assert result.n_negatives[i] == 15
        texts = list(concept.positives) + negatives
        responses = max_pooled_responses(lm.model, lm.tokenizer, texts, layout).float().numpy()
        labels = np.r_[np.ones(len(concept.positives)), np.zeros(len(negatives))]
        expected = [average_precision_score(labels, responses[u]) for u in units]
        np.testing.assert_allclose(result.ap[i][units], expected, atol=1e-6)


def test_shard_shared_mode_is_unchanged_and_per_concept_differs(tiny):
    from expertalign.extract import concept_expertise, shard_expertise

    lm, layout, frames, pool = tiny
    shard = shard_of(frames, pool)
    ids, texts = pool["sentence_id"].tolist(), pool["text"].tolist()
    default = shard_expertise(lm, layout, shard, ids, texts, n_negatives=15)
    shared = shard_expertise(
        lm, layout, shard, ids, texts, n_negatives=15, negatives_mode="shared", negatives_seed=9
    )
    per = shard_expertise(
        lm,
        layout,
        shard,
        ids,
        texts,
        n_negatives=15,
        negatives_mode="per_concept",
        negatives_seed=9,
    )
    np.testing.assert_array_equal(default.ap, shared.ap)
    assert not np.array_equal(default.ap, per.ap)
    for i, concept in enumerate(shard):
        keep, _ = old_shared_rule(ids, texts, concept.own_bank_ids, set(concept.positives), 15)
        expected = concept_expertise(lm, layout, concept.positives, [texts[r] for r in keep])
        np.testing.assert_array_equal(default.ap[i], expected)


@pytest.mark.parametrize("mode", ["shared", "per_concept"])
def test_a_concepts_ap_does_not_depend_on_its_shard(tiny, mode):
    """Shards of any size (models.shard_size) give every concept the same AP: alone, or with
    the others in one shard."""
    from expertalign.extract import ConceptSentences, shard_expertise

    lm, layout, frames, pool = tiny
    ids, texts = pool["sentence_id"].tolist(), pool["text"].tolist()
    concepts = [
        ConceptSentences(
            f["concept"].iat[0],
            f["text"].tolist(),
            set(pool.loc[pool["concept"] == f["concept"].iat[0], "sentence_id"]),
        )
        for f in frames
    ]
    settings = {"n_negatives": 15, "negatives_mode": mode, "negatives_seed": 3}
    together = shard_expertise(lm, layout, concepts, ids, texts, **settings)
    for i, concept in enumerate(concepts):
        alone = shard_expertise(lm, layout, [concept], ids, texts, **settings)
        np.testing.assert_allclose(alone.ap[0], together.ap[i], atol=1e-6)


def test_concepts_with_the_same_candidates_get_different_samples():
    """The seed holds the concept, not only negatives.seed: elsewhere each concept loses its own
    rows, so candidates differ anyway; here they are the same 40 rows, and only the seed can
    tell the 8 concepts apart (overlaps as of independent draws: 8 of 40, 1.6 expected)."""
    concepts = ["cat", "dog", "car", "sun", "tea", "red", "tree", "milk"]
    samples = {
        c: tuple(pick_negatives(range(40), 8, c, mode="per_concept", seed=0)) for c in concepts
    }
    assert len(set(samples.values())) == len(concepts), samples
    overlaps = [len(set(samples[a]) & set(samples[b])) for a in concepts for b in concepts if a < b]
    assert np.mean(overlaps) < 4, overlaps
