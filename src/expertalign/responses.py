"""Max-pooled responses of every recorded unit to a list of sentences.

    >>> from expertalign.models import load_model
    >>> from expertalign.units import find_units
    >>> from expertalign.responses import max_pooled_responses
    >>> lm = load_model("embedded")
    >>> layout = find_units(lm.model)
    >>> responses = max_pooled_responses(lm.model, lm.tokenizer, ["A cat sat.", "Dogs bark."], layout)
    >>> responses.shape                      # unit-major: [n_units, n_sentences]
    torch.Size([155520, 2])

Each unit's response to a sentence is its maximum over the sentence's real tokens: padding never
counts, and neither do special tokens the tokenizer adds (a BOS token sees no sentence, so it would
put the same floor under every sentence). Sentences are sorted by length and batched to a token
budget, positions are computed from the attention mask (left and right padding give the same
responses), and only the base model runs — the LM head's vocabulary projection is never computed.
The result is unit-major because every later step (sorting, AP) works per unit.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence

import torch

from expertalign.units import UnitLayout

__all__ = ["max_pool_hooks", "max_pooled_responses", "token_batches"]

log = logging.getLogger(__name__)


class _BatchState:
    """What the hooks need to know about the batch being run."""

    def __init__(self) -> None:
        self.rows: torch.Tensor | None = None
        self.pool_mask: torch.Tensor | None = None  # [B, T, 1] bool: tokens that count


@contextlib.contextmanager
def max_pool_hooks(
    model: torch.nn.Module, layout: UnitLayout, out: torch.Tensor, state: _BatchState
) -> Iterator[None]:
    """Forward hooks that max-pool each recorded module into ``out[unit, sentence]``.

    Removed on exit, also when the forward pass raises.
    """
    modules = dict(model.named_modules())
    handles = []

    def make_hook(offset: int, width: int):
        def hook(_module, _inputs, output):
            hidden = output[0] if isinstance(output, tuple) else output
            if hidden.shape[-1] != width:
                raise RuntimeError(f"expected {width} features, got {hidden.shape[-1]}")
            pooled = hidden.masked_fill(~state.pool_mask, float("-inf")).amax(dim=1)
            out[offset : offset + width, state.rows] = pooled.T.to(out.dtype)

        return hook

    try:
        for recorded in layout.modules:
            module = modules[recorded.name]
            handles.append(module.register_forward_hook(make_hook(recorded.offset, recorded.width)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def token_batches(lengths: Sequence[int], max_tokens: int) -> list[list[int]]:
    """Sentence indices grouped longest-first so that ``len(batch) * longest <= max_tokens``."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        longest = lengths[current[0]] if current else lengths[index]
        if current and (len(current) + 1) * longest > max_tokens:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def _tokenize(tokenizer, sentences: Sequence[str], max_length: int):
    encoded = tokenizer(
        list(sentences),
        add_special_tokens=True,
        truncation=True,
        max_length=max_length,
        return_special_tokens_mask=True,
    )
    return encoded["input_ids"], encoded["special_tokens_mask"]


def max_pooled_responses(
    model: torch.nn.Module,
    tokenizer,
    sentences: Sequence[str],
    layout: UnitLayout,
    *,
    max_tokens: int = 4096,
    max_length: int = 128,
    dtype: torch.dtype | None = None,
    padding_side: str = "right",
    progress: bool = False,
) -> torch.Tensor:
    """Responses ``[n_units, n_sentences]`` on the model's device, in ``dtype`` (default: model's).

    ``max_tokens`` bounds padded tokens per batch; ``max_length`` truncates longer sentences.
    """
    if len(sentences) == 0:
        raise ValueError("no sentences to run")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    parameter = next(model.parameters())
    device = parameter.device
    out = torch.empty(layout.n_units, len(sentences), dtype=dtype or parameter.dtype, device=device)
    ids, special = _tokenize(tokenizer, sentences, max_length)
    for i, mask in enumerate(special):
        if all(mask):
            raise ValueError(f"sentence {i} ({sentences[i][:60]!r}) has no real tokens")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    state = _BatchState()
    base = getattr(model, "base_model", model)
    batches = token_batches([len(x) for x in ids], max_tokens)
    iterator = batches
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(batches, desc="forward", unit="batch", mininterval=5)
    with torch.inference_mode(), max_pool_hooks(model, layout, out, state):
        for batch in iterator:
            longest = max(len(ids[i]) for i in batch)
            input_ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), longest), dtype=torch.long)
            pool = torch.zeros((len(batch), longest), dtype=torch.bool)
            for row, index in enumerate(batch):
                n = len(ids[index])
                cols = slice(0, n) if padding_side == "right" else slice(longest - n, longest)
                input_ids[row, cols] = torch.tensor(ids[index])
                attention[row, cols] = 1
                pool[row, cols] = ~torch.tensor(special[index], dtype=torch.bool)
            positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
            state.rows = torch.tensor(batch, device=device)
            state.pool_mask = pool.to(device).unsqueeze(-1)
            base(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                position_ids=positions.to(device),
                use_cache=False,
            )
    return out
