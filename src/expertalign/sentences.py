"""Generate the positive sentences of one concept with an instruction LLM.

Two prompt styles, as in the paper: "facts" and "short stories", each asking for 10 sentences
about the concept (word, POS and WordNet definition in the prompt; the paper's own wording by
default, see :mod:`expertalign.prompts`). Completions are split into items, cleaned, and kept
only when they pass the filters of :mod:`expertalign.sentence_filters` (they mention the word or
an inflection of it, ...); half the sentences come from each style.

Use::

    from expertalign.sentences import (TransformersBackend, OpenAIChatBackend,
                                       generate_concept_sentences, write_sentences_atomic)

    backend = TransformersBackend(model, tokenizer)          # any HF causal LM with a chat template
    # or: OpenAIChatBackend("http://localhost:8000/v1", "my-model")   # key in $OPENAI_API_KEY
    row = {"concept": "cat", "word": "cat", "pos": "noun",
           "definition": "feline mammal usually having thick soft fur"}
    counts = {}                                 # filled: candidates, what each filter removed
    df = generate_concept_sentences(row, backend, n_sentences=20, seed=0, max_rounds=4,
                                    prompts="paper", filter_counts=counts)
    print(format_filter_counts(counts))         # "candidates 60, kept 20; removed: ..."
    write_sentences_atomic(df, "results/sentences/cat.parquet")

    # Sentences a user wrote instead (txt: one per line; tsv/csv/parquet: a `text` column):
    df = provided_concept_sentences(row, "my_cat_sentences.txt")
    provided_files("sentences/{concept}.txt", ["cat", "dog"])   # {"cat": "sentences/cat.txt"}

The output columns are those of docs/CONTRACTS.md: sentence_id ("cat:0000"), concept, text,
prompt (facts | stories | provided), source (generator name).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from expertalign.prompts import KINDS, SENTENCES_PER_CALL, build_prompts
from expertalign.sentence_filters import FILTERS, dedupe_key, extract_sentences, word_pattern
from expertalign.textfile import read_utf8

__all__ = [
    "SENTENCES_PER_CALL",
    "KINDS",
    "SentenceGenerationError",
    "Backend",
    "TransformersBackend",
    "OpenAIChatBackend",
    "build_prompts",
    "word_pattern",
    "extract_sentences",
    "FILTERS",
    "ROUND_FILTERS",
    "format_filter_counts",
    "generate_concept_sentences",
    "read_provided_sentences",
    "provided_concept_sentences",
    "provided_files",
    "sentences_frame",
    "write_sentences_atomic",
]

SENTENCE_COLUMNS: tuple[str, ...] = ("sentence_id", "concept", "text", "prompt", "source")
# Counted by generate_concept_sentences besides the filters of sentence_filters.FILTERS: items
# already kept (an earlier round or the other style), and items past a style's quota.
ROUND_FILTERS: tuple[str, ...] = ("repeat", "surplus")

# Called with the completions so far; True = all done, or one done-flag per prompt.
StopWhen = Callable[[list[str]], "bool | Sequence[bool]"]


class SentenceGenerationError(RuntimeError):
    """Not enough usable sentences for a concept (or a backend that cannot answer)."""


# --- backends -----------------------------------------------------------------------------

class Backend(Protocol):
    """Anything that turns user prompts into raw completions, one per prompt.

    `generate` may accept a keyword `stop_when(completions_so_far) -> bool`; backends that
    can stop early (TransformersBackend) call it with the completed lines so far and stop
    once it returns True. `parallel_calls` says how many prompts one round should hold.
    """

    name: str
    parallel_calls: int

    def generate(self, prompts: Sequence[str], seed: int) -> list[str]: ...


class TransformersBackend:
    """Sampling from a local Hugging Face causal LM through its chat template.

    Prompts are decoded `batch_size` at a time by a small sampling loop (temperature, then
    top-k, then top-p, as in `generate`) that is cheaper per step than `generate()` on CPU:
    identical prompts share one prefill (the KV cache is copied), and sequences leave the batch
    as soon as they end, reach `max_new_tokens`, or `stop_when` marks them done (checked every
    `check_every` steps). A line cut off by a stop is dropped. Small models often ramble past
    the list they were asked for or loop inside one endless line, so a sequence also stops once
    it has written `max_lines` non-empty lines, or when its current line runs past `max_line_tokens`
    (0 disables either limit).
    """

    def __init__(self, model: Any, tokenizer: Any, max_new_tokens: int = 64,
                 batch_size: int = 16, temperature: float = 0.6, top_p: float = 0.95,
                 top_k: int = 50, name: str | None = None, check_every: int = 2,
                 max_lines: int = 0, max_line_tokens: int = 0, word_bias: float = 0.0) -> None:
        if max_new_tokens < 1 or batch_size < 1 or check_every < 1:
            raise ValueError("max_new_tokens, batch_size and check_every must be >= 1")
        if max_lines < 0 or max_line_tokens < 0:
            raise ValueError("max_lines and max_line_tokens must be >= 0")
        if temperature <= 0 or not 0 < top_p <= 1 or top_k < 0:
            raise ValueError("need temperature > 0, 0 < top_p <= 1 and top_k >= 0")
        self.name = name or str(getattr(model, "name_or_path", "") or type(model).__name__)
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.parallel_calls = batch_size
        self.temperature = temperature
        self.top_p = top_p
        self.top_k = top_k
        self.check_every = check_every
        self.max_lines = max_lines
        self.max_line_tokens = max_line_tokens
        self.word_bias = float(word_bias)
        self.eos_ids = _eos_ids(model, tokenizer)
        # Token ids whose text contains a line break, to count lines without decoding.
        vocab = tokenizer.get_vocab()
        self._newline_ids = frozenset(
            i for t, i in vocab.items()
            if "\n" in tokenizer.convert_tokens_to_string([t]))
        params = inspect.signature(model.forward).parameters
        # transformers 5 renamed past_key_values to cache; older releases only know the former.
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._keep_kw = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params),
                             None)
        self.steps = 0  # decode steps run so far (for benchmarks)

    def _render(self, prompt: str) -> str:
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)

    def generate(self, prompts: Sequence[str], seed: int,
                 stop_when: StopWhen | None = None, words: Sequence[str] = ()) -> list[str]:
        """One completion per prompt. `stop_when(completions)` sees the complete lines so far
        (aligned with `prompts`) and returns True (all done) or one flag per prompt. With
        `word_bias` > 0, the first token of each of `words` (as spelled, capitalised, and after
        a space) gets that much added to its logit at every step, so that a small model that
        drifts off the concept names it more often; 0 samples the model as it is."""
        import torch

        self._bias_ids = self._word_token_ids(words) if self.word_bias else []
        out: list[str] = [""] * len(prompts)
        done = [False] * len(prompts)
        with torch.inference_mode():
            for b, start in enumerate(range(0, len(prompts), self.batch_size)):
                rows = list(range(start, min(start + self.batch_size, len(prompts))))
                rows = [r for r in rows if not done[r]]
                if not rows:
                    continue
                gen = torch.Generator(device="cpu").manual_seed(_mix(seed, "batch", b) % 2**63)
                self._run_batch(prompts, rows, gen, out, done, stop_when)
                if all(done):
                    break
        return out

    def _run_batch(self, prompts: Sequence[str], rows: list[int], gen: Any, out: list[str],
                   done: list[bool], stop_when: StopWhen | None) -> None:
        import torch
        from transformers import DynamicCache

        tok, model = self.tokenizer, self.model
        device = next(model.parameters()).device
        rendered = [self._render(prompts[r]) for r in rows]
        unique = list(dict.fromkeys(rendered))
        old_side = tok.padding_side
        tok.padding_side = "left"
        try:
            enc = tok(unique, return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            tok.padding_side = old_side
        ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
        position = (mask.long().cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        extra = {self._keep_kw: 1} if self._keep_kw else {}
        # Each distinct prompt is prefilled once; its cache is then copied for every sequence.
        logits = model(input_ids=ids, attention_mask=mask, position_ids=position, use_cache=True,
                       **{self._cache_kw: cache}, **extra).logits[:, -1, :]
        which = torch.tensor([unique.index(r) for r in rendered], device=device)
        cache.batch_select_indices(which)
        logits, mask = logits[which], mask[which]
        next_pos = position[which, -1] + 1
        active = list(rows)  # prompt index of each batch row
        tokens: dict[int, list[int]] = {r: [] for r in rows}
        ended: set[int] = set()
        eos = set(self.eos_ids)
        newline = self._newline_ids
        lines = {r: 0 for r in rows}  # non-empty lines written so far
        line_tokens = {r: 0 for r in rows}  # tokens of the current line

        def texts() -> list[str]:
            current = list(out)
            for r in rows:
                current[r] = self._text(tokens[r], ended_ok=r in ended)
            return current

        for step in range(1, self.max_new_tokens + 1):
            nxt = self._sample(logits, gen).tolist()
            self.steps += 1
            keep: list[int] = []
            for i, (r, t) in enumerate(zip(active, nxt)):
                if t in eos:
                    ended.add(r)
                    continue
                tokens[r].append(t)
                if t in newline:
                    lines[r] += line_tokens[r] > 0  # blank lines do not count
                    line_tokens[r] = 0
                else:
                    line_tokens[r] += 1
                if self.max_lines and lines[r] >= self.max_lines:
                    done[r] = True  # its list is written; what follows is chatter
                elif self.max_line_tokens and line_tokens[r] > self.max_line_tokens:
                    done[r] = True  # a runaway line; it would be dropped anyway
                else:
                    keep.append(i)
            if stop_when is not None and (step % self.check_every == 0 or len(keep) < len(active)):
                verdict = stop_when(texts())
                flags = [bool(verdict)] * len(out) if isinstance(verdict, bool) else list(verdict)
                # True means every prompt is done, including those of later batches.
                for r in range(len(out)) if verdict is True else rows:
                    done[r] = done[r] or flags[r]
                keep = [i for i in keep if not done[active[i]]]
            if not keep or step == self.max_new_tokens:
                break
            if len(keep) < len(active):
                idx = torch.tensor(keep, device=device)
                cache.batch_select_indices(idx)
                mask, next_pos = mask[idx], next_pos[idx]
                active = [active[i] for i in keep]
                nxt = [nxt[i] for i in keep]
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
            logits = model(input_ids=torch.tensor(nxt, device=device).unsqueeze(1),
                           attention_mask=mask, position_ids=next_pos.unsqueeze(1), use_cache=True,
                           **{self._cache_kw: cache}).logits[:, -1, :]
            next_pos = next_pos + 1
        final = texts()
        for r in rows:
            out[r] = final[r]

    def _word_token_ids(self, words: Sequence[str]) -> list[int]:
        ids: set[int] = set()
        for word in words:
            for variant in {word, word.capitalize()}:
                for text in (variant, " " + variant):
                    encoded = self.tokenizer.encode(text, add_special_tokens=False)
                    if encoded:
                        ids.add(int(encoded[0]))
        return sorted(ids)

    def _sample(self, logits: Any, gen: Any) -> Any:
        import torch

        logits = logits.float()
        if getattr(self, "_bias_ids", None):
            logits[:, self._bias_ids] += self.word_bias
        logits = logits / self.temperature
        if self.top_k:
            logits, index = torch.topk(logits, min(self.top_k, logits.shape[-1]), dim=-1)
        else:
            logits, index = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(logits, dim=-1)
        if self.top_p < 1.0:
            # Keep the smallest prefix (sorted by probability) whose mass reaches top_p.
            before = torch.cumsum(probs, dim=-1) - probs
            probs = probs.masked_fill(before >= self.top_p, 0.0)
        choice = torch.multinomial(probs.cpu(), 1, generator=gen).to(index.device)
        return index.gather(-1, choice).squeeze(-1)

    def _text(self, token_ids: list[int], ended_ok: bool) -> str:
        text = self.tokenizer.decode(token_ids, skip_special_tokens=True)
        if not ended_ok:
            # The last line of an unfinished sequence may be half a sentence.
            text = text[: text.rfind("\n") + 1] if "\n" in text else ""
        return text


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    # Chat models end a turn with their end-of-turn token, which is not always the EOS.
    for special in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
        tid = tokenizer.convert_tokens_to_ids(special) if special in tokenizer.get_vocab() else None
        if isinstance(tid, int):
            ids.add(tid)
    return sorted(ids)


class OpenAIChatBackend:
    """Any OpenAI-compatible `/v1/chat/completions` endpoint (OpenAI, vLLM, llama.cpp server,
    Ollama, ...), one request per prompt, through urllib.

    `base_url` may be "http://host:port", ".../v1" or the full ".../v1/chat/completions".
    The API key is read from the environment variable `api_key_env` (local servers that ignore
    keys still need it set, to any value, so that a missing key is never silent). It is read
    again for every request and never kept on the object (nor in its repr, a pickle or a log),
    it is only sent over https or to this machine unless `allow_insecure_http`, and redirects
    are refused, so that it never follows one to another host.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY",
                 temperature: float = 1.0, top_p: float = 0.95, max_tokens: int = 600,
                 timeout_s: float = 120.0, retries: int = 3, parallel_calls: int = 1,
                 allow_insecure_http: bool = False) -> None:
        from expertalign.config import check_openai_url

        if not 0 < temperature <= 2 or not 0 < top_p <= 1 or max_tokens < 1:
            raise ValueError("need 0 < temperature <= 2, 0 < top_p <= 1 and max_tokens >= 1, "
                             f"got {temperature}, {top_p}, {max_tokens}")
        check_openai_url(base_url, allow_insecure_http)
        key = os.environ.get(api_key_env, "")
        if not key:
            raise SentenceGenerationError(
                f"OpenAIChatBackend needs an API key in the environment variable {api_key_env}, "
                f"which is not set; export {api_key_env}=... (any value for a local server "
                "that ignores keys)")
        url = base_url.rstrip("/")
        if not url.endswith("/chat/completions"):
            url = (url if url.endswith("/v1") else url + "/v1") + "/chat/completions"
        self.url = url
        self.model = model
        self.name = model
        self.api_key_env = api_key_env
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.retries = retries
        self.parallel_calls = parallel_calls

    def __repr__(self) -> str:
        return (f"OpenAIChatBackend(url={self.url!r}, model={self.model!r}, "
                f"api key from ${self.api_key_env})")

    def generate(self, prompts: Sequence[str], seed: int) -> list[str]:
        return [self._complete(p, _mix(seed, "call", i) % (2**31)) for i, p in enumerate(prompts)]

    def _complete(self, prompt: str, seed: int) -> str:
        body = json.dumps({
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.temperature, "top_p": self.top_p,
            "max_tokens": self.max_tokens, "seed": seed,
        }).encode()
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise SentenceGenerationError(f"the environment variable {self.api_key_env} with the "
                                          "API key is no longer set")
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {key}"})
        opener = urllib.request.build_opener(_NoRedirect)
        for attempt in range(self.retries + 1):
            try:
                with opener.open(request, timeout=self.timeout_s) as resp:
                    payload = json.loads(resp.read().decode("utf-8"))
                break
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode("utf-8", "replace")[:500]
                # Rate limits and server hiccups are worth a retry; 4xx otherwise are not.
                if exc.code in (429, 500, 502, 503, 504) and attempt < self.retries:
                    time.sleep(min(2.0**attempt, 30.0))
                    continue
                raise SentenceGenerationError(
                    f"{self.url} answered HTTP {exc.code} for model '{self.model}': {detail}"
                ) from exc
            except (urllib.error.URLError, TimeoutError) as exc:
                if attempt < self.retries:
                    time.sleep(min(2.0**attempt, 30.0))
                    continue
                raise SentenceGenerationError(f"cannot reach {self.url}: {exc}") from exc
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise SentenceGenerationError(
                f"{self.url} returned no choices[0].message.content: {str(payload)[:300]}"
            ) from exc
        return str(content or "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib forwards the Authorization header on redirects, to any host: refuse them."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        raise urllib.error.HTTPError(req.full_url, code, f"redirect to {newurl} refused "
                                     "(the API key is never sent on)", headers, fp)


# --- one concept --------------------------------------------------------------------------

def _mix(seed: int, *parts: object) -> int:
    """A 63-bit seed from `seed` and labels, stable across runs and platforms."""
    h = hashlib.blake2b(repr((int(seed), *map(str, parts))).encode(), digest_size=8)
    return int.from_bytes(h.digest(), "big") >> 1


def _field(row: Mapping[str, Any] | pd.Series, name: str, default: str = "") -> str:
    value = row.get(name, default) if hasattr(row, "get") else default
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return default
    return str(value)


def _quotas(n_sentences: int) -> dict[str, int]:
    return {"facts": n_sentences - n_sentences // 2, "stories": n_sentences // 2}


def generate_concept_sentences(concept_row: Mapping[str, Any] | pd.Series, backend: Backend,
                               n_sentences: int, seed: int, max_rounds: int = 4,
                               calls_per_kind: int | None = None, prompts: str = "paper",
                               filter_counts: MutableMapping[str, int] | None = None,
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
    Raises SentenceGenerationError after `max_rounds` rounds without enough sentences.
    """
    concept = _field(concept_row, "concept")
    word = _field(concept_row, "word") or concept
    pos = _field(concept_row, "pos", "noun")
    definition = _field(concept_row, "definition")
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

    for round_no in range(max_rounds):
        missing = {k: quotas[k] - len(kept[k]) for k in KINDS if len(kept[k]) < quotas[k]}
        if not missing:
            break
        texts: list[str] = []  # the round's prompts
        kinds: list[str] = []
        for kind, need in missing.items():
            n_calls = calls_per_kind or max(math.ceil(need / SENTENCES_PER_CALL),
                                            math.ceil(parallel / len(missing)))
            texts += build_prompts(word, pos, definition, kind, n_calls, prompt_set=prompts)
            kinds += [kind] * n_calls

        def new_items(completions: Sequence[str],
                      tally: dict[str, int] | None = None) -> dict[str, list[str]]:
            found: dict[str, list[str]] = {}
            taken = set(seen)
            for kind in missing:
                items = extract_sentences(
                    [c for c, k in zip(completions, kinds) if k == kind], word, pos, tally)
                fresh = [s for s in items if dedupe_key(s) not in taken]
                if tally is not None:
                    tally["repeat"] += len(items) - len(fresh)
                    tally["surplus"] += max(0, len(fresh) - missing[kind])
                fresh = fresh[: missing[kind]]
                taken.update(dedupe_key(s) for s in fresh)
                found[kind] = fresh
            return found

        def enough(completions: list[str]) -> list[bool]:
            found = new_items(completions)
            satisfied = {k: len(found[k]) >= need for k, need in missing.items()}
            return [satisfied[k] for k in kinds]

        round_seed = _mix(seed, concept, "round", round_no)
        raw = (backend.generate(texts, round_seed, stop_when=enough,  # type: ignore[call-arg]
                                **hints)
               if accepts_stop else backend.generate(texts, round_seed, **hints))
        if len(raw) != len(texts):
            raise SentenceGenerationError(
                f"backend {getattr(backend, 'name', backend)!r} returned {len(raw)} completions "
                f"for {len(texts)} prompts (concept '{concept}')")
        for kind, items in new_items(raw, counts).items():
            kept[kind] += items
            seen.update(dedupe_key(s) for s in items)
        counts.pop("kept", None)  # extract_sentences' own count; "kept" is set below
        if filter_counts is not None:
            filter_counts.clear()
            filter_counts.update(counts, kept=sum(len(v) for v in kept.values()))

    if any(len(kept[k]) < quotas[k] for k in KINDS):
        got = ", ".join(f"{k} {len(kept[k])}/{quotas[k]}" for k in KINDS)
        raise SentenceGenerationError(
            f"concept '{concept}' (word '{word}', {pos}): found only "
            f"{sum(len(v) for v in kept.values())} of {n_sentences} usable sentences ({got}) "
            f"after {max_rounds} rounds with {getattr(backend, 'name', type(backend).__name__)}; "
            "raise max_rounds, use a stronger generator, or provide sentences")
    texts = kept["facts"] + kept["stories"]
    prompt_kinds = ["facts"] * len(kept["facts"]) + ["stories"] * len(kept["stories"])
    return sentences_frame(concept, texts, prompt_kinds,
                           str(getattr(backend, "name", type(backend).__name__)))


def format_filter_counts(counts: Mapping[str, int]) -> str:
    """One line from `generate_concept_sentences`' filter counts: "candidates 57, kept 14;
    removed: preamble 4, length 2, no_word 21, ..." (every filter named, zeros included)."""
    removed = ", ".join(f"{name} {counts.get(name, 0)}" for name in (*FILTERS, *ROUND_FILTERS))
    return (f"candidates {counts.get('candidates', 0)}, kept {counts.get('kept', 0)}; "
            f"removed: {removed}")


def sentences_frame(concept: str, texts: Sequence[str], prompts: Sequence[str] | str,
                    source: str) -> pd.DataFrame:
    """A sentences table in the CONTRACTS.md format, ids "{concept}:{i:04d}" in order."""
    kinds = [prompts] * len(texts) if isinstance(prompts, str) else list(prompts)
    if len(kinds) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(kinds)} prompt labels")
    return pd.DataFrame({
        "sentence_id": [f"{concept}:{i:04d}" for i in range(len(texts))],
        "concept": [concept] * len(texts),
        "text": list(texts),
        "prompt": kinds,
        "source": [source] * len(texts),
    }, columns=list(SENTENCE_COLUMNS))


# --- provided sentences and output --------------------------------------------------------

def provided_files(pattern: str, concepts: Sequence[str]) -> dict[str, str]:
    """The provided sentence file of each concept that has one, for a pattern with {concept}.

    A pattern whose folder does not exist, or that matches no concept's file, is refused: a
    misspelt path would otherwise silently send every concept to generation.
    """
    from expertalign.config import ConfigError, check_provided_pattern

    check_provided_pattern(pattern)
    static = pattern.split("{", 1)[0]
    folder = Path(static) if static.endswith(("/", os.sep)) else Path(static).parent
    if not folder.is_dir():
        raise ConfigError(f"config key sentences.provided: folder {folder}/ of {pattern!r} "
                          "does not exist")
    found = {c: pattern.format(concept=c) for c in concepts}
    found = {c: p for c, p in found.items() if Path(p).is_file()}
    if concepts and not found:
        example = pattern.format(concept=concepts[0])
        raise ConfigError(f"config key sentences.provided: no concept has a file {pattern!r} "
                          f"(e.g. {example} does not exist); fix the pattern or set it to null")
    return found


def read_provided_sentences(path: str | Path, concept: str | None = None) -> list[str]:
    """Sentences from a user file: .txt (one per line, blank lines skipped) or .tsv/.csv/
    .parquet with a `text` column (and, if `concept` is given and the file has a `concept`
    column, only that concept's rows). Text files are UTF-8, with or without a byte-order
    mark."""
    import io

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return [line.strip() for line in read_utf8(path).splitlines() if line.strip()]
    if suffix in (".tsv", ".tab"):
        df = pd.read_csv(io.StringIO(read_utf8(path)), sep="\t", dtype=str,
                         keep_default_na=False)
    elif suffix == ".csv":
        df = pd.read_csv(io.StringIO(read_utf8(path)), dtype=str, keep_default_na=False)
    elif suffix in (".parquet", ".pq"):
        df = pd.read_parquet(path)
    else:
        raise ValueError(f"{path}: unknown sentence file type '{suffix}' "
                         "(use .txt, .tsv, .csv or .parquet)")
    if "text" not in df.columns:
        raise ValueError(f"{path}: no 'text' column (columns: {', '.join(map(str, df.columns))})")
    if concept is not None and "concept" in df.columns:
        df = df[df["concept"].astype(str) == concept]
    return [str(t).strip() for t in df["text"] if str(t).strip()]


def provided_concept_sentences(concept_row: Mapping[str, Any] | pd.Series, path: str | Path,
                               n_sentences: int | None = None) -> pd.DataFrame:
    """The concept's sentences from a user file, deduplicated (no word filter: the user
    chose them), the first `n_sentences` if given, with prompt "provided"."""
    concept = _field(concept_row, "concept")
    texts: list[str] = []
    seen: set[str] = set()
    for text in read_provided_sentences(path, concept):
        key = dedupe_key(text)
        if key not in seen:
            seen.add(key)
            texts.append(" ".join(text.split()))
    if n_sentences is not None:
        if len(texts) < n_sentences:
            raise SentenceGenerationError(
                f"concept '{concept}': {path} has {len(texts)} distinct sentences, "
                f"{n_sentences} needed")
        texts = texts[:n_sentences]
    return sentences_frame(concept, texts, "provided", f"provided:{Path(path).name}")


def write_sentences_atomic(df: pd.DataFrame, path: str | Path,
                           fingerprint: str | None = None) -> None:
    """Write a sentences table as parquet so that readers never see a partial file
    (:func:`expertalign.atomic.atomic_path`), with the settings' ``fingerprint``
    (:mod:`expertalign.sentence_plan`) in its metadata."""
    missing = [c for c in SENTENCE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"sentences table lacks columns {', '.join(missing)}")
    import pyarrow as pa
    import pyarrow.parquet as pq

    from expertalign.atomic import atomic_path
    from expertalign.sentence_plan import FINGERPRINT_KEY

    table = pa.Table.from_pandas(df, preserve_index=False)
    if fingerprint is not None:
        metadata = {**(table.schema.metadata or {}), FINGERPRINT_KEY: fingerprint.encode()}
        table = table.replace_schema_metadata(metadata)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
