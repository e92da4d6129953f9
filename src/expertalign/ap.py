"""Exact average precision of every unit as a classifier of a concept, for all units at once.

    >>> import torch
    >>> from expertalign.ap import average_precision, SortedNegatives
    >>> scores = torch.rand(1400, 5000)            # [sentences, units]
    >>> labels = torch.zeros(1400, dtype=torch.bool); labels[:400] = True
    >>> ap = average_precision(scores, labels)     # float64 [units], equal to sklearn
    >>> bank = SortedNegatives(scores[400:])       # sort the negatives once ...
    >>> ap2 = bank.average_precision(scores[:400]) # ... and score any number of concepts
    >>> responses = scores.T.contiguous()          # unit-major [units, sentences], as extracted
    >>> bank = SortedNegatives(responses.T, rows=range(400, 1400))   # rows picked, nothing copied
    >>> ap3 = bank.average_precision(responses.T, rows=range(400))
    >>> experts = expert_mask(ap, 0.5)             # units with AP > τ (strict)

The value is exactly ``sklearn.metrics.average_precision_score`` (step-wise, ties included):
with ``tp(t)``/``fp(t)`` the positives/negatives scoring at least ``t``, AP is the mean over
positives ``i`` of ``tp(s_i) / (tp(s_i) + fp(s_i))``. Every positive in a tie group sees the same
precision, which is what sklearn's one-threshold-per-distinct-score curve gives. Counting needs
only sorted positives and sorted negatives per unit, so a shared negative bank is sorted once and
each concept only sorts its own positives and merges them into the bank.

On the CPU (backend ``numba``) the chosen rows are gathered straight from the input into contiguous
unit-major blocks (whatever its layout), sorted in place by NumPy's SIMD sort on parallel threads,
and merged by :mod:`expertalign._ap_kernel`; no transposed or full-size temporary is made. On other
devices (backend ``torch``) units are sorted in chunks and positives binary-searched into them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch

from expertalign._ap_kernel import all_finite, ap_sorted_rows, gather_columns

__all__ = [
    "SortedNegatives",
    "average_precision",
    "expert_mask",
    "check_finite",
    "first_non_finite",
    "NonFiniteResponseError",
    "EmptyClassError",
]

# Units per chunk: bounds the temporary [units, sentences] copies (sorting needs unit-major rows).
_DEFAULT_CHUNK_ELEMENTS = 1 << 26
# NumPy's x86 SIMD sort handles rows of up to 512 float32 with a sorting network, 4-5x faster per
# element than its quicksort on longer rows (measured: ~1.1 vs ~5.5 ns/element at 1000).
_FAST_SORT_LENGTH = 512


class NonFiniteResponseError(ValueError):
    """A response matrix contains NaN or ±inf, which would make AP meaningless."""


class EmptyClassError(ValueError):
    """A concept has no positive or no negative sentences."""


def first_non_finite(matrix: torch.Tensor) -> tuple[int, int, int] | None:
    """``(count, row, column)`` of a 2-D tensor's NaN/inf values (the first in row-major
    order), or None when every value is finite."""
    if (
        matrix.device.type == "cpu"
        and matrix.ndim == 2
        and matrix.dtype in (torch.float32, torch.float64)
    ):
        values = matrix.detach().numpy()
        if values.strides[0] < values.strides[1]:
            values = values.T  # scan along the contiguous axis
        if all_finite(values):  # one parallel pass, no [n, units] boolean temporary
            return None
    bad = ~torch.isfinite(matrix)
    if not bool(bad.any()):
        return None
    rows, cols = torch.nonzero(bad, as_tuple=True)
    return int(bad.sum()), int(rows[0]), int(cols[0])


def check_finite(scores: torch.Tensor, what: str = "responses") -> None:
    """Raise :class:`NonFiniteResponseError` naming the first bad value if ``scores``
    [n_sentences, n_units] has NaN/inf (pass a unit-major matrix transposed: ``responses.T``)."""
    found = first_non_finite(scores)
    if found is not None:
        count, sentence, unit = found
        raise _non_finite(what, count, sentence, unit)


def _non_finite(what: str, count: int, sentence: int, unit: int) -> NonFiniteResponseError:
    return NonFiniteResponseError(
        f"{what} contain {count} non-finite values (NaN or inf), first at sentence "
        f"{sentence}, unit {unit}; in bf16/fp16 this usually means overflow — "
        "run the model in float32 or bfloat16, never float16 for GPT-NeoX"
    )


def _unit_chunks(n_units: int, n_rows: int, chunk_elements: int) -> Iterator[slice]:
    step = max(1, chunk_elements // max(1, n_rows))
    for start in range(0, n_units, step):
        yield slice(start, min(n_units, start + step))


def _count_at_least(sorted_rows: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """For ascending ``sorted_rows[u]``, how many entries are ≥ each ``values[u, j]``."""
    return sorted_rows.shape[1] - torch.searchsorted(sorted_rows, values, side="left")


def _ap_from_sorted(
    sorted_pos: torch.Tensor, sorted_neg: torch.Tensor, excluded: torch.Tensor
) -> torch.Tensor:
    """AP per row from ascending positives [u, P] and negatives [u, N] (minus ``excluded``
    [u, E])."""
    tp = _count_at_least(sorted_pos, sorted_pos)
    fp = _count_at_least(sorted_neg, sorted_pos)
    if excluded.shape[1] > 0:
        fp = fp - _count_at_least(excluded, sorted_pos)
    tp64 = tp.to(torch.float64)
    precision = tp64 / (tp64 + fp.to(torch.float64))
    return precision.mean(dim=1)


def _as_float(scores: torch.Tensor) -> torch.Tensor:
    if scores.dtype in (torch.float32, torch.float64):
        return scores
    # bf16/fp16 values are exactly representable in float32, so ranking is unchanged.
    return scores.float()


_SORT_POOL: ThreadPoolExecutor | None = None
_SORT_POOL_LOCK = threading.Lock()


def _sort_pool() -> ThreadPoolExecutor:
    global _SORT_POOL
    with _SORT_POOL_LOCK:
        if _SORT_POOL is None:
            _SORT_POOL = ThreadPoolExecutor(numba.config.NUMBA_NUM_THREADS, "expertalign-sort")
        return _SORT_POOL


def _sort_rows_inplace(values: np.ndarray) -> None:
    """Sort each row of a C-contiguous 2-D array in place, row blocks on parallel threads.

    NumPy's SIMD sort releases the GIL, so threads scale; ``numba.get_num_threads()`` sets how
    many (the same budget as the merge kernel).
    """
    threads = numba.get_num_threads()
    if threads <= 1 or values.shape[0] < 8 * threads or values.size < (1 << 18):
        values.sort(axis=1)
        return
    bounds = np.linspace(0, values.shape[0], threads + 1).astype(int)
    blocks = [values[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    list(_sort_pool().map(lambda block: block.sort(axis=1), blocks))


def _gather_sorted(
    unit_major: np.ndarray, cols: np.ndarray, dtype: np.dtype, what: str, block: int = 0
) -> np.ndarray:
    """Columns ``cols`` of ``unit_major`` [units, n] (any strides) as a contiguous, row-sorted
    [units, len(cols)] array of ``dtype`` (sorted within consecutive ``block``-column blocks if
    ``block`` > 0); raises :class:`NonFiniteResponseError` on NaN/inf."""
    cols = np.sort(cols)  # rows are sorted afterwards anyway; ascending reads stream through memory
    out = np.empty((unit_major.shape[0], cols.shape[0]), dtype=dtype)
    if not gather_columns(unit_major, cols, out):
        units, picked = np.nonzero(~np.isfinite(out))
        sentences = cols[picked]  # rows of the caller's [sentences, units] input
        first = np.lexsort((units, sentences))[0]
        raise _non_finite(what, int(units.size), int(sentences[first]), int(units[first]))
    if block <= 0 or block >= cols.shape[0]:
        _sort_rows_inplace(out)
    else:
        for start in range(0, cols.shape[0], block):
            _sort_rows_inplace(out[:, start : start + block])
    return out


def _row_index(rows: torch.Tensor | Sequence[int] | np.ndarray | None, n_rows: int) -> np.ndarray:
    if rows is None:
        return np.arange(n_rows, dtype=np.int64)
    if isinstance(rows, torch.Tensor):
        rows = rows.cpu().numpy()
    index = np.asarray(rows, dtype=np.int64).reshape(-1)
    if index.size and (int(index.min()) < 0 or int(index.max()) >= n_rows):
        raise IndexError(f"rows must lie in [0, {n_rows})")
    return index


def _as_scores(scores: object) -> torch.Tensor:
    """A tensor view of ``scores`` (a tensor, or a NumPy array / nested list of numbers)."""
    if isinstance(scores, torch.Tensor):
        return scores
    array = np.asarray(scores)
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"scores must be numbers [n_sentences, n_units], got {array.dtype} "
            f"({type(scores).__name__})"
        )
    if array.dtype.kind in "biu" or array.dtype == np.float16:
        array = array.astype(np.float64)
    if any(s < 0 for s in array.strides):
        array = np.ascontiguousarray(array)  # torch cannot view negative strides
    return torch.from_numpy(array)


def average_precision(
    scores: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray | Sequence[bool],
    *,
    chunk_elements: int = _DEFAULT_CHUNK_ELEMENTS,
    backend: str = "auto",
) -> torch.Tensor | np.ndarray:
    """AP of each unit (column of ``scores`` [n_sentences, n_units]) for boolean ``labels``.

    Returns float64 [n_units] on the device of ``scores``, equal to
    ``sklearn.metrics.average_precision_score(labels, scores[:, u])`` for every ``u``.
    ``backend``: ``numba`` (CPU merge kernel, the CPU default) or ``torch`` (sort + binary search,
    used on GPUs); both are exact. ``scores`` may be a transposed view of a unit-major matrix
    (``responses.T``): on the CPU the positives and negatives are gathered from it directly.
    A NumPy ``scores`` array gives a NumPy result; labels may be bool or 0/1 of any array type.
    """
    if not isinstance(scores, torch.Tensor):
        return (
            average_precision(
                _as_scores(scores), labels, chunk_elements=chunk_elements, backend=backend
            )
            .cpu()
            .numpy()
        )
    if scores.ndim != 2:
        raise ValueError(f"scores must be [n_sentences, n_units], got shape {tuple(scores.shape)}")
    if not isinstance(labels, torch.Tensor):
        labels = torch.from_numpy(np.array(labels))  # a copy: torch refuses negative strides
    labels = labels.to(scores.device)
    if labels.dtype != torch.bool:
        if labels.dtype.is_complex or bool(((labels != 0) & (labels != 1)).any()):
            raise ValueError("labels must be bool or 0/1 (True = positive sentence)")
        labels = labels.to(torch.bool)
    if labels.ndim != 1 or labels.shape[0] != scores.shape[0]:
        raise ValueError(
            f"labels must be a bool vector of length n_sentences={scores.shape[0]}, "
            f"got shape {tuple(labels.shape)}"
        )
    scores = _as_float(scores)
    check_finite(scores, "scores")
    positive_rows = torch.nonzero(labels).reshape(-1)
    negative_rows = torch.nonzero(~labels).reshape(-1)
    if scores.device.type == "cpu" and backend != "torch":
        if len(negative_rows) == 0:
            raise EmptyClassError("the negative set is empty: AP needs at least one negative")
        if len(positive_rows) == 0:
            raise EmptyClassError("the positive set is empty: AP needs at least one positive")
        # One concept, one use of its negatives: sort them in blocks NumPy sorts fastest and let
        # the kernel merge the positives into each block.
        unit_major = scores.numpy().T
        n_negatives = len(negative_rows)
        n_blocks = -(-n_negatives // _FAST_SORT_LENGTH)
        block = -(-n_negatives // n_blocks)
        negatives = _gather_sorted(
            unit_major, negative_rows.numpy(), unit_major.dtype, "scores", block=block
        )
        positives = _gather_sorted(unit_major, positive_rows.numpy(), unit_major.dtype, "scores")
        empty = np.empty((unit_major.shape[0], 0), dtype=unit_major.dtype)
        return torch.from_numpy(ap_sorted_rows(positives, negatives, empty, block))
    bank = SortedNegatives(
        scores, rows=negative_rows, chunk_elements=chunk_elements, backend=backend
    )
    return bank.average_precision(scores, rows=positive_rows)


class SortedNegatives:
    """Negative responses [N, units] sorted once per unit, to score many concepts against.

    On the CPU the sorted bank is a unit-major NumPy array ([units, N]) scored by a parallel merge
    (:mod:`expertalign._ap_kernel`); on other devices it stays in torch, sorted in unit chunks, and
    positives are binary-searched into it. Either way memory is one extra copy of the negatives, and
    the input is referenced, not copied, to look up the rows a concept excludes.

    ``rows`` (optional) picks the negatives among the rows of ``negatives``, so a shard's bank can
    be scored straight from its response matrix (``SortedNegatives(responses.T, rows=bank_cols)``)
    without first copying the bank out; ``exclude`` indices then count within ``rows``.
    """

    def __init__(
        self,
        negatives: torch.Tensor,
        *,
        rows: torch.Tensor | Sequence[int] | np.ndarray | None = None,
        chunk_elements: int = _DEFAULT_CHUNK_ELEMENTS,
        backend: str = "auto",
    ) -> None:
        if backend not in ("auto", "torch", "numba"):
            raise ValueError(f"backend must be auto, torch or numba, got {backend!r}")
        if negatives.ndim != 2:
            raise ValueError(f"negatives must be [n, units], got {tuple(negatives.shape)}")
        index = _row_index(rows, negatives.shape[0])
        if index.size == 0:
            raise EmptyClassError("the negative set is empty: AP needs at least one negative")
        if backend == "numba" and negatives.device.type != "cpu":
            raise ValueError("the numba backend needs CPU tensors")
        if negatives.dtype not in (torch.float32, torch.float64) and rows is not None:
            negatives, index = negatives[torch.from_numpy(index).to(negatives.device)], None
        negatives = _as_float(negatives)
        self.n_units = negatives.shape[1]
        self.device = negatives.device
        self.dtype = negatives.dtype
        self._chunk_elements = chunk_elements
        self._sorted_cpu: np.ndarray | None = None
        self._chunks: list[tuple[slice, torch.Tensor]] = []
        if index is None:
            index = np.arange(negatives.shape[0], dtype=np.int64)
        self.n_negatives = int(index.size)
        if self.device.type == "cpu" and backend != "torch":
            # unit-major view of the input: [units, M]; the bank is a sorted copy of its columns
            self._unit_major = negatives.numpy().T
            self._columns = index
            self._sorted_cpu = _gather_sorted(
                self._unit_major, index, self._unit_major.dtype, "negative responses"
            )
            return
        if not np.array_equal(index, np.arange(negatives.shape[0])):
            negatives = negatives[torch.from_numpy(index).to(self.device)]
        check_finite(negatives, "negative responses")
        self._negatives = negatives
        for cols in _unit_chunks(self.n_units, self.n_negatives, chunk_elements):
            chunk = negatives[:, cols].T.contiguous()
            self._chunks.append((cols, torch.sort(chunk, dim=1).values))

    def average_precision(
        self,
        positives: torch.Tensor,
        exclude: torch.Tensor | Sequence[int] | None = None,
        *,
        rows: torch.Tensor | Sequence[int] | np.ndarray | None = None,
    ) -> torch.Tensor:
        """AP [units] (float64) of ``positives`` [P, units] against the negatives.

        ``exclude`` lists row indices of the negatives that do not count for this concept (e.g. the
        concept's own sentences in a shared bank); the result equals AP against the remaining rows.
        ``rows`` (optional) picks the positives among the rows of ``positives``.
        """
        if positives.ndim != 2 or positives.shape[1] != self.n_units:
            raise ValueError(
                f"positives must be [P, {self.n_units}], got shape {tuple(positives.shape)}"
            )
        index = _row_index(rows, positives.shape[0])
        if index.size == 0:
            raise EmptyClassError("the positive set is empty: AP needs at least one positive")
        excluded_rows = self._excluded_rows(exclude)
        if self._sorted_cpu is not None:
            if positives.device.type != "cpu":
                positives = positives.cpu()
            if positives.dtype not in (torch.float32, torch.float64):
                positives, index = positives[torch.from_numpy(index)].float(), np.arange(index.size)
            sorted_pos = _gather_sorted(
                positives.numpy().T, index, self._sorted_cpu.dtype, "positive responses"
            )
            sorted_excluded = _gather_sorted(
                self._unit_major,
                self._columns[excluded_rows.numpy()],
                self._sorted_cpu.dtype,
                "negative responses",
            )
            return torch.from_numpy(ap_sorted_rows(sorted_pos, self._sorted_cpu, sorted_excluded))
        if not np.array_equal(index, np.arange(positives.shape[0])):
            positives = positives[torch.from_numpy(index).to(positives.device)]
        positives = _as_float(positives).to(device=self.device, dtype=self.dtype)
        check_finite(positives, "positive responses")
        result = torch.empty(self.n_units, dtype=torch.float64, device=self.device)
        excluded_on_device = excluded_rows.to(self.device)
        for cols, sorted_neg in self._chunks:
            sorted_pos = torch.sort(positives[:, cols].T.contiguous(), dim=1).values
            picked = self._negatives[excluded_on_device][:, cols]
            sorted_excluded = torch.sort(picked.T.contiguous(), dim=1).values
            result[cols] = _ap_from_sorted(sorted_pos, sorted_neg, sorted_excluded)
        return result

    def _excluded_rows(self, exclude: torch.Tensor | Sequence[int] | None) -> torch.Tensor:
        if exclude is None:
            return torch.empty(0, dtype=torch.long)
        rows = torch.unique(torch.as_tensor(exclude, dtype=torch.long).reshape(-1).cpu())
        if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= self.n_negatives):
            raise IndexError(f"exclude indices must lie in [0, {self.n_negatives})")
        if rows.numel() >= self.n_negatives:
            raise EmptyClassError("excluding these rows leaves no negatives")
        return rows


def expert_mask(ap: torch.Tensor, tau: float) -> torch.Tensor:
    """Boolean mask of experts: units whose AP is strictly greater than ``tau``."""
    return ap > tau
