"""Expertise of many concepts in one pass: every sentence runs through the model once.

    >>> from expertalign.extract import ConceptSentences, shard_expertise
    >>> concepts = [ConceptSentences("cat", positives=cat_texts, own_bank_ids={"cat:0003"}), ...]
    >>> result = shard_expertise(lm, layout, concepts, bank_ids, bank_texts, n_negatives=1000)
    >>> result.concepts, result.ap.shape            # ['cat', ...], float32 [concepts, units]

A shard's concepts share one negative bank. Its responses are sorted once per unit; each concept
then sorts only its positives and merges them into the bank (:mod:`expertalign.ap`). A concept's
negatives are the first ``n_negatives`` bank sentences (bank order) that are not its own, which is
the bank minus a short excluded list, so the shared sort stays exact for every concept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from expertalign.ap import SortedNegatives, check_finite
from expertalign.models import LoadedModel
from expertalign.responses import max_pooled_responses
from expertalign.units import UnitLayout

__all__ = ["ConceptSentences", "ShardExpertise", "shard_expertise", "concept_expertise"]

log = logging.getLogger(__name__)


@dataclass
class ConceptSentences:
    concept: str
    positives: Sequence[str]
    #: bank sentence ids that are this concept's own (never its negatives)
    own_bank_ids: set[str] = field(default_factory=set)


@dataclass
class ShardExpertise:
    concepts: list[str]
    ap: np.ndarray  # float32 [concepts, units]
    n_positives: list[int]
    n_negatives: list[int]
    unit_stats: dict[str, np.ndarray] | None
    timings: dict[str, float]


def _negative_rows(bank_ids: Sequence[str], own: set[str], n_negatives: int, concept: str):
    """Bank rows this concept keeps (first n non-own, bank order) and the rows it excludes."""
    keep: list[int] = []
    excluded: list[int] = []
    for row, sentence_id in enumerate(bank_ids):
        if sentence_id in own or len(keep) >= n_negatives:
            excluded.append(row)
        else:
            keep.append(row)
    if len(keep) < n_negatives:
        raise ValueError(
            f"concept {concept!r}: the negative bank has {len(bank_ids)} sentences, "
            f"{len(bank_ids) - len(keep)} of them its own, leaving {len(keep)} < n_negatives="
            f"{n_negatives}; rebuild the bank larger"
        )
    return keep, excluded


def shard_expertise(
    lm: LoadedModel,
    layout: UnitLayout,
    concepts: Sequence[ConceptSentences],
    bank_ids: Sequence[str],
    bank_texts: Sequence[str],
    n_negatives: int,
    *,
    max_tokens: int = 4096,
    max_length: int = 128,
    unit_stats: bool = False,
    progress: bool = False,
) -> ShardExpertise:
    """AP of every unit for every concept of a shard against the shared negative bank."""
    if len(bank_ids) != len(bank_texts):
        raise ValueError("bank_ids and bank_texts differ in length")
    for concept in concepts:
        if len(concept.positives) == 0:
            raise ValueError(f"concept {concept.concept!r} has no positive sentences")
    timings: dict[str, float] = {}
    # Every distinct text runs once, however many concepts (or the bank) use it.
    texts: list[str] = []
    row_of: dict[str, int] = {}

    def row(text: str) -> int:
        if text not in row_of:
            row_of[text] = len(texts)
            texts.append(text)
        return row_of[text]

    bank_rows = [row(t) for t in bank_texts]
    positive_rows = [[row(t) for t in c.positives] for c in concepts]
    start = time.perf_counter()
    responses = max_pooled_responses(
        lm.model, lm.tokenizer, texts, layout, max_tokens=max_tokens, max_length=max_length,
        progress=progress,
    )
    timings["forward_s"] = time.perf_counter() - start
    check_finite(responses, "unit responses")
    index = torch.tensor(bank_rows, device=responses.device)
    start = time.perf_counter()
    bank = SortedNegatives(responses.index_select(1, index).T)
    timings["bank_sort_s"] = time.perf_counter() - start
    start = time.perf_counter()
    ap_rows, n_pos, n_neg = [], [], []
    stats: dict[str, list[np.ndarray]] = {"neg_mean": [], "pos_median": [], "pos_p90": []}
    for concept, rows in zip(concepts, positive_rows):
        keep, excluded = _negative_rows(bank_ids, concept.own_bank_ids, n_negatives, concept.concept)
        positives = responses.index_select(1, torch.tensor(rows, device=responses.device))
        ap = bank.average_precision(positives.T, exclude=excluded)
        ap_rows.append(ap.float().cpu().numpy())
        n_pos.append(len(rows))
        n_neg.append(len(keep))
        if unit_stats:
            negatives = responses.index_select(1, index[torch.tensor(keep, device=index.device)])
            stats["neg_mean"].append(negatives.float().mean(dim=1).cpu().numpy())
            quantiles = torch.quantile(
                positives.float(), torch.tensor([0.5, 0.9], device=positives.device), dim=1
            )
            stats["pos_median"].append(quantiles[0].cpu().numpy())
            stats["pos_p90"].append(quantiles[1].cpu().numpy())
    timings["ap_s"] = time.perf_counter() - start
    timings["sentences"] = len(texts)
    return ShardExpertise(
        concepts=[c.concept for c in concepts],
        ap=np.stack(ap_rows).astype(np.float32),
        n_positives=n_pos,
        n_negatives=n_neg,
        unit_stats={k: np.stack(v) for k, v in stats.items()} if unit_stats else None,
        timings=timings,
    )


def concept_expertise(
    lm: LoadedModel,
    layout: UnitLayout,
    positives: Sequence[str],
    negatives: Sequence[str],
    **kwargs,
) -> np.ndarray:
    """AP vector float32 [units] of one concept from explicit positive and negative sentences."""
    if len(negatives) == 0:
        raise ValueError("the negative set is empty")
    ids = [f"neg:{i}" for i in range(len(negatives))]
    result = shard_expertise(
        lm, layout, [ConceptSentences("concept", positives)], ids, list(negatives),
        n_negatives=len(negatives), **kwargs,
    )
    return result.ap[0]
