"""Max-pooled responses of every recorded unit to a list of sentences.

    >>> from expertalign.models import load_model
    >>> from expertalign.units import find_units
    >>> from expertalign.responses import max_pooled_responses
    >>> lm = load_model("embedded")
    >>> layout = find_units(lm.model)
    >>> sentences = ["A cat sat.", "Dogs bark."]
    >>> responses = max_pooled_responses(lm.model, lm.tokenizer, sentences, layout)
    >>> responses.shape                      # unit-major: [n_units, n_sentences]
    torch.Size([155520, 2])

Each unit's response to a sentence is its maximum over the sentence's real tokens: padding never
counts, and neither do special tokens the tokenizer adds (a BOS token sees no sentence, so it would
put the same floor under every sentence). Sentences are sorted by length and batched to a token
budget, positions are computed from the attention mask (left and right padding give the same
responses), and only the base model runs — the LM head's vocabulary projection is never computed.
The result is unit-major because every later step (sorting, AP) works per unit. A NaN or inf
response raises ``NonFiniteResponseError`` naming the unit, its module and the sentence.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence

import torch

from expertalign.units import UnitLayout

__all__ = [
    "max_pool_hooks",
    "max_pooled_responses",
    "pool_responses_into",
    "token_batches",
    "tokenize_sentences",
]

log = logging.getLogger(__name__)


class _BatchState:
    """What the hooks need to know about the batch being run."""

    def __init__(self) -> None:
        #: columns of ``out`` for the batch's rows: a slice when they are consecutive, else indices
        self.columns: slice | torch.Tensor | None = None
        #: (first row, end row, first token, end token): consecutive rows pooled over one token span
        self.spans: list[tuple[int, int, int, int]] | None = None
        #: [B, T, 1] bool of the tokens that count, used when some row's tokens are not one span
        self.pool_mask: torch.Tensor | None = None


def _pool_spans(pool: torch.Tensor) -> list[tuple[int, int, int, int]] | None:
    """Group rows of a [B, T] pooling mask whose tokens are one identical contiguous span.

    Returns None if some row's pooled tokens are not contiguous (then the hooks mask instead).
    """
    spans: list[tuple[int, int, int, int]] = []
    for row, mask in enumerate(pool.tolist()):
        first = mask.index(True) if True in mask else -1
        if first < 0:
            return None
        end = len(mask) - mask[::-1].index(True)
        if not all(mask[first:end]):
            return None
        if spans and spans[-1][2:] == (first, end) and spans[-1][1] == row:
            spans[-1] = (spans[-1][0], row + 1, first, end)
        else:
            spans.append((row, row + 1, first, end))
    return spans


@contextlib.contextmanager
def max_pool_hooks(
    model: torch.nn.Module, layout: UnitLayout, out: torch.Tensor, state: _BatchState
) -> Iterator[None]:
    """Forward hooks that max-pool each recorded module into ``out[unit, state.columns]``.

    Each group of rows sharing one token span is reduced straight from the module's output (a view,
    no masked copy of the activations); the pooled values are exactly the maxima over real tokens.
    Removed on exit, also when the forward pass raises.
    """
    modules = dict(model.named_modules())
    handles = []

    def make_hook(offset: int, width: int):
        def hook(_module, _inputs, output):
            hidden = output[0] if isinstance(output, tuple) else output
            if hidden.shape[-1] != width:
                raise RuntimeError(f"expected {width} features, got {hidden.shape[-1]}")
            target = out[offset : offset + width]
            if state.spans is None:
                pooled = hidden.masked_fill(~state.pool_mask, float("-inf")).amax(dim=1)
                _write(target, state.columns, pooled)
                return
            columns = state.columns
            for first, end, start, stop in state.spans:
                pooled = hidden[first:end, start:stop].amax(dim=1)
                if isinstance(columns, slice):
                    lo = columns.start + first
                    target[:, lo : lo + end - first].copy_(pooled.T)
                else:
                    _write(target, columns[first:end], pooled)

        return hook

    try:
        for recorded in layout.modules:
            module = modules[recorded.name]
            handles.append(module.register_forward_hook(make_hook(recorded.offset, recorded.width)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def _write(target: torch.Tensor, columns: slice | torch.Tensor, pooled: torch.Tensor) -> None:
    """``target[:, columns] = pooled.T`` for pooled [rows, width]."""
    if isinstance(columns, slice):
        target[:, columns].copy_(pooled.T)
    else:
        target.index_copy_(1, columns, pooled.T.to(target.dtype))


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


def tokenize_sentences(tokenizer, sentences: Sequence[str], max_length: int):
    """Token ids and special-token masks of ``sentences`` (lists, unpadded), as the responses see
    them: the tokenizer's special tokens added, each truncated to ``max_length`` tokens.

        >>> ids, special = tokenize_sentences(lm.tokenizer, ["A cat sat."], max_length=128)
    """
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
    parameter = next(model.parameters())
    out = torch.empty(
        layout.n_units, len(sentences), dtype=dtype or parameter.dtype, device=parameter.device
    )
    pool_responses_into(
        model,
        tokenizer,
        sentences,
        layout,
        out,
        columns=range(len(sentences)),
        max_tokens=max_tokens,
        max_length=max_length,
        padding_side=padding_side,
        progress=progress,
    )
    return out


def pool_responses_into(
    model: torch.nn.Module,
    tokenizer,
    sentences: Sequence[str],
    layout: UnitLayout,
    out: torch.Tensor,
    *,
    columns: Sequence[int] | None = None,
    first_column: int = 0,
    max_tokens: int = 4096,
    max_length: int = 128,
    padding_side: str = "right",
    progress: bool = False,
) -> list[int]:
    """Write each sentence's responses into a column of ``out`` [n_units, n_columns]; returns them.

    With ``columns`` the sentence ``i`` goes to ``columns[i]``. Without, sentences take the columns
    from ``first_column`` on in the order they run (longest first), so every batch writes one
    contiguous block — for callers that only need to know where each sentence went.
    """
    if len(sentences) == 0:
        raise ValueError("no sentences to run")
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if out.ndim != 2 or out.shape[0] != layout.n_units:
        raise ValueError(f"out must be [{layout.n_units}, n], got {tuple(out.shape)}")
    device = next(model.parameters()).device
    ids, special = tokenize_sentences(tokenizer, sentences, max_length)
    for i, mask in enumerate(special):
        if all(mask):
            raise ValueError(f"sentence {i} ({sentences[i][:60]!r}) has no real tokens")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = token_batches([len(x) for x in ids], max_tokens)
    if columns is None:
        order = [index for batch in batches for index in batch]
        assigned = [0] * len(sentences)
        for position, index in enumerate(order):
            assigned[index] = first_column + position
    else:
        assigned = [int(c) for c in columns]
        if len(assigned) != len(sentences):
            raise ValueError("columns must give one column per sentence")
    if assigned and (min(assigned) < 0 or max(assigned) >= out.shape[1]):
        raise IndexError(f"columns must lie in [0, {out.shape[1]})")
    state = _BatchState()
    base = getattr(model, "base_model", model)
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
            targets = [assigned[i] for i in batch]
            if targets == list(range(targets[0], targets[0] + len(targets))):
                state.columns = slice(targets[0], targets[0] + len(targets))
            else:
                state.columns = torch.tensor(targets, device=device)
            state.spans = _pool_spans(pool)
            state.pool_mask = None if state.spans is not None else pool.to(device).unsqueeze(-1)
            base(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                position_ids=positions.to(device),
                use_cache=False,
            )
    _check_finite_columns(out, assigned, sentences, layout)
    return assigned


def _check_finite_columns(
    out: torch.Tensor, assigned: Sequence[int], sentences: Sequence[str], layout: UnitLayout
) -> None:
    """Refuse NaN/inf responses, naming the unit (with its module) and the sentence: the
    matrix is unit-major, and a transposed report is easy to get wrong downstream."""
    from expertalign.ap import NonFiniteResponseError, first_non_finite

    lo, hi = min(assigned), max(assigned) + 1
    columns = torch.tensor(sorted(assigned), device=out.device)
    # the written columns: a view when they are one block, else a copy of just those
    block = out[:, lo:hi] if hi - lo == len(assigned) else out.index_select(1, columns)
    found = first_non_finite(block)
    if found is None:
        return
    count, unit, position = found
    column = lo + position if hi - lo == len(assigned) else int(columns[position])
    sentence = list(assigned).index(column)
    module = next(m for m in layout.modules if m.offset <= unit < m.offset + m.width)
    raise NonFiniteResponseError(
        f"unit responses contain {count} non-finite values (NaN or inf), first at unit {unit} "
        f"({module.name} feature {unit - module.offset}) for sentence {sentence} "
        f"({sentences[sentence][:60]!r}); in bf16/fp16 this usually means overflow - run the "
        "model in float32 or bfloat16, never float16 for GPT-NeoX"
    )
