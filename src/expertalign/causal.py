"""Causal check of a concept's experts: ablate them (necessity) or force them (sufficiency).

    >>> from expertalign import causal
    >>> split = causal.split_positives(cat_sentences, seed=0, concept="cat")
    >>> ap = concept_expertise(lm, layout, split.selection, negatives)   # expertalign.extract
    >>> stats = causal.response_statistics(lm.model, lm.tokenizer, layout,
    ...                                    split.selection, negatives)
    >>> experts = causal.top_k_units(ap, k=100)                # or tau=0.5: the AP > tau set
    >>> base = causal.word_nll(lm.model, lm.tokenizer, split.test, "cat", "noun")
    >>> with causal.set_units(lm.model, layout, experts, stats.neg_mean[experts]):
    ...     ablated = causal.word_nll(lm.model, lm.tokenizer, split.test, "cat", "noun")
    >>> ablated.mean - base.mean                               # ΔNLL, nats per word token
    >>> draws = causal.matched_random_units(layout, experts, n_draws=20, seed=0)  # [20, 100]
    >>> forced = causal.forcing_effect(lm.model, lm.tokenizer, layout, experts,
    ...                                stats.pos_median[experts], prompts, range(10), "cat", "noun")
    >>> forced.share, forced.log_perplexity                   # names "cat"; unmodified model's ppl
    >>> causal.empirical_p(effect, null_effects)              # (1 + #null >= effect) / (1 + n)

Interventions are forward hooks on the modules :func:`expertalign.units.find_units` records, so a
unit is set at the very output its responses (and AP) are read from, at every token position;
they are removed when the ``with`` block ends, also when it raises. Definitions (split, values,
null, statistics) are in docs/ANALYSES.md, "Causal check of the experts".
"""

from __future__ import annotations

import contextlib
import inspect
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sps

from expertalign.inflections import word_forms
from expertalign.responses import max_pooled_responses, token_batches
from expertalign.seeds import mix_seed
from expertalign.sentence_filters import dedupe_key, word_pattern
from expertalign.stats import bootstrap_mean_ci
from expertalign.units import RecordedModule, UnitLayout

__all__ = [
    "ForcingEffect",
    "Generations",
    "HeldOutSplit",
    "PairedTest",
    "TokenNLL",
    "UnitStatistics",
    "concept_pattern",
    "continuation_perplexity",
    "count_by_module",
    "delta_text_nll",
    "delta_word_nll",
    "empirical_p",
    "forcing_effect",
    "generate_continuations",
    "matched_random_units",
    "names_concept",
    "naming_share",
    "neutral_sentences",
    "paired_test",
    "response_statistics",
    "set_units",
    "share_beating_null",
    "split_positives",
    "text_nll",
    "top_k_units",
    "word_nll",
]


# ----------------------------------------------------------------------------- interventions


def _unit_array(layout: UnitLayout, units: ArrayLike) -> NDArray[np.int64]:
    array = np.asarray(units)
    if array.size == 0:
        return np.zeros(0, dtype=np.int64)
    if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
        raise ValueError(f"units must be a 1-D array of integer unit ids, got {array.dtype}")
    array = array.astype(np.int64)
    bad = array[(array < 0) | (array >= layout.n_units)]
    if bad.size:
        raise ValueError(f"unit id {int(bad[0])} is outside [0, {layout.n_units})")
    if np.unique(array).size != array.size:
        raise ValueError("units contain the same unit id more than once")
    return array


def _module_of(layout: UnitLayout, units: NDArray[np.int64]) -> NDArray[np.intp]:
    """Index into ``layout.modules`` of each unit."""
    offsets = np.array([m.offset for m in layout.modules], dtype=np.int64)
    return np.searchsorted(offsets, units, side="right") - 1


def count_by_module(layout: UnitLayout, units: ArrayLike) -> dict[str, int]:
    """How many of ``units`` each recorded module holds (module name -> count, nonzero only)."""
    array = _unit_array(layout, units)
    counts = np.bincount(_module_of(layout, array), minlength=len(layout.modules))
    return {m.name: int(c) for m, c in zip(layout.modules, counts) if c}


def _setting_hook(recorded: RecordedModule, index: NDArray[np.int64], values: NDArray[np.float64]):
    cache: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def hook(_module: torch.nn.Module, _inputs: object, output: object) -> object:
        hidden = output[0] if isinstance(output, tuple) else output
        if not isinstance(hidden, torch.Tensor) or hidden.shape[-1] != recorded.width:
            shape = getattr(hidden, "shape", None)
            raise RuntimeError(
                f"{recorded.name}: expected an output with {recorded.width} features, got {shape}"
            )
        key = (hidden.device, hidden.dtype)
        if key not in cache:
            cache[key] = (
                torch.as_tensor(index, device=hidden.device),
                torch.as_tensor(values, dtype=hidden.dtype, device=hidden.device),
            )
        where, value = cache[key]
        changed = hidden.clone()
        changed[..., where] = value
        return (changed, *output[1:]) if isinstance(output, tuple) else changed

    return hook


@contextlib.contextmanager
def set_units(
    model: torch.nn.Module, layout: UnitLayout, units: ArrayLike, values: ArrayLike | float
) -> Iterator[None]:
    """Within the block, every forward pass sees ``units`` (global ids of ``layout``) at ``values``.

    ``values`` is one number or one per unit. Each unit's output feature is replaced at every token
    position of its recorded module (the module's own output, as the responses read it); modules
    downstream see the changed value. No unit (an empty array) leaves the model as it is. The
    hooks are removed on exit, also when the block raises; parameters are never touched.
    """
    array = _unit_array(layout, units)
    vals = np.asarray(values, dtype=np.float64)
    if vals.ndim == 0:
        vals = np.full(array.size, float(vals))
    if vals.shape != array.shape:
        raise ValueError(f"{vals.size} values for {array.size} units: give one value per unit")
    if not np.isfinite(vals).all():
        raise ValueError("values must be finite (no NaN or inf)")
    modules = dict(model.named_modules())
    where = _module_of(layout, array)
    handles = []
    try:
        for m in np.unique(where):
            recorded = layout.modules[int(m)]
            module = modules.get(recorded.name)
            if module is None:
                raise ValueError(
                    f"the model has no module {recorded.name!r}: "
                    "the layout belongs to another model"
                )
            chosen = where == m
            hook = _setting_hook(recorded, array[chosen] - recorded.offset, vals[chosen])
            handles.append(module.register_forward_hook(hook))
        yield
    finally:
        for handle in handles:
            handle.remove()


# ----------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class HeldOutSplit:
    """A concept's distinct positive sentences: experts are chosen on ``selection`` only and their
    effects measured on ``test``; no text (up to case and spacing) is in both."""

    selection: list[str]
    test: list[str]


def split_positives(
    sentences: Sequence[str], *, test_fraction: float = 0.5, seed: int = 0, concept: str = ""
) -> HeldOutSplit:
    """Seeded split of positives into selection and test sentences.

    Texts that are equal up to case and spacing (:func:`expertalign.sentence_filters.dedupe_key`)
    form one group, kept once (its first spelling) and on one side. Groups are sorted by key, so
    the split depends on the set of sentences, not their order, and permuted with a generator
    seeded by ``mix_seed(seed, "causal-split", concept)``; the first ``floor(test_fraction * n +
    1/2)`` groups (at least one, at most n - 1) are the test set. Both lists keep input order.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, not {test_fraction}")
    first: dict[str, str] = {}
    for text in sentences:
        first.setdefault(dedupe_key(text), text)
    if len(first) < 2:
        raise ValueError(
            f"concept {concept!r} has {len(first)} distinct positive sentence(s): "
            "a selection/test split needs at least 2"
        )
    keys = sorted(first)
    rng = np.random.default_rng(mix_seed(seed, "causal-split", concept))
    n_test = min(max(int(test_fraction * len(keys) + 0.5), 1), len(keys) - 1)
    test_keys = {keys[i] for i in rng.permutation(len(keys))[:n_test]}
    ordered = list(first.items())
    return HeldOutSplit(
        selection=[t for k, t in ordered if k not in test_keys],
        test=[t for k, t in ordered if k in test_keys],
    )


@dataclass(frozen=True)
class UnitStatistics:
    """Per unit (float32 [n_units]): mean max-pooled response over the negatives (the ablation
    value) and median over the positives (the forcing value)."""

    neg_mean: NDArray[np.float32]
    pos_median: NDArray[np.float32]


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def response_statistics(
    model: torch.nn.Module,
    tokenizer,
    layout: UnitLayout,
    positives: Sequence[str],
    negatives: Sequence[str],
    *,
    chunk_size: int = 256,
    **pooling,
) -> UnitStatistics:
    """Ablation and forcing values of every unit, from max-pooled responses over real tokens
    (:func:`expertalign.responses.max_pooled_responses`, which takes ``pooling`` keywords).

    ``shard_expertise(..., unit_stats=True)`` gives the same two statistics (``neg_mean``,
    ``pos_median``) for the positives and negatives it ranks. Negatives are run ``chunk_size`` at
    a time (only their sum is kept); the median is numpy's (mean of the two middle values).
    """
    if len(positives) == 0 or len(negatives) == 0:
        raise ValueError("response statistics need at least one positive and one negative")
    total = torch.zeros(layout.n_units, dtype=torch.float64)
    for chunk in _chunks(list(negatives), chunk_size):
        responses = max_pooled_responses(model, tokenizer, chunk, layout, **pooling)
        total += responses.double().sum(dim=1).cpu()
    responses = max_pooled_responses(model, tokenizer, list(positives), layout, **pooling)
    median = np.median(responses.float().cpu().numpy(), axis=1)
    return UnitStatistics(
        neg_mean=(total / len(negatives)).numpy().astype(np.float32),
        pos_median=median.astype(np.float32),
    )


def top_k_units(
    ap: ArrayLike, k: int | None = None, *, tau: float | None = None
) -> NDArray[np.int64]:
    """Unit ids by decreasing AP: the ``k`` best, or (``tau``) every unit with AP > tau.

    Ties keep the lower unit id first (a stable sort), so the choice is reproducible.
    """
    values = np.asarray(ap, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"ap must be one AP per unit (1-D), has shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("ap contains NaN or inf")
    if (k is None) == (tau is None):
        raise ValueError("give exactly one of k (top-k) and tau (the AP > tau set)")
    order = np.argsort(-values, kind="stable").astype(np.int64)
    if k is not None:
        if not 1 <= k <= values.size:
            raise ValueError(f"k must lie in [1, {values.size}], not {k}")
        return order[:k]
    return order[: int(np.count_nonzero(values > tau))]


def matched_random_units(
    layout: UnitLayout, units: ArrayLike, *, n_draws: int = 20, seed: int = 0
) -> NDArray[np.int64]:
    """``n_draws`` random unit sets [n_draws, len(units)], each with as many units in every
    recorded module (one layer's module kind) as ``units`` has, drawn without replacement from
    that module's other units (never one of ``units``). Rows are sorted; the draws are seeded by
    ``seed`` alone (``numpy.random.default_rng``), so the same set and seed give the same draws.
    """
    if n_draws < 1:
        raise ValueError(f"n_draws must be at least 1, not {n_draws}")
    chosen = _unit_array(layout, units)
    where = _module_of(layout, chosen)
    strata = []
    for m in np.unique(where):
        recorded = layout.modules[int(m)]
        candidates = np.setdiff1d(
            np.arange(recorded.offset, recorded.offset + recorded.width), chosen[where == m]
        )
        count = int(np.count_nonzero(where == m))
        if candidates.size < count:
            raise ValueError(
                f"{recorded.name} holds {count} of the units but has only {candidates.size} "
                "others: a matched random set cannot avoid the chosen units"
            )
        strata.append((candidates, count))
    rng = np.random.default_rng(seed)
    draws = np.zeros((n_draws, chosen.size), dtype=np.int64)
    for d in range(n_draws):
        parts = [rng.choice(candidates, size=count, replace=False) for candidates, count in strata]
        if parts:
            draws[d] = np.sort(np.concatenate(parts))
    return draws


# ----------------------------------------------------------------------------- word-token loss


def concept_pattern(word: str, pos: str) -> re.Pattern[str]:
    """Case-insensitive, word-bounded regex for the concept's word and its inflections: the forms
    of :func:`expertalign.inflections.word_forms` and those the sentence filter accepts
    (:func:`expertalign.sentence_filters.word_pattern`, e.g. the singular of "eyes")."""
    forms = sorted(set(word_forms(word, pos)) | {word.strip().lower()}, key=lambda f: (-len(f), f))
    sep = r"[\s\-]+"
    alternatives = "|".join(sep.join(map(re.escape, f.replace("_", " ").split())) for f in forms)
    return re.compile(rf"\b(?:{alternatives})\b|{word_pattern(word, pos).pattern}", re.IGNORECASE)


def names_concept(text: str, word: str, pos: str) -> bool:
    """Whether ``text`` contains the concept's word or an inflection (:func:`concept_pattern`)."""
    return concept_pattern(word, pos).search(text) is not None


def neutral_sentences(
    candidates: Sequence[str],
    word: str,
    pos: str,
    *,
    n: int = 200,
    seed: int = 0,
    concept: str = "",
    exclude: Iterable[str] = (),
) -> list[str]:
    """Up to ``n`` distinct candidates (e.g. negative-bank sentences) that do not name the concept
    and are not in ``exclude`` (its own sentences; compared by ``dedupe_key``), sampled without
    replacement by ``default_rng(mix_seed(seed, "causal-neutral", concept))``; candidate order."""
    pattern = concept_pattern(word, pos)
    excluded = {dedupe_key(t) for t in exclude}
    kept: dict[str, str] = {}
    for text in candidates:
        key = dedupe_key(text)
        if key not in excluded and pattern.search(text) is None:
            kept.setdefault(key, text)
    texts = list(kept.values())
    if not texts:
        raise ValueError(f"no candidate sentence is neutral for concept {concept or word!r}")
    rng = np.random.default_rng(mix_seed(seed, "causal-neutral", concept))
    chosen = np.sort(rng.permutation(len(texts))[: min(n, len(texts))])
    return [texts[i] for i in chosen]


def _context_token(tokenizer) -> int | None:
    """The token put before a text whose tokenization starts with no special token, so that its
    first real token is predicted too: BOS, else EOS (GPT-2's and Pythia's ``<|endoftext|>``)."""
    for token in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token is not None:
            return int(token)
    return None


def _prefixed(tokenizer, ids: list[int], special: list[int]) -> tuple[list[int], list[int]]:
    start = _context_token(tokenizer)
    if start is not None and not (special and special[0]):
        return [start, *ids], [1, *special]
    return ids, special


def _encode(tokenizer, texts: Sequence[str], max_length: int):
    """Per text: token ids, character offsets and special-token flags, a context token first."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            "the word-token loss needs a fast (Rust) tokenizer: it locates words by character "
            f"offsets, which {type(tokenizer).__name__} does not give"
        )
    encoded = tokenizer(
        list(texts),
        add_special_tokens=True,
        truncation=True,
        max_length=max_length,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    result = []
    for ids, offsets, special in zip(
        encoded["input_ids"], encoded["offset_mapping"], encoded["special_tokens_mask"]
    ):
        offsets = [tuple(o) for o in offsets]
        prefixed, flags = _prefixed(tokenizer, list(ids), list(special))
        if len(prefixed) > len(offsets):
            offsets = [(0, 0), *offsets]
        result.append((prefixed, offsets, flags))
    return result


def _keeps_selected_logits(model: torch.nn.Module) -> bool:
    """Whether ``model.forward`` takes ``logits_to_keep`` (transformers' causal LMs do), so that
    the vocabulary projection runs only at the positions scored."""
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def _sequence_nll(
    model: torch.nn.Module,
    sequences: Sequence[Sequence[int]],
    max_tokens: int,
    scored: Sequence[Sequence[int]] | None = None,
) -> list[NDArray[np.float64]]:
    """Per sequence, the NLL (nats) of each token given the ones before it; NaN for the first
    token and for any token not in ``scored`` (per sequence, positions >= 1; default all).

    A causal model's prediction of a token depends only on the tokens before it, so each
    sequence runs only up to its last scored token, and the vocabulary projection and softmax
    (for a 49k vocabulary, most of the cost of a short sentence) run only at the scored
    positions where the model allows it (``logits_to_keep``)."""
    device = next(model.parameters()).device
    result: list[NDArray[np.float64]] = [np.full(len(s), np.nan) for s in sequences]
    if scored is None:
        scored = [range(1, len(s)) for s in sequences]
    wanted_at = [sorted({int(t) for t in positions}) for positions in scored]
    for i, positions in enumerate(wanted_at):
        if positions and not 1 <= positions[0] <= positions[-1] < len(sequences[i]):
            raise ValueError(f"scored positions {positions} outside sequence {i} (1 to end)")
    lengths = [positions[-1] + 1 if positions else 0 for positions in wanted_at]
    selective = _keeps_selected_logits(model)
    with torch.inference_mode():
        for batch in token_batches([max(n, 1) for n in lengths], max_tokens):
            batch = [i for i in batch if lengths[i] > 1]
            if not batch:
                continue
            longest = max(lengths[i] for i in batch)
            ids = torch.zeros((len(batch), longest), dtype=torch.long)
            mask = torch.zeros((len(batch), longest), dtype=torch.long)
            # keep[row, t - 1]: the logits at position t - 1 predict token t
            keep = torch.zeros((len(batch), longest), dtype=torch.bool)
            for row, i in enumerate(batch):
                ids[row, : lengths[i]] = torch.tensor(list(sequences[i][: lengths[i]]))
                mask[row, : lengths[i]] = 1
                keep[row, [t - 1 for t in wanted_at[i]]] = True
            targets = ids[:, 1:][keep[:, :-1]]
            ids, mask = ids.to(device), mask.to(device)
            logits = None
            if selective:
                logits = model(
                    input_ids=ids,
                    attention_mask=mask,
                    use_cache=False,
                    logits_to_keep=keep.to(device),
                ).logits
                if logits.shape[:-1] != targets.shape:  # an older transformers: positions only
                    selective, logits = False, None
            if logits is None:
                logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[keep]
            logp = torch.log_softmax(logits.float(), dim=-1)
            nll = -logp.gather(-1, targets.to(device)[:, None]).squeeze(-1).double().cpu().numpy()
            rows, columns = keep.nonzero(as_tuple=True)  # row-major, as boolean indexing orders
            for value, row, column in zip(nll, rows.tolist(), columns.tolist()):
                result[batch[row]][column + 1] = value
    return result


@dataclass(frozen=True)
class TokenNLL:
    """Summed NLL (nats) of the scored tokens of each sentence, and how many were scored."""

    nll_sum: NDArray[np.float64]
    n_tokens: NDArray[np.int64]

    @property
    def mean(self) -> float:
        """NLL per scored token over all sentences (NaN when no token was scored)."""
        n = int(self.n_tokens.sum())
        return float(self.nll_sum.sum() / n) if n else math.nan

    @property
    def n_unscored(self) -> int:
        """Sentences with no scored token (e.g. the word is not found)."""
        return int(np.count_nonzero(self.n_tokens == 0))


def _token_nll(model, tokenizer, sentences, select, max_length: int, max_tokens: int) -> TokenNLL:
    if len(sentences) == 0:
        raise ValueError("no sentences to score")
    encoded = _encode(tokenizer, sentences, max_length)
    scored = [
        [t for t in range(1, len(ids)) if not special[t] and select(i, offsets[t])]
        for i, (ids, offsets, special) in enumerate(encoded)
    ]
    nlls = _sequence_nll(model, [ids for ids, _, _ in encoded], max_tokens, scored)
    sums = np.array([float(nll[keep].sum()) for nll, keep in zip(nlls, scored)])
    return TokenNLL(sums, np.array([len(keep) for keep in scored], dtype=np.int64))


def word_nll(
    model: torch.nn.Module,
    tokenizer,
    sentences: Sequence[str],
    word: str,
    pos: str,
    *,
    max_length: int = 128,
    max_tokens: int = 2048,
) -> TokenNLL:
    """NLL of the tokens that spell the concept's word or an inflection (:func:`concept_pattern`):
    every token whose characters overlap a match, each given all tokens before it."""
    pattern = concept_pattern(word, pos)
    spans = [[m.span() for m in pattern.finditer(text)] for text in sentences]

    def select(i: int, offset: tuple[int, int]) -> bool:
        a, b = offset
        return b > a and any(a < end and b > start for start, end in spans[i])

    return _token_nll(model, tokenizer, sentences, select, max_length, max_tokens)


def text_nll(
    model: torch.nn.Module,
    tokenizer,
    sentences: Sequence[str],
    *,
    max_length: int = 128,
    max_tokens: int = 2048,
) -> TokenNLL:
    """NLL of every real token of ``sentences`` (neutral text: collateral damage)."""
    return _token_nll(model, tokenizer, sentences, lambda i, o: True, max_length, max_tokens)


def delta_word_nll(
    model: torch.nn.Module,
    tokenizer,
    layout: UnitLayout,
    units: ArrayLike,
    values: ArrayLike | float,
    sentences: Sequence[str],
    word: str,
    pos: str,
    *,
    baseline: TokenNLL | None = None,
    **scoring,
) -> float:
    """ΔNLL of the concept's word tokens: with ``units`` set to ``values`` minus without.
    Pass the unmodified model's :func:`word_nll` as ``baseline`` to score it once per concept."""
    if baseline is None:
        baseline = word_nll(model, tokenizer, sentences, word, pos, **scoring)
    with set_units(model, layout, units, values):
        changed = word_nll(model, tokenizer, sentences, word, pos, **scoring)
    return changed.mean - baseline.mean


def delta_text_nll(
    model: torch.nn.Module,
    tokenizer,
    layout: UnitLayout,
    units: ArrayLike,
    values: ArrayLike | float,
    sentences: Sequence[str],
    *,
    baseline: TokenNLL | None = None,
    **scoring,
) -> float:
    """ΔNLL per token of neutral text (:func:`text_nll`), with ``units`` set minus without."""
    if baseline is None:
        baseline = text_nll(model, tokenizer, sentences, **scoring)
    with set_units(model, layout, units, values):
        changed = text_nll(model, tokenizer, sentences, **scoring)
    return changed.mean - baseline.mean


# ----------------------------------------------------------------------------- generation


@dataclass(frozen=True)
class Generations:
    """Continuations of each prompt, one per seed: ``texts[p][s]`` (decoded without special
    tokens, cut before the first EOS) and their token ids, with each prompt's ids."""

    prompts: list[str]
    seeds: list[int]
    prompt_ids: list[list[int]]
    continuation_ids: list[list[list[int]]]
    texts: list[list[str]]


def _sample(
    logits: torch.Tensor,
    generators: Sequence[torch.Generator],
    temperature: float,
    top_k: int,
    top_p: float,
) -> torch.Tensor:
    """One token per row of ``logits`` [rows, vocab] (CPU float32), each row from its generator."""
    if temperature == 0.0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0.0 < top_p < 1.0:
        ordered, order = torch.sort(logits, dim=-1, descending=True)
        before = torch.softmax(ordered, dim=-1).cumsum(dim=-1) - torch.softmax(ordered, dim=-1)
        drop = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, before > top_p)
        logits = logits.masked_fill(drop, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.cat(
        [torch.multinomial(probs[r], 1, generator=g) for r, g in enumerate(generators)]
    )


def _cache_of(output) -> object:
    for name in ("cache", "past_key_values"):
        if name in output:
            return output[name]
    raise RuntimeError("the model returned no KV cache although use_cache=True")


def generate_continuations(
    model: torch.nn.Module,
    tokenizer,
    prompts: Sequence[str],
    seeds: Iterable[int],
    *,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 0.9,
) -> Generations:
    """Sample ``max_new_tokens`` after each prompt once per seed (run it inside
    :func:`set_units` to force units). Generation (prompt p, seed s) draws from its own CPU
    generator seeded by ``mix_seed(s, "causal-generate", p)``, so it does not depend on the other
    prompts, seeds or batching; ``temperature=0`` is greedy. Rows of one prompt run as one batch
    with a KV cache; the prompt gets the context token of :func:`word_nll` first."""
    seeds = [int(s) for s in seeds]
    if not prompts or not seeds:
        raise ValueError("give at least one prompt and one seed")
    if max_new_tokens < 1 or temperature < 0.0:
        raise ValueError("max_new_tokens must be >= 1 and temperature >= 0")
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    # transformers 5 renamed the KV cache argument and output field to ``cache``
    forward = inspect.signature(model.forward).parameters
    keyword = "cache" if "cache" in forward else "past_key_values"
    encoded = tokenizer(list(prompts), add_special_tokens=True, return_special_tokens_mask=True)
    prompt_ids = [
        _prefixed(tokenizer, list(ids), list(special))[0]
        for ids, special in zip(encoded["input_ids"], encoded["special_tokens_mask"])
    ]
    limit = getattr(model.config, "max_position_embeddings", None)
    longest = max(len(ids) for ids in prompt_ids) + max_new_tokens
    if limit is not None and longest > limit:
        raise ValueError(
            f"a prompt of {longest - max_new_tokens} tokens plus {max_new_tokens} new ones "
            f"exceeds the model's {limit} positions"
        )
    continuations, texts = [], []
    with torch.inference_mode():
        for prompt, ids in zip(prompts, prompt_ids):
            generators = [
                torch.Generator().manual_seed(mix_seed(s, "causal-generate", prompt)) for s in seeds
            ]
            inputs = torch.tensor([ids] * len(seeds), device=device)
            cache: dict[str, object] = {}
            new = []
            for _ in range(max_new_tokens):
                out = model(input_ids=inputs, use_cache=True, **cache)
                cache = {keyword: _cache_of(out)}
                token = _sample(
                    out.logits[:, -1].float().cpu(), generators, temperature, top_k, top_p
                )
                new.append(token)
                inputs = token[:, None].to(device)
            rows = torch.stack(new, dim=1).tolist()
            rows = [r[: r.index(eos)] if eos is not None and eos in r else r for r in rows]
            continuations.append(rows)
            texts.append([tokenizer.decode(r, skip_special_tokens=True) for r in rows])
    return Generations(list(prompts), seeds, prompt_ids, continuations, texts)


def naming_share(generations: Generations, word: str, pos: str) -> float:
    """Share of the continuations (not the prompts) naming the concept (:func:`names_concept`)."""
    pattern = concept_pattern(word, pos)
    hits = [pattern.search(t) is not None for row in generations.texts for t in row]
    return float(np.mean(hits))


def continuation_perplexity(
    model: torch.nn.Module, generations: Generations, *, max_tokens: int = 2048
) -> NDArray[np.float64]:
    """Perplexity [prompts, seeds] of each continuation given its prompt under ``model`` (call it
    outside :func:`set_units`: the unmodified model); NaN for an empty continuation."""
    sequences, shape = [], (len(generations.prompts), len(generations.seeds))
    for ids, rows in zip(generations.prompt_ids, generations.continuation_ids):
        sequences.extend([ids + row for row in rows])
    lengths = [len(row) for rows in generations.continuation_ids for row in rows]
    scored = [range(len(s) - n, len(s)) for s, n in zip(sequences, lengths)]
    nlls = _sequence_nll(model, sequences, max_tokens, scored)
    ppl = [math.exp(float(nll[-n:].mean())) if n else math.nan for nll, n in zip(nlls, lengths)]
    return np.array(ppl).reshape(shape)


@dataclass(frozen=True)
class ForcingEffect:
    """Share of generations naming the concept, their mean log perplexity under the unmodified
    model (the log of the geometric mean perplexity), and the generations themselves."""

    share: float
    log_perplexity: float
    generations: Generations


def forcing_effect(
    model: torch.nn.Module,
    tokenizer,
    layout: UnitLayout,
    units: ArrayLike,
    values: ArrayLike | float,
    prompts: Sequence[str],
    seeds: Iterable[int],
    word: str,
    pos: str,
    **generation,
) -> ForcingEffect:
    """Generate with ``units`` forced to ``values`` (no units: the unmodified model), then score
    the continuations without the intervention."""
    with set_units(model, layout, units, values):
        generations = generate_continuations(model, tokenizer, prompts, seeds, **generation)
    ppl = continuation_perplexity(model, generations)
    finite = np.log(ppl[np.isfinite(ppl)])
    return ForcingEffect(
        share=naming_share(generations, word, pos),
        log_perplexity=float(finite.mean()) if finite.size else math.nan,
        generations=generations,
    )


# ----------------------------------------------------------------------------- statistics


def _null(null: ArrayLike) -> NDArray[np.float64]:
    values = np.asarray(null, dtype=np.float64).ravel()
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError("the null needs at least one draw, all finite")
    return values


def empirical_p(effect: float, null: ArrayLike) -> float:
    """One-sided empirical p of ``effect`` against random-set draws: (1 + #null >= effect) /
    (1 + n), never 0 (the observed set counts as one draw of the null)."""
    if not math.isfinite(effect):
        raise ValueError(f"effect must be finite, not {effect}")
    values = _null(null)
    return float((1 + np.count_nonzero(values >= effect)) / (1 + values.size))


def share_beating_null(effects: ArrayLike, nulls: ArrayLike, q: float = 0.95) -> float:
    """Share of concepts whose effect exceeds the ``q`` quantile of their own null.

    ``effects`` [concepts], ``nulls`` [concepts, draws]; the quantile is numpy's (linear).
    """
    effects = np.asarray(effects, dtype=np.float64)
    nulls = np.asarray(nulls, dtype=np.float64)
    if nulls.ndim != 2 or nulls.shape[0] != effects.size or effects.size == 0:
        raise ValueError(f"nulls must be [concepts, draws] for {effects.size} concepts")
    return float(np.mean(effects > np.quantile(nulls, q, axis=1)))


@dataclass(frozen=True)
class PairedTest:
    """Across concepts: mean of (experts - reference) with a percentile-bootstrap CI, and the
    two-sided Wilcoxon signed-rank test of the differences."""

    mean_difference: float
    ci_low: float
    ci_high: float
    wilcoxon_statistic: float
    p_value: float
    n: int


def paired_test(
    experts: ArrayLike, reference: ArrayLike, *, n_boot: int = 2000, seed: int = 0
) -> PairedTest:
    """Experts' effect per concept against a reference per concept (e.g. the median of its random
    null, or of the other concepts' experts): Wilcoxon signed-rank and a bootstrap CI of the mean
    difference (:func:`expertalign.stats.bootstrap_mean_ci`)."""
    a, b = np.asarray(experts, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"experts and reference must be 1-D of equal length: {a.shape}, {b.shape}")
    d = a - b
    d = d[np.isfinite(d)]
    if d.size == 0:
        raise ValueError("no concept with a finite effect difference")
    mean, low, high = bootstrap_mean_ci(d, n_boot=n_boot, seed=seed)
    if np.all(d == 0):
        statistic, p = 0.0, 1.0
    else:
        result = sps.wilcoxon(d, alternative="two-sided")
        statistic, p = float(result.statistic), float(result.pvalue)
    return PairedTest(mean, low, high, statistic, p, int(d.size))
