"""Generate the positive sentences of one concept with an instruction LLM.

Two prompt styles, as in the paper: "facts" and "short stories", each asking for 10 sentences
about the concept (word, POS and WordNet definition in the prompt; the paper's own wording by
default, see :mod:`expertalign.prompts`). Completions are split into items, cleaned, and kept
only when they pass the filters of :mod:`expertalign.sentence_filters` (they mention the word or
an inflection of it, ...); half the sentences come from each style. A :class:`Backend` turns
prompts into completions: :mod:`expertalign.backends.transformers_sampler` (a local model) or
:mod:`expertalign.backends.openai_chat` (an OpenAI-compatible server).

Use::

    from expertalign.backends.transformers_sampler import TransformersBackend
    from expertalign.generation import format_filter_counts, generate_concept_sentences
    from expertalign.sentences import write_sentences_atomic

    backend = TransformersBackend(model, tokenizer)          # any HF causal LM with a chat template
    # or: OpenAIChatBackend("http://localhost:8000/v1", "my-model")   # key in $OPENAI_API_KEY
    row = {"concept": "cat", "word": "cat", "pos": "noun",
           "definition": "feline mammal usually having thick soft fur"}
    counts = {}                                 # filled: candidates, what each filter removed
    df = generate_concept_sentences(row, backend, n_sentences=20, seed=0, max_rounds=4,
                                    prompts="paper", filter_counts=counts)
    print(format_filter_counts(counts))         # "candidates 60, kept 20; removed: ..."
    write_sentences_atomic(df, "results/sentences/cat.parquet")

The table is that of :func:`expertalign.sentences.sentences_frame` (docs/CONTRACTS.md).

A concept that takes long logs (logger ``expertalign.generation``) how far it is, at most every
``$EXPERTALIGN_PROGRESS_SECONDS`` (30 s; :mod:`expertalign.progress`): within a round each time
the backend checks its completions (``stop_when``), and after each round::

    cat: round 2 of at most 4, 9 of 14 sentences so far, elapsed 1:02
    cat: round 2 of at most 4 done, 12 of 14 sentences, elapsed 1:40
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from functools import partial
from typing import Any, Protocol

import pandas as pd

from expertalign.progress import Heartbeat, format_duration
from expertalign.prompts import KINDS, SENTENCES_PER_CALL, build_prompts
from expertalign.seeds import mix_seed
from expertalign.sentence_filters import FILTERS, dedupe_key, extract_sentences
from expertalign.sentences import (
    NotEnoughSentencesError,
    SentenceGenerationError,
    row_field,
    sentences_frame,
)

__all__ = [
    "ROUND_FILTERS",
    "StopWhen",
    "Backend",
    "generate_concept_sentences",
    "format_filter_counts",
]

# Counted by generate_concept_sentences besides the filters of sentence_filters.FILTERS: items
# already kept (an earlier round or the other style), and items past a style's quota.
ROUND_FILTERS: tuple[str, ...] = ("repeat", "surplus")

# Called with the completions so far; True = all done, or one done-flag per prompt.
StopWhen = Callable[[list[str]], "bool | Sequence[bool]"]

log = logging.getLogger(__name__)


class Backend(Protocol):
    """Anything that turns user prompts into raw completions, one per prompt.

    `generate` may accept a keyword `stop_when(completions_so_far) -> bool`; backends that
    can stop early (TransformersBackend) call it with the completed lines so far and stop
    once it returns True. `parallel_calls` says how many prompts one round should hold.
    """

    name: str
    parallel_calls: int

    def generate(self, prompts: Sequence[str], seed: int) -> list[str]: ...


def _quotas(n_sentences: int) -> dict[str, int]:
    return {"facts": n_sentences - n_sentences // 2, "stories": n_sentences // 2}


class _Round:
    """One round's prompts (the style of each, `kinds`) and the sentences each style still
    misses; `seen` holds the dedupe keys of the sentences kept in earlier rounds."""

    def __init__(
        self, word: str, pos: str, kinds: list[str], missing: dict[str, int], seen: set[str]
    ) -> None:
        self.word, self.pos = word, pos
        self.kinds, self.missing, self.seen = kinds, missing, seen

    def new_items(
        self, completions: Sequence[str], tally: dict[str, int] | None = None
    ) -> dict[str, list[str]]:
        """The new sentences of each style in `completions`, at most as many as it misses;
        `tally` counts the items each filter removed."""
        found: dict[str, list[str]] = {}
        taken = set(self.seen)
        for kind in self.missing:
            items = extract_sentences(
                [c for c, k in zip(completions, self.kinds) if k == kind],
                self.word,
                self.pos,
                tally,
            )
            fresh = [s for s in items if dedupe_key(s) not in taken]
            if tally is not None:
                tally["repeat"] += len(items) - len(fresh)
                tally["surplus"] += max(0, len(fresh) - self.missing[kind])
            fresh = fresh[: self.missing[kind]]
            taken.update(dedupe_key(s) for s in fresh)
            found[kind] = fresh
        return found

    def enough(self, completions: list[str]) -> list[bool]:
        """The backend's `stop_when`: for each prompt, whether its style has all it misses."""
        found = self.new_items(completions)
        satisfied = {k: len(found[k]) >= need for k, need in self.missing.items()}
        return [satisfied[k] for k in self.kinds]

    def enough_with_heartbeat(self, beat: Heartbeat, report: Callable[[int], None]) -> StopWhen:
        """:meth:`enough`, which also calls ``report(new sentences so far)`` when ``beat`` is
        due: the backend calls it every few decoding steps, so a long round shows life. The
        verdict is :meth:`enough`'s, so what the backend does is unchanged."""

        def stop_when(completions: list[str]) -> list[bool]:
            verdict = self.enough(completions)
            if beat.due():
                report(sum(len(items) for items in self.new_items(completions).values()))
            return verdict

        return stop_when


def generate_concept_sentences(
    concept_row: Mapping[str, Any] | pd.Series,
    backend: Backend,
    n_sentences: int,
    seed: int,
    max_rounds: int = 4,
    calls_per_kind: int | None = None,
    prompts: str = "paper",
    filter_counts: MutableMapping[str, int] | None = None,
    on_round: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """`n_sentences` distinct sentences mentioning the concept, half from "facts" prompts and
    half from "stories" prompts (facts get the odd one), in the CONTRACTS.md format.

    `prompts` names the prompt set (:data:`expertalign.prompts.PROMPT_SETS`: "paper" or
    "short"). Each round asks only for the styles still short, `calls_per_kind` prompts each
    (default: enough for the missing sentences at 10 per call, and at least half the backend's
    `parallel_calls`). Deterministic for a given backend, concept and seed.

    `filter_counts` (a dict, filled also when generation fails) receives, over all rounds, the
    "candidates" (non-empty items of the answers), how many items each filter removed (the
    names of :data:`FILTERS` and :data:`ROUND_FILTERS`), and "kept" (sentences returned).
    `on_round(round, kept)` is called after each round (numbered from 1) with the sentences
    kept so far. Progress lines: see the module doc.
    Raises NotEnoughSentencesError after `max_rounds` rounds without enough sentences.
    """
    concept = row_field(concept_row, "concept")
    word = row_field(concept_row, "word") or concept
    pos = row_field(concept_row, "pos", "noun")
    definition = row_field(concept_row, "definition")
    if not concept:
        raise ValueError("concept_row has no 'concept'")
    if n_sentences < 1 or max_rounds < 1:
        raise ValueError(f"n_sentences and max_rounds must be >= 1 (concept '{concept}')")
    quotas = _quotas(n_sentences)
    counts: dict[str, int] = dict.fromkeys(("candidates", *FILTERS, *ROUND_FILTERS), 0)
    kept: dict[str, list[str]] = {k: [] for k in KINDS}
    seen: set[str] = set()
    backend_params = inspect.signature(backend.generate).parameters
    accepts_stop = "stop_when" in backend_params
    hints = {"words": [word]} if "words" in backend_params else {}
    parallel = max(1, int(getattr(backend, "parallel_calls", 1)))
    beat = Heartbeat()

    def heartbeat(round_no: int, have: int, found: int, state: str = "") -> None:
        log.info(
            "%s: round %d of at most %d%s, %d of %d sentences%s, elapsed %s",
            concept,
            round_no + 1,
            max_rounds,
            state,
            have + found,
            n_sentences,
            "" if state else " so far",
            format_duration(beat.elapsed),
        )

    for round_no in range(max_rounds):
        missing = {k: quotas[k] - len(kept[k]) for k in KINDS if len(kept[k]) < quotas[k]}
        if not missing:
            break
        texts: list[str] = []  # the round's prompts
        kinds: list[str] = []
        for kind, need in missing.items():
            n_calls = calls_per_kind or max(
                math.ceil(need / SENTENCES_PER_CALL), math.ceil(parallel / len(missing))
            )
            texts += build_prompts(word, pos, definition, kind, n_calls, prompt_set=prompts)
            kinds += [kind] * n_calls
        this_round = _Round(word, pos, kinds, missing, seen)
        have = sum(len(v) for v in kept.values())

        round_seed = mix_seed(seed, concept, "round", round_no)
        if accepts_stop:
            stop_when = this_round.enough_with_heartbeat(beat, partial(heartbeat, round_no, have))
            raw = backend.generate(texts, round_seed, stop_when=stop_when, **hints)  # type: ignore[call-arg]
        else:
            raw = backend.generate(texts, round_seed, **hints)
        if len(raw) != len(texts):
            raise SentenceGenerationError(
                f"backend {getattr(backend, 'name', backend)!r} returned {len(raw)} completions "
                f"for {len(texts)} prompts (concept '{concept}')"
            )
        for kind, items in this_round.new_items(raw, counts).items():
            kept[kind] += items
            seen.update(dedupe_key(s) for s in items)
        counts.pop("kept", None)  # extract_sentences' own count; "kept" is set below
        n_kept = sum(len(v) for v in kept.values())
        if filter_counts is not None:
            filter_counts.clear()
            filter_counts.update(counts, kept=n_kept)
        if on_round is not None:
            on_round(round_no + 1, n_kept)
        if beat.due():
            heartbeat(round_no, n_kept, 0, " done")

    if any(len(kept[k]) < quotas[k] for k in KINDS):
        got = ", ".join(f"{k} {len(kept[k])}/{quotas[k]}" for k in KINDS)
        raise NotEnoughSentencesError(
            f"concept '{concept}' (word '{word}', {pos}): found only "
            f"{sum(len(v) for v in kept.values())} of {n_sentences} usable sentences ({got}) "
            f"after {max_rounds} rounds with {getattr(backend, 'name', type(backend).__name__)}; "
            "raise max_rounds, use a stronger generator, or provide sentences"
        )
    texts = kept["facts"] + kept["stories"]
    prompt_kinds = ["facts"] * len(kept["facts"]) + ["stories"] * len(kept["stories"])
    return sentences_frame(
        concept, texts, prompt_kinds, str(getattr(backend, "name", type(backend).__name__))
    )


def format_filter_counts(counts: Mapping[str, int]) -> str:
    """One line from `generate_concept_sentences`' filter counts: "candidates 57, kept 14;
    removed: preamble 4, length 2, no_word 21, ..." (every filter named, zeros included)."""
    removed = ", ".join(f"{name} {counts.get(name, 0)}" for name in (*FILTERS, *ROUND_FILTERS))
    return (
        f"candidates {counts.get('candidates', 0)}, kept {counts.get('kept', 0)}; "
        f"removed: {removed}"
    )
