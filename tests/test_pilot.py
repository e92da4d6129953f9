"""The pilot's fold stability: within- vs across-concept Jaccard, fold draws, its errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from synthetic_data import _pilot_data

from expertalign.analysis import pilot


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


def test_men_pilot_concepts_stay_when_a_concept_is_added() -> None:
    """The sample is a seeded order of all MEN pairs, not of the covered ones: covering one more
    pair changes nothing unless that pair comes before the last one drawn."""
    rng = np.random.default_rng(5)
    vocabulary = [f"w{i}" for i in range(60)]
    pairs = rng.choice(vocabulary, size=(400, 2))
    men = pd.DataFrame({"word1": pairs[:, 0], "word2": pairs[:, 1], "score": 1.0})
    concept_of = {w: f"c_{w}" for w in vocabulary[:40]}
    before = pilot.men_pilot_concepts(men, concept_of, n_pairs=5, seed=1)
    order = np.random.default_rng(1).permutation(len(men))
    w1, w2 = men["word1"], men["word2"]
    covered = [i for i in order if w1[i] in concept_of and w2[i] in concept_of and w1[i] != w2[i]]
    last = list(order).index(covered[4])
    # a word whose pairs all come after the last pair drawn: adding it keeps the sample
    later = next(
        w
        for w in vocabulary[40:]
        if all(list(order).index(i) > last for i in range(len(men)) if w in (w1[i], w2[i]))
    )
    grown = {**concept_of, later: f"c_{later}"}
    assert pilot.men_pilot_concepts(men, grown, n_pairs=5, seed=1) == before


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
