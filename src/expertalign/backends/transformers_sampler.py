"""A generation backend that samples from a local Hugging Face causal LM.

    >>> from expertalign.backends.transformers_sampler import TransformersBackend
    >>> from expertalign.models import load_model
    >>> lm = load_model("embedded")
    >>> backend = TransformersBackend(lm.model, lm.tokenizer, max_new_tokens=320, batch_size=32,
    ...                               temperature=0.8, max_lines=12, max_line_tokens=48,
    ...                               word_bias=2.0, name="smollm2")
    >>> backend.generate(prompts, seed=0, stop_when=lambda texts: False, words=["cat"])

Everything here that depends on the internals of ``transformers`` (``DynamicCache`` and its
``batch_select_indices``, the keyword names of ``forward``, chat templates, end-of-turn tokens)
is kept in this module, so that a new release of ``transformers`` touches only it.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from expertalign.generation import StopWhen
from expertalign.seeds import mix_seed

__all__ = ["TransformersBackend"]


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

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_new_tokens: int = 64,
        batch_size: int = 16,
        temperature: float = 0.6,
        top_p: float = 0.95,
        top_k: int = 50,
        name: str | None = None,
        check_every: int = 2,
        max_lines: int = 0,
        max_line_tokens: int = 0,
        word_bias: float = 0.0,
    ) -> None:
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
            i for t, i in vocab.items() if "\n" in tokenizer.convert_tokens_to_string([t])
        )
        params = inspect.signature(model.forward).parameters
        # transformers 5 renamed past_key_values to cache; older releases only know the former.
        self._cache_kw = "cache" if "cache" in params else "past_key_values"
        self._keep_kw = next(
            (k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None
        )
        self._bias_ids: list[int] = []  # set by generate() for its words

    def _render(self, prompt: str) -> str:
        return self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )

    def generate(
        self,
        prompts: Sequence[str],
        seed: int,
        stop_when: StopWhen | None = None,
        words: Sequence[str] = (),
    ) -> list[str]:
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
                gen = torch.Generator(device="cpu").manual_seed(mix_seed(seed, "batch", b) % 2**63)
                self._run_batch(prompts, rows, gen, out, done, stop_when)
                if all(done):
                    break
        return out

    def _run_batch(
        self,
        prompts: Sequence[str],
        rows: list[int],
        gen: Any,
        out: list[str],
        done: list[bool],
        stop_when: StopWhen | None,
    ) -> None:
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
        logits = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=position,
            use_cache=True,
            **{self._cache_kw: cache},
            **extra,
        ).logits[:, -1, :]
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
            logits = model(
                input_ids=torch.tensor(nxt, device=device).unsqueeze(1),
                attention_mask=mask,
                position_ids=next_pos.unsqueeze(1),
                use_cache=True,
                **{self._cache_kw: cache},
            ).logits[:, -1, :]
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
        if self._bias_ids:
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
