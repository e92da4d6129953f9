"""Expertise of many concepts in one pass: every sentence runs through the model once.

    >>> from expertalign.extract import ConceptSentences, shard_expertise
    >>> concepts = [ConceptSentences("cat", positives=cat_texts, own_bank_ids={"cat:0003"}), ...]
    >>> result = shard_expertise(lm, layout, concepts, bank_ids, bank_texts, n_negatives=1000)
    >>> result.concepts, result.ap.shape            # ['cat', ...], float32 [concepts, units]
    >>> result = shard_expertise(lm, layout, concepts, pool_ids, pool_texts, n_negatives=1000,
    ...                          negatives_mode="per_concept", negatives_seed=0)

A shard's concepts share one negative bank (a pool, in ``per_concept`` mode). Its responses are
sorted once per unit; each concept then sorts only its positives and merges them into the bank
(:mod:`expertalign.ap`). A concept's negatives (:func:`expertalign.negatives.negative_rows`) are
the bank minus an excluded list, so the shared sort stays exact for every concept: in ``shared``
mode the first ``n_negatives`` bank sentences (bank order) that are not its own, in
``per_concept`` mode a seeded sample of ``n_negatives`` of them; the excluded list (its own rows
and the pool rows it does not keep) costs about as much as the same number of positives. Bank
rows past the last one any concept keeps are never run.

A text is never its own concept's negative, by text as well as by id: a bank row whose text is one
of the concept's positive sentences (e.g. another concept's sentence that the generator also wrote
for this one) is skipped like the concept's own rows. Every distinct text has one response column,
so counting it as both positive and negative would tie a positive with a negative on every unit.

The shard's responses live in one unit-major matrix [units, distinct sentences] (memory grows as
units × sentences × bytes per value), filled batch by batch in run order; the bank and every
concept's positives are read from it by column index, without intermediate copies.

Progress goes to the ``expertalign.extract`` logger (:mod:`expertalign.progress`): the forward
pass logs how many sentences have run, their rate and an ETA at most every
``$EXPERTALIGN_PROGRESS_SECONDS`` (30 s), and every concept logs a line once its AP is done::

    forward pass: 1200 of 5000 sentences, 41.3 sentences/s, elapsed 0:29, ETA 1:32
    concept 3 of 12 (cat): 1012 sentences (12 positives, 1000 negatives), 9.8 sentences/s, ...
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from expertalign.ap import SortedNegatives
from expertalign.models import LoadedModel
from expertalign.negatives import negative_rows
from expertalign.progress import ConceptProgress, Progress
from expertalign.responses import pool_responses_into
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


def shard_expertise(
    lm: LoadedModel,
    layout: UnitLayout,
    concepts: Sequence[ConceptSentences],
    bank_ids: Sequence[str],
    bank_texts: Sequence[str],
    n_negatives: int,
    *,
    negatives_mode: str = "shared",
    negatives_seed: int = 0,
    max_tokens: int = 4096,
    max_length: int = 128,
    unit_stats: bool = False,
    progress: bool = False,
) -> ShardExpertise:
    """AP of every unit for every concept of a shard against the shared negative bank.

    ``negatives_mode`` and ``negatives_seed`` choose each concept's negatives among the bank rows
    (:func:`expertalign.negatives.negative_rows`): ``shared`` (the first ``n_negatives`` not its
    own) or ``per_concept`` (a sample seeded by ``negatives_seed`` and the concept).

    ``timings`` holds seconds for ``forward_s``, ``bank_sort_s`` and ``ap_s``, and the counts
    ``sentences`` (distinct texts run), ``bank_sentences`` (distinct texts among the bank rows
    used) and ``bank_rows`` (bank prefix that any concept uses; later rows are never run).

    Progress lines go to this module's logger (see the module doc); ``progress`` adds a tqdm
    bar of the forward pass on stderr (for a terminal: in a log file its updates share lines
    with the log's).
    """
    if len(bank_ids) != len(bank_texts):
        raise ValueError("bank_ids and bank_texts differ in length")
    for concept in concepts:
        if len(concept.positives) == 0:
            raise ValueError(f"concept {concept.concept!r} has no positive sentences")
    timings: dict[str, float] = {}
    kept_and_excluded = [
        negative_rows(
            bank_ids,
            bank_texts,
            c.own_bank_ids,
            set(c.positives),
            n_negatives,
            c.concept,
            mode=negatives_mode,
            seed=negatives_seed,
        )
        for c in concepts
    ]
    # A concept's negatives are bank rows up to the last one it keeps: rows after the last one
    # any concept keeps are never used, so they are neither run nor sorted.
    used = max((keep[-1] + 1 for keep, _ in kept_and_excluded if keep), default=0)
    used = max(used, 1)
    # Every distinct text runs once, however many concepts (or the bank) use it. All of them run
    # in one call, batched exactly as max_pooled_responses would batch the same list (a sentence's
    # float rounding depends on its batch), and columns of the response matrix follow run order.
    texts: list[str] = []
    index_of: dict[str, int] = {}
    for text in list(bank_texts[:used]) + [t for c in concepts for t in c.positives]:
        if text not in index_of:
            index_of[text] = len(texts)
            texts.append(text)
    n_bank_texts = len({t for t in bank_texts[:used]})
    parameter = next(lm.model.parameters())
    responses = torch.empty(
        layout.n_units, len(texts), dtype=parameter.dtype, device=parameter.device
    )
    log.info(
        "forward pass: %d distinct sentences (%d bank rows, %d concepts) through %d units",
        len(texts),
        used,
        len(concepts),
        layout.n_units,
    )
    forward = Progress("forward pass", total=len(texts), unit="sentences", logger=log)
    start = time.perf_counter()
    with _counting_batches(lm.model, layout, forward):
        columns = pool_responses_into(
            lm.model,
            lm.tokenizer,
            texts,
            layout,
            responses,
            max_tokens=max_tokens,
            max_length=max_length,
            progress=progress,
        )
    timings["forward_s"] = time.perf_counter() - start
    forward.finish()
    column_of = {text: columns[i] for text, i in index_of.items()}
    # pool_responses_into has refused non-finite responses already, naming unit and sentence
    bank_rows = torch.tensor([column_of[t] for t in bank_texts[:used]], dtype=torch.long)
    start = time.perf_counter()
    # the bank's rows are picked from the response matrix by index: nothing is copied but the sort
    bank = SortedNegatives(responses.T, rows=bank_rows)
    timings["bank_sort_s"] = time.perf_counter() - start
    log.info(
        "negative bank: %d rows sorted for %d units in %.1fs",
        used,
        layout.n_units,
        timings["bank_sort_s"],
    )
    progress_lines = ConceptProgress(len(concepts), "sentences", logger=log)
    start = time.perf_counter()
    ap_rows, n_pos, n_neg = [], [], []
    stats: dict[str, list[np.ndarray]] = {"neg_mean": [], "pos_median": [], "pos_p90": []}
    for concept, (keep, excluded) in zip(concepts, kept_and_excluded):
        rows = torch.tensor([column_of[t] for t in concept.positives], dtype=torch.long)
        excluded_used = [row for row in excluded if row < used]
        ap = bank.average_precision(responses.T, exclude=excluded_used, rows=rows)
        ap_rows.append(ap.float().cpu().numpy())
        n_pos.append(len(rows))
        n_neg.append(len(keep))
        if unit_stats:
            device = responses.device
            negatives = responses.index_select(1, bank_rows[torch.tensor(keep)].to(device))
            stats["neg_mean"].append(negatives.float().mean(dim=1).cpu().numpy())
            positives = responses.index_select(1, rows.to(device))
            quantiles = torch.quantile(
                positives.float(), torch.tensor([0.5, 0.9], device=device), dim=1
            )
            stats["pos_median"].append(quantiles[0].cpu().numpy())
            stats["pos_p90"].append(quantiles[1].cpu().numpy())
        progress_lines.done(
            concept.concept,
            n_pos[-1] + n_neg[-1],
            f"({n_pos[-1]} positives, {n_neg[-1]} negatives)",
        )
    timings["ap_s"] = time.perf_counter() - start
    timings["sentences"] = len(texts)
    timings["bank_sentences"] = n_bank_texts
    timings["bank_rows"] = used
    return ShardExpertise(
        concepts=[c.concept for c in concepts],
        ap=np.stack(ap_rows).astype(np.float32),
        n_positives=n_pos,
        n_negatives=n_neg,
        unit_stats={k: np.stack(v) for k, v in stats.items()} if unit_stats else None,
        timings=timings,
    )


@contextlib.contextmanager
def _counting_batches(
    model: torch.nn.Module, layout: UnitLayout, progress: Progress
) -> Iterator[None]:
    """Advance ``progress`` by each batch's rows when the batch reaches the last recorded module.

    The forward pass runs every recorded module once per batch (its outputs are what gets
    pooled), so this hook is one clock read per batch; it reads only the output's batch size and
    returns nothing, so the computation is untouched. On a GPU it counts batches as the CPU
    queues them (reading the clock must not wait for the device).
    """
    module = dict(model.named_modules())[layout.modules[-1].name]

    def hook(_module: torch.nn.Module, _inputs: object, output: object) -> None:
        hidden = output[0] if isinstance(output, tuple) else output
        progress.advance(int(hidden.shape[0]))  # type: ignore[union-attr]

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def concept_expertise(
    lm: LoadedModel,
    layout: UnitLayout,
    positives: Sequence[str],
    negatives: Sequence[str],
    **kwargs,
) -> np.ndarray:
    """AP vector float32 [units] of one concept from explicit positive and negative sentences.

    A negative whose text is also a positive does not count as a negative (as in
    :func:`shard_expertise`); the others all do.
    """
    if len(negatives) == 0:
        raise ValueError("the negative set is empty")
    own_texts = set(positives)
    n_negatives = sum(text not in own_texts for text in negatives)
    if n_negatives == 0:
        raise ValueError("every negative sentence is also a positive sentence")
    ids = [f"neg:{i}" for i in range(len(negatives))]
    result = shard_expertise(
        lm,
        layout,
        [ConceptSentences("concept", positives)],
        ids,
        list(negatives),
        n_negatives=n_negatives,
        **kwargs,
    )
    return result.ap[0]
