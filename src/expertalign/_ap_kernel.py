"""CPU kernels for exact AP: column gathers and a merge of sorted positives into sorted negatives.

    >>> import numpy as np
    >>> from expertalign._ap_kernel import ap_sorted_rows, gather_columns
    >>> pos = np.sort(np.random.rand(5, 40).astype(np.float32), axis=1)   # [units, P] ascending
    >>> neg = np.sort(np.random.rand(5, 100).astype(np.float32), axis=1)  # [units, N] ascending
    >>> ap = ap_sorted_rows(pos, neg, np.empty((5, 0), np.float32))       # float64 [units]

Sorting is left to NumPy (its SIMD sort is several times faster than numba's or torch's on the CPU);
numba runs what NumPy cannot do without extra passes, in parallel over units:

* :func:`gather_columns` copies chosen columns of a unit-major (or any-strided) matrix into a
  contiguous ``[units, k]`` block and reports whether every value was finite, so a separate
  ``isfinite`` pass (and its temporary) is not needed.
* :func:`ap_sorted_rows` counts, for each sorted positive, the negatives below it with a branch-free
  linear merge, four units interleaved so their dependency chains overlap, then sums the precisions
  with tie groups resolved as sklearn does. Negatives may come sorted in blocks (``neg_block``).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, cache=True, nogil=True)
def gather_columns(src: np.ndarray, cols: np.ndarray, out: np.ndarray) -> bool:
    """``out[u, j] = src[u, cols[j]]`` (cast to ``out``'s dtype); True if every value is finite.

    ``src`` may have any strides: a unit-major matrix, or the transposed view of a sentence-major
    one (consecutive units then share cache lines, so the reads still stream).
    """
    bad = 0
    for u in numba.prange(src.shape[0]):
        row = src[u]
        target = out[u]
        row_bad = 0
        for j in range(cols.shape[0]):
            x = row[cols[j]]
            if not np.isfinite(x):
                row_bad = 1
            target[j] = x
        bad += row_bad
    return bad == 0


@numba.njit(parallel=True, cache=True, nogil=True)
def all_finite(values: np.ndarray) -> bool:
    """True if no entry of the 2-D array is NaN or ±inf (parallel over rows)."""
    bad = 0
    for r in numba.prange(values.shape[0]):
        row_bad = 0
        row = values[r]
        for j in range(row.shape[0]):
            if not np.isfinite(row[j]):
                row_bad = 1
        bad += row_bad
    return bad == 0


@numba.njit(inline="always")
def _precision_mean(pos, below, excl, n_pos, n_neg, n_excl):
    """Mean precision over positives; ``below[i]`` = negatives < ``pos[i]``, minus ``excl``'s."""
    group = 0
    total = 0.0
    previous = pos[0]
    ke = 0
    for i in range(n_pos):
        value = pos[i]
        group = group if value == previous else i  # first index of value's tie group
        previous = value
        while ke < n_excl and excl[ke] < value:
            ke += 1
        tp = n_pos - group  # positives >= value (whole tie group included)
        fp = (n_neg - below[i]) - (n_excl - ke)  # negatives >= value, excluded ones removed
        total += tp / (tp + fp)
    return total / n_pos


@numba.njit(inline="always")
def _merge4(p0, p1, p2, p3, n0, n1, n2, n3, b0, b1, b2, b3):
    """``b*[i]`` = entries of ``n*`` below ``p*[i]`` for four independent (pos, neg) row pairs.

    Each step compares the two cursors' heads and advances one of them, without a branch; a single
    merge then waits on its own loads every step, so four run interleaved to overlap that latency.
    """
    n_pos = p0.shape[0]
    n_neg = n0.shape[0]
    last_neg = n_neg - 1
    last_pos = n_pos - 1
    i0 = i1 = i2 = i3 = 0
    k0 = k1 = k2 = k3 = 0
    for _ in range(n_pos + n_neg):
        t0 = (k0 < n_neg) and (i0 >= n_pos or n0[min(k0, last_neg)] < p0[min(i0, last_pos)])
        t1 = (k1 < n_neg) and (i1 >= n_pos or n1[min(k1, last_neg)] < p1[min(i1, last_pos)])
        t2 = (k2 < n_neg) and (i2 >= n_pos or n2[min(k2, last_neg)] < p2[min(i2, last_pos)])
        t3 = (k3 < n_neg) and (i3 >= n_pos or n3[min(k3, last_neg)] < p3[min(i3, last_pos)])
        b0[i0] = k0  # b* have n_pos + 1 slots: the last absorbs stores once positives run out
        b1[i1] = k1
        b2[i2] = k2
        b3[i3] = k3
        k0 += t0
        k1 += t1
        k2 += t2
        k3 += t3
        i0 += 1 - t0
        i1 += 1 - t1
        i2 += 1 - t2
        i3 += 1 - t3


_CHUNKS = 256  # work items for prange: enough to balance threads, few enough to amortise scratch


@numba.njit(parallel=True, cache=True, nogil=True)
def ap_sorted_rows(
    sorted_pos: np.ndarray,
    sorted_neg: np.ndarray,
    sorted_excluded: np.ndarray,
    neg_block: int = 0,
) -> np.ndarray:
    """AP per row; rows of every argument sorted ascending; ``sorted_excluded`` ⊆ negatives.

    ``neg_block`` > 0 says each negative row is sorted only within consecutive blocks of that many
    entries (NumPy sorts rows of ≤ 512 floats several times faster than longer ones, so a one-off
    AP sorts blocks and merges the positives into each). For positive ``i`` with ``tp`` positives
    and ``fp`` (non-excluded) negatives scoring at least its value, AP is the mean of
    ``tp / (tp + fp)`` — sklearn's step-wise average precision.
    """
    n_units, n_pos = sorted_pos.shape
    n_neg = sorted_neg.shape[1]
    n_excl = sorted_excluded.shape[1]
    block = n_neg if neg_block <= 0 or neg_block >= n_neg else neg_block
    n_blocks = (n_neg + block - 1) // block
    out = np.empty(n_units, dtype=np.float64)
    n_chunks = min(_CHUNKS, n_units)
    for c in numba.prange(n_chunks):
        below = np.zeros((4, n_pos + 1), dtype=np.int64)
        part = np.empty((4, n_pos + 1), dtype=np.int64)
        lo = c * n_units // n_chunks
        hi = (c + 1) * n_units // n_chunks
        for u in range(lo, hi, 4):
            # the last group of a chunk may be short: repeat its last unit, computed but unused
            r0 = u
            r1 = min(u + 1, hi - 1)
            r2 = min(u + 2, hi - 1)
            r3 = min(u + 3, hi - 1)
            for b in range(n_blocks):
                start = b * block
                stop = min(n_neg, start + block)
                target = below if b == 0 else part
                _merge4(
                    sorted_pos[r0],
                    sorted_pos[r1],
                    sorted_pos[r2],
                    sorted_pos[r3],
                    sorted_neg[r0, start:stop],
                    sorted_neg[r1, start:stop],
                    sorted_neg[r2, start:stop],
                    sorted_neg[r3, start:stop],
                    target[0],
                    target[1],
                    target[2],
                    target[3],
                )
                if b > 0:
                    for j in range(4):
                        for i in range(n_pos):
                            below[j, i] += part[j, i]
            for j in range(min(4, hi - u)):
                out[u + j] = _precision_mean(
                    sorted_pos[u + j], below[j], sorted_excluded[u + j], n_pos, n_neg, n_excl
                )
    return out
