"""The negative bank: a seeded, versioned sample of sentences across concepts.

    >>> from expertalign.negatives import build_negative_bank, concept_negatives, check_ratio
    >>> bank = build_negative_bank([cat_frame, dog_frame, ...], size=1100, seed=0, version="v1")
    >>> rows = concept_negatives(bank, "cat", n_negatives=1000)   # bank rows, in bank order
    >>> pool = build_negative_bank([cat_frame, dog_frame, ...], size=1400, seed=0, version="v1")
    >>> rows = concept_negatives(pool, "cat", 1000, mode="per_concept", seed=0)  # cat's own sample
    >>> check_ratio(400, 1000)                                     # the paper's 400 : 1000

The bank depends only on the sentences it is built from, its size and its seed, so concepts added
to the table later never change it (the workflow builds it from the first N concepts of the table).
Sampling is balanced: every source concept contributes ``size // n_concepts`` sentences (the
remainder going to a seeded choice of concepts), drawn with a seed derived from the concept's id.
A concept's negatives are the bank in ``bank_rank`` order without its own sentences and without
any sentence whose text is one of its positives (a text is never its own concept's negative, by
text as well as by id); of those *eligible* rows it keeps ``n_negatives``, chosen by the mode
(``negatives.mode``):

- ``shared``: the first ``n_negatives`` eligible rows in bank order, so all concepts share one
  negative set up to their own rows (the bank is then barely larger than ``n_negatives``).
- ``per_concept`` (the paper, Sec. 3.2: each concept's negatives are sampled from the sentences
  of the other concepts): the bank is a *pool*, and each concept keeps a seeded random sample of
  ``n_negatives`` of its eligible rows, the seed derived from ``negatives.seed`` and the concept's
  id. The draw is a permutation of the eligible rows, so a smaller sample is a prefix of a larger
  one (nested sizes), and the same seed and concept always give the same sample.

Either way a concept's negatives are the pool minus an excluded list, so the pool is run and
sorted once per shard and each concept is ranked against it (:mod:`expertalign.ap`).
:func:`pick_negatives` is the rule (eligibility and choice) for rows in a draw order; the pilot
(:mod:`expertalign.analysis.pilot`) calls it on its folds, and :func:`negative_rows` on a bank
(own rows by sentence id and by text), for the expert job (:mod:`expertalign.extract`),
:func:`concept_negatives` and the benchmark (``bench/corpus.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Container, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "BANK_COLUMNS",
    "build_negative_bank",
    "concept_negatives",
    "negative_rows",
    "pick_negatives",
    "NEGATIVE_MODES",
    "check_ratio",
]

BANK_COLUMNS = ("sentence_id", "concept", "text", "bank_rank")
PAPER_RATIO = 400 / 1000
NEGATIVE_MODES = ("shared", "per_concept")


def _seed(seed: int, *parts: object) -> int:
    digest = hashlib.sha256(":".join(map(str, (seed, *parts))).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def build_negative_bank(
    sentence_frames: Sequence[pd.DataFrame], size: int, seed: int, version: str
) -> pd.DataFrame:
    """A bank of ``size`` sentences sampled evenly across the given concepts' sentence tables."""
    frames = [f for f in sentence_frames if len(f)]
    if not frames:
        raise ValueError("no sentences to build the negative bank from")
    for frame in frames:
        missing = {"sentence_id", "concept", "text"} - set(frame.columns)
        if missing:
            raise ValueError(f"sentence table lacks columns {sorted(missing)}")
    frames = sorted(frames, key=lambda f: str(f["concept"].iloc[0]))
    total = sum(len(f) for f in frames)
    if size > total:
        raise ValueError(
            f"negative bank of {size} sentences requested, but the source concepts have only "
            f"{total}; lower negatives.bank_size or use more source concepts"
        )
    concepts = [str(f["concept"].iloc[0]) for f in frames]
    quota = {c: 0 for c in concepts}
    remaining = size
    # Even shares, capped by what a concept has; repeat until the bank is full.
    while remaining:
        open_concepts = [c for c, f in zip(concepts, frames) if quota[c] < len(f)]
        share, extra = divmod(remaining, len(open_concepts))
        rng = np.random.default_rng(_seed(seed, version, "extra", remaining))
        lucky = set(rng.choice(open_concepts, size=extra, replace=False)) if extra else set()
        for concept, frame in zip(concepts, frames):
            if concept not in open_concepts:
                continue
            take = min(len(frame) - quota[concept], share + (concept in lucky))
            quota[concept] += take
            remaining -= take
    picked = []
    for concept, frame in zip(concepts, frames):
        rng = np.random.default_rng(_seed(seed, version, concept))
        order = rng.permutation(len(frame))[: quota[concept]]
        picked.append(frame.iloc[np.sort(order)][["sentence_id", "concept", "text"]])
    bank = pd.concat(picked, ignore_index=True)
    rng = np.random.default_rng(_seed(seed, version, "rank"))
    bank["bank_rank"] = rng.permutation(len(bank))
    return bank.sort_values("bank_rank", kind="stable").reset_index(drop=True)[list(BANK_COLUMNS)]


def pick_negatives(
    candidates: Sequence[int],
    n_negatives: int,
    concept: str,
    *,
    own: Container[int] = (),
    mode: str = "shared",
    seed: int = 0,
    draw: Sequence[object] = (),
    source: str = "the candidates",
    hint: str = "",
) -> list[int]:
    """The rule: ``n_negatives`` of the ``candidates`` (rows in draw order) that are not in
    ``own`` (the concept's own rows), in draw order.

    Of the *eligible* rows (candidates not in ``own``), ``shared`` keeps the first
    ``n_negatives``; ``per_concept`` the first ``n_negatives`` of a permutation of them seeded by
    ``seed``, ``concept`` and ``draw`` (extra seed parts, e.g. the pilot's fold), so the sample is
    reproducible, differs between concepts and seeds, and a smaller sample is a prefix of a larger
    one. Too few eligible rows is an error naming ``source`` (what the candidates are) and ending
    with ``hint`` (what to do).
    """
    if mode not in NEGATIVE_MODES:
        raise ValueError(f"negatives mode {mode!r} is not one of {', '.join(NEGATIVE_MODES)}")
    if n_negatives < 1:
        raise ValueError(f"concept {concept!r}: n_negatives must be >= 1, not {n_negatives}")
    eligible = [row for row in candidates if row not in own]
    if len(eligible) < n_negatives:
        raise ValueError(
            f"concept {concept!r}: {source} has {len(candidates)} sentences, "
            f"{len(candidates) - len(eligible)} of them its own, leaving {len(eligible)} < "
            f"n_negatives={n_negatives}" + (f"; {hint}" if hint else "")
        )
    if mode == "shared":
        return [int(row) for row in eligible[:n_negatives]]
    rng = np.random.default_rng(_seed(seed, "negatives", concept, *draw))
    order = rng.permutation(len(eligible))[:n_negatives]
    return [int(eligible[i]) for i in order]


def negative_rows(
    bank_ids: Sequence[str],
    bank_texts: Sequence[str],
    own_ids: Collection[str],
    positive_texts: Collection[str],
    n_negatives: int,
    concept: str,
    *,
    mode: str = "shared",
    seed: int = 0,
) -> tuple[list[int], list[int]]:
    """Rows (ascending, i.e. in the given bank order) that ``concept`` keeps as negatives and the
    rows it excludes, both ascending.

    Its own rows are those of its own ids or of one of its positive texts; of the others it keeps
    ``n_negatives`` chosen by ``mode`` (:func:`pick_negatives`): ``shared`` the first ones,
    ``per_concept`` a sample seeded by ``seed`` and ``concept``. Every other row (its own, its
    positives' texts, the eligible rows not kept) is excluded.
    """
    if len(bank_ids) != len(bank_texts):
        raise ValueError("bank_ids and bank_texts differ in length")
    own = {
        row
        for row, (sentence_id, text) in enumerate(zip(bank_ids, bank_texts))
        if sentence_id in own_ids or text in positive_texts
    }
    keep = sorted(
        pick_negatives(
            range(len(bank_ids)),
            n_negatives,
            concept,
            own=own,
            mode=mode,
            seed=seed,
            source="the negative bank",
            hint="its own are its sentences and any with one of its positive texts; "
            "raise negatives.bank_size",
        )
    )
    kept = set(keep)
    excluded = [row for row in range(len(bank_ids)) if row not in kept]
    return keep, excluded


def concept_negatives(
    bank: pd.DataFrame,
    concept: str,
    n_negatives: int,
    positives: Collection[str] = (),
    *,
    mode: str = "shared",
    seed: int = 0,
) -> list[int]:
    """Row positions of ``bank`` (in bank order) that are ``concept``'s negatives under ``mode``
    (:func:`negative_rows`): none is its own sentence nor one of ``positives`` (its texts)."""
    order = np.argsort(bank["bank_rank"].to_numpy(), kind="stable")
    ordered = bank.iloc[order]
    own = set(ordered.loc[ordered["concept"] == concept, "sentence_id"])
    keep, _ = negative_rows(
        ordered["sentence_id"].tolist(),
        ordered["text"].tolist(),
        own,
        set(positives),
        n_negatives,
        concept,
        mode=mode,
        seed=seed,
    )
    return [int(order[row]) for row in keep]


def check_ratio(
    n_positives: int, n_negatives: int, expected: float = PAPER_RATIO, tolerance: float = 0.05
) -> None:
    """Refuse a positive:negative ratio far from the paper's 400:1000.

    AP's chance level is the positive fraction, so τ = 0.5 only means what the paper means at the
    paper's ratio.
    """
    if n_positives <= 0 or n_negatives <= 0:
        raise ValueError(f"need positives and negatives, got {n_positives} and {n_negatives}")
    ratio = n_positives / n_negatives
    if abs(ratio - expected) > tolerance:
        raise ValueError(
            f"{n_positives} positives : {n_negatives} negatives = {ratio:.3f}, but the paper's "
            f"400:1000 = {expected:.3f} (tolerance {tolerance}); AP's chance level is the positive "
            "fraction, so scale both sizes together"
        )
