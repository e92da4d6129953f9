"""Exact average precision of every unit as a classifier of a concept, vectorised with torch.

    >>> import torch
    >>> from expertalign.ap import average_precision, SortedNegatives
    >>> scores = torch.rand(1400, 5000)            # [sentences, units]
    >>> labels = torch.zeros(1400, dtype=torch.bool); labels[:400] = True
    >>> ap = average_precision(scores, labels)     # float64 [units], equal to sklearn
    >>> bank = SortedNegatives(scores[400:])       # sort the negatives once ...
    >>> ap2 = bank.average_precision(scores[:400]) # ... and score any number of concepts against them
    >>> experts = expert_mask(ap, 0.5)             # units with AP > τ (strict)

The value is exactly ``sklearn.metrics.average_precision_score`` (step-wise, ties included): with
``tp(t)``/``fp(t)`` the positives/negatives scoring at least ``t``, AP is the mean over positives ``i``
of ``tp(s_i) / (tp(s_i) + fp(s_i))``. Every positive in a tie group sees the same precision, which is
what sklearn's one-threshold-per-distinct-score curve gives. Counting needs only sorted positives and
sorted negatives per unit, so a shared negative bank is sorted once and each concept only sorts its
own positives and binary-searches them into the bank.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from expertalign._ap_kernel import ap_sorted_rows

__all__ = [
    "SortedNegatives",
    "average_precision",
    "expert_mask",
    "check_finite",
    "NonFiniteResponseError",
    "EmptyClassError",
]

# Units per chunk: bounds the temporary [units, sentences] copies (sorting needs unit-major rows).
_DEFAULT_CHUNK_ELEMENTS = 1 << 26


class NonFiniteResponseError(ValueError):
    """A response matrix contains NaN or ±inf, which would make AP meaningless."""


class EmptyClassError(ValueError):
    """A concept has no positive or no negative sentences."""


def check_finite(scores: torch.Tensor, what: str = "responses") -> None:
    """Raise :class:`NonFiniteResponseError` naming the first bad unit if ``scores`` has NaN/inf."""
    bad = ~torch.isfinite(scores)
    if bool(bad.any()):
        rows, cols = torch.nonzero(bad, as_tuple=True)
        raise NonFiniteResponseError(
            f"{what} contain {int(bad.sum())} non-finite values (NaN or inf), first at sentence "
            f"{int(rows[0])}, unit {int(cols[0])}; in bf16/fp16 this usually means overflow — "
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
    """AP per row from ascending positives [u, P] and negatives [u, N] (minus ``excluded`` [u, E])."""
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


def average_precision(
    scores: torch.Tensor,
    labels: torch.Tensor | Sequence[bool],
    *,
    chunk_elements: int = _DEFAULT_CHUNK_ELEMENTS,
    backend: str = "auto",
) -> torch.Tensor:
    """AP of each unit (column of ``scores`` [n_sentences, n_units]) for boolean ``labels``.

    Returns float64 [n_units] on the device of ``scores``, equal to
    ``sklearn.metrics.average_precision_score(labels, scores[:, u])`` for every ``u``.
    ``backend``: ``numba`` (CPU merge kernel, the CPU default) or ``torch`` (sort + binary search,
    used on GPUs); both are exact.
    """
    if scores.ndim != 2:
        raise ValueError(f"scores must be [n_sentences, n_units], got shape {tuple(scores.shape)}")
    labels = torch.as_tensor(labels, device=scores.device)
    if labels.dtype != torch.bool:
        labels = labels.to(torch.bool)
    if labels.ndim != 1 or labels.shape[0] != scores.shape[0]:
        raise ValueError(
            f"labels must be a bool vector of length n_sentences={scores.shape[0]}, "
            f"got shape {tuple(labels.shape)}"
        )
    scores = _as_float(scores)
    check_finite(scores, "scores")
    positives = scores[labels]
    negatives = scores[~labels]
    bank = SortedNegatives(negatives, chunk_elements=chunk_elements, backend=backend)
    return bank.average_precision(positives)


class SortedNegatives:
    """Negative responses [N, units] sorted once per unit, to score many concepts against.

    On the CPU the sorted bank is a unit-major NumPy copy ([units, N]) scored by a parallel merge
    (:mod:`expertalign._ap_kernel`); on other devices it stays in torch, sorted in unit chunks, and
    positives are binary-searched into it. Either way memory is one extra copy of the negatives, and
    the input is referenced, not copied, to look up the rows a concept excludes.
    """

    def __init__(
        self,
        negatives: torch.Tensor,
        *,
        chunk_elements: int = _DEFAULT_CHUNK_ELEMENTS,
        backend: str = "auto",
    ) -> None:
        if backend not in ("auto", "torch", "numba"):
            raise ValueError(f"backend must be auto, torch or numba, got {backend!r}")
        if negatives.ndim != 2:
            raise ValueError(f"negatives must be [n, units], got {tuple(negatives.shape)}")
        if negatives.shape[0] == 0:
            raise EmptyClassError("the negative set is empty: AP needs at least one negative")
        negatives = _as_float(negatives)
        check_finite(negatives, "negative responses")
        self.n_negatives, self.n_units = negatives.shape
        self.device = negatives.device
        self._negatives = negatives
        self._chunk_elements = chunk_elements
        self._sorted_cpu: np.ndarray | None = None
        self._chunks: list[tuple[slice, torch.Tensor]] = []
        if backend == "numba" and self.device.type != "cpu":
            raise ValueError("the numba backend needs CPU tensors")
        if self.device.type == "cpu" and backend != "torch":
            self._sorted_cpu = np.sort(negatives.numpy().T, axis=1)
        else:
            for cols in _unit_chunks(self.n_units, self.n_negatives, chunk_elements):
                rows = negatives[:, cols].T.contiguous()
                self._chunks.append((cols, torch.sort(rows, dim=1).values))

    def average_precision(
        self,
        positives: torch.Tensor,
        exclude: torch.Tensor | Sequence[int] | None = None,
    ) -> torch.Tensor:
        """AP [units] (float64) of ``positives`` [P, units] against the negatives.

        ``exclude`` lists row indices of the negatives that do not count for this concept (e.g. the
        concept's own sentences in a shared bank); the result equals AP against the remaining rows.
        """
        if positives.ndim != 2 or positives.shape[1] != self.n_units:
            raise ValueError(
                f"positives must be [P, {self.n_units}], got shape {tuple(positives.shape)}"
            )
        if positives.shape[0] == 0:
            raise EmptyClassError("the positive set is empty: AP needs at least one positive")
        positives = _as_float(positives).to(device=self.device, dtype=self._negatives.dtype)
        check_finite(positives, "positive responses")
        excluded_rows = self._excluded_rows(exclude)
        if self._sorted_cpu is not None:
            sorted_pos = np.sort(positives.numpy().T, axis=1)
            excluded = self._negatives[excluded_rows].numpy().T
            sorted_excluded = np.sort(excluded, axis=1)
            return torch.from_numpy(ap_sorted_rows(sorted_pos, self._sorted_cpu, sorted_excluded))
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
