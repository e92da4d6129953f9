"""The AP vectors of a run's expert shards as one matrix that is read, not loaded.

    >>> from expertalign.apmatrix import APMatrix
    >>> ap = APMatrix(["results/experts/pythia-70m/step512/shard-0000.arrow", ...])
    >>> ap.concepts, ap.shape                 # ['cat', ...], (n_concepts, n_units)
    >>> block = ap[:, 0:65536]                 # float32 [concepts, 65536]: only these columns read
    >>> rows = ap[[3, 7]]                      # float32 [2, units]: only these rows read
    >>> masks = ap.packed_masks(0.5)           # PackedMasks: 1 bit per (concept, unit)
    >>> masks.sizes(), masks.rows([3, 7])      # expert-set sizes; bool [2, units]

Each shard is an Arrow IPC file memory-mapped by the operating system, so the reductions hold
only what they ask for: a block of columns, some rows, or the expert masks packed 8 units to a
byte. At the paper's scale (1,249 concepts x 1.66 M units of Pythia-12b, 8.3 GB of float32 AP
per checkpoint) a 65,536-unit block is 327 MB and one τ's packed masks are 259 MB; pages of the
mapped files are page cache, which the kernel drops under memory pressure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow.feather as feather
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "APMatrix",
    "PackedMasks",
    "packed_jaccard",
    "bool_masks",
    "as_packed",
    "mask_rows",
    "n_mask_rows",
    "COLUMN_BLOCK_UNITS",
]

#: units per column block when a whole matrix is swept (327 MB at 1,249 concepts)
COLUMN_BLOCK_UNITS = 1 << 16


@dataclass(frozen=True)
class PackedMasks:
    """Expert masks, 8 units per byte (``np.packbits`` along units; padding bits are 0)."""

    bits: NDArray[np.uint8]  # [concepts, ceil(units / 8)]
    n_units: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.bits.shape[0], self.n_units

    @classmethod
    def pack(cls, masks: ArrayLike) -> PackedMasks:
        """Pack bool masks [concepts, units]."""
        m = np.asarray(masks, dtype=bool)
        return cls(np.packbits(m, axis=1), m.shape[1])

    def sizes(self) -> NDArray[np.int64]:
        return np.bitwise_count(self.bits).sum(axis=1, dtype=np.int64)

    def jaccard_rows(self, a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
        """Jaccard of row a[i] with row b[i] (0 when both sets are empty)."""
        return packed_jaccard(
            self.bits[np.asarray(a, dtype=np.intp)], self.bits[np.asarray(b, dtype=np.intp)]
        )

    def rows(self, index: ArrayLike) -> NDArray[np.bool_]:
        """Bool masks [len(index), units] of the given rows."""
        picked = self.bits[np.asarray(index, dtype=np.intp)]
        return np.unpackbits(picked, axis=1, count=self.n_units).astype(bool)


def packed_jaccard(first: NDArray[np.uint8], second: NDArray[np.uint8]) -> NDArray[np.float64]:
    """Jaccard of row i of ``first`` with row i of ``second``, both packed masks of the same
    units (0 when both sets are empty)."""
    inter = np.bitwise_count(first & second).sum(axis=1, dtype=np.int64)
    union = np.bitwise_count(first | second).sum(axis=1, dtype=np.int64)
    out = np.zeros(len(inter))
    np.divide(inter, union, out=out, where=union > 0)
    return out


def bool_masks(masks: ArrayLike) -> NDArray[np.bool_]:
    """``masks`` as a bool array [concepts, units]; another shape or dtype is an error."""
    m = np.asarray(masks)
    if m.ndim != 2:
        raise ValueError(f"masks must be 2-D bool [concepts, units], has shape {m.shape}")
    if m.dtype != np.bool_:
        raise ValueError(f"masks must be boolean, not {m.dtype}")
    return m


def as_packed(masks: ArrayLike | PackedMasks) -> PackedMasks:
    """Bool masks [concepts, units] packed (:class:`PackedMasks` are returned as they are)."""
    if isinstance(masks, PackedMasks):
        return masks
    return PackedMasks.pack(bool_masks(masks))


def mask_rows(masks: ArrayLike | PackedMasks, rows: Sequence[int]) -> NDArray[np.bool_]:
    """Bool masks of some rows, unpacking only those when the masks are packed."""
    if isinstance(masks, PackedMasks):
        return masks.rows(list(rows))
    return bool_masks(masks)[list(rows)]


def n_mask_rows(masks: ArrayLike | PackedMasks) -> int:
    """The number of concepts (rows) of bool or packed masks."""
    return masks.shape[0] if isinstance(masks, PackedMasks) else bool_masks(masks).shape[0]


class APMatrix:
    """AP float32 [concepts, units] of expertise files, in file order, memory-mapped."""

    def __init__(self, paths: Sequence[str | os.PathLike], column: str = "ap") -> None:
        if not paths:
            raise ValueError("no expertise files given")
        self.concepts: list[str] = []
        self._blocks: list[np.ndarray] = []
        n_units = None
        for path in paths:
            table = feather.read_table(path, memory_map=True)
            if column not in table.column_names:
                raise KeyError(f"{path} has no column {column!r}; columns: {table.column_names}")
            for chunk in table.column(column).chunks:
                width = chunk.type.list_size
                if n_units is not None and width != n_units:
                    raise ValueError(f"{path} has {width} units, earlier files had {n_units}")
                n_units = width
                values = chunk.flatten().to_numpy(zero_copy_only=chunk.null_count == 0)
                self._blocks.append(values.reshape(-1, width))
            self.concepts.extend(table.column("concept").to_pylist())
        self.n_units = int(n_units or 0)
        self._starts = np.cumsum([0] + [len(b) for b in self._blocks])

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.concepts), self.n_units

    ndim = 2
    dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return len(self.concepts)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.concatenate(self._blocks, axis=0)
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key) -> np.ndarray:
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        if isinstance(rows, slice) and rows == slice(None):
            return np.concatenate([b[:, cols] for b in self._blocks], axis=0)
        index = np.arange(len(self))[rows]
        if index.ndim == 0:
            return self._row(int(index))[cols]
        return (
            np.stack([self._row(int(i))[cols] for i in index])
            if index.size
            else (np.empty((0, self.n_units), np.float32)[:, cols])
        )

    def _row(self, i: int) -> np.ndarray:
        block = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self._blocks[block][i - self._starts[block]]

    def packed_rows(self, index: Sequence[int], tau: float) -> PackedMasks:
        """Expert masks (AP > τ) of some rows only, packed row by row as they are read."""
        bits = np.empty((len(index), (self.n_units + 7) // 8), dtype=np.uint8)
        for i, row in enumerate(index):
            bits[i] = np.packbits(self._row(int(row)) > tau)
        return PackedMasks(bits, self.n_units)

    def column_blocks(self, units: int = COLUMN_BLOCK_UNITS) -> Iterator[tuple[slice, np.ndarray]]:
        """(columns, float32 [concepts, columns]) blocks covering every unit once."""
        for start in range(0, self.n_units, units):
            columns = slice(start, min(self.n_units, start + units))
            yield columns, self[:, columns]

    def packed_masks(self, tau: float, units: int = COLUMN_BLOCK_UNITS) -> PackedMasks:
        """Expert masks (AP > τ) of every concept, packed, built one column block at a time."""
        units -= units % 8  # whole bytes per block, so blocks pack independently
        bits = np.empty((len(self), (self.n_units + 7) // 8), dtype=np.uint8)
        for columns, block in self.column_blocks(units):
            bits[:, columns.start // 8 : (columns.stop + 7) // 8] = np.packbits(block > tau, axis=1)
        return PackedMasks(bits, self.n_units)
