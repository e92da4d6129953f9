"""Arrow/Parquet files for AP vectors and tables, written atomically.

    >>> from expertalign.storage import write_table_atomic, expertise_table, read_expertise
    >>> table = expertise_table(["cat", "dog"], ap_matrix, n_pos=[400, 400], n_neg=[1000, 1000],
    ...                         metadata={"model": "pythia-70m", "revision": "step512"})
    >>> write_table_atomic(table, "results/experts/pythia-70m/step512/shard-0000.arrow")
    >>> concepts, ap = read_expertise(["results/experts/pythia-70m/step512/shard-0000.arrow"])

AP vectors are stored as float32, one ``fixed_size_list<float32>[n_units]`` per concept (polars
reads it as an Array column). Not float16: near 1 its spacing is 2⁻¹¹ ≈ 0.0005, enough to move units
across τ (0.5 … 0.9 are tested with a strict ``>``); float32 keeps every τ decision of the float64
AP except for values within 6e-8 of τ. Files are written through
:func:`expertalign.atomic.atomic_path` (temporary name, fsync, the umask's mode, rename), so a
killed job never leaves a file that looks finished.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

from expertalign.atomic import atomic_path

if TYPE_CHECKING:  # pandas is imported by pyarrow's from_pandas when it is used
    import pandas as pd

__all__ = [
    "expertise_table",
    "read_expertise",
    "write_table_atomic",
    "write_frame_atomic",
    "read_table",
]


def write_table_atomic(table: pa.Table, path: str | os.PathLike) -> None:
    """Write ``table`` as Parquet (``.parquet``), Arrow IPC (``.arrow``/``.feather``/``.ipc``) or
    CSV/TSV (``.csv``/``.tsv``) atomically."""
    path = Path(path)
    if path.suffix not in (".parquet", ".arrow", ".feather", ".ipc", ".csv", ".tsv"):
        raise ValueError(f"don't know how to write {path.suffix!r} files ({path})")
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            pq.write_table(table, tmp)
        elif path.suffix in (".arrow", ".feather", ".ipc"):
            feather.write_feather(table, tmp, compression="uncompressed")
        else:
            table.to_pandas().to_csv(tmp, sep="\t" if path.suffix == ".tsv" else ",", index=False)


def write_frame_atomic(
    frame: pd.DataFrame, path: str | os.PathLike, metadata: Mapping[str, str] | None = None
) -> None:
    """:func:`write_table_atomic` for a DataFrame (its index is not written); ``metadata`` is
    added to the schema's, beside pandas' own, so the file still reads back as the same frame."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        extra = {k.encode(): v.encode() for k, v in metadata.items()}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    write_table_atomic(table, path)


def read_table(path: str | os.PathLike) -> pa.Table:
    path = Path(path)
    if path.suffix == ".parquet":
        return pq.read_table(path)
    return feather.read_table(path, memory_map=True)


def _vectors(matrix: np.ndarray) -> pa.FixedSizeListArray:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), matrix.shape[1])


def expertise_table(
    concepts: Sequence[str],
    ap: np.ndarray,
    *,
    n_pos: Sequence[int],
    n_neg: Sequence[int],
    metadata: Mapping[str, str] | None = None,
    unit_stats: Mapping[str, np.ndarray] | None = None,
) -> pa.Table:
    """One row per concept: ``concept, n_positives, n_negatives, ap`` (+ optional unit
    statistics)."""
    if ap.ndim != 2 or ap.shape[0] != len(concepts):
        raise ValueError(f"ap must be [{len(concepts)}, n_units], got {ap.shape}")
    columns = {
        "concept": pa.array(list(concepts), pa.string()),
        "n_positives": pa.array(list(n_pos), pa.int32()),
        "n_negatives": pa.array(list(n_neg), pa.int32()),
        "ap": _vectors(ap),
    }
    for name, values in (unit_stats or {}).items():
        columns[name] = _vectors(values)
    meta = {"n_units": str(ap.shape[1]), **{k: str(v) for k, v in (metadata or {}).items()}}
    return pa.table(columns).replace_schema_metadata(meta)


def read_expertise(
    paths: Sequence[str | os.PathLike], column: str = "ap"
) -> tuple[list[str], np.ndarray]:
    """Concept ids and their AP vectors ``float32 [concepts, units]`` from expertise files, in
    order."""
    concepts: list[str] = []
    blocks: list[np.ndarray] = []
    n_units = None
    for path in paths:
        table = read_table(path)
        if column not in table.column_names:
            raise KeyError(f"{path} has no column {column!r}; columns: {table.column_names}")
        vectors = table.column(column).combine_chunks()
        width = vectors.type.list_size
        if n_units is not None and width != n_units:
            raise ValueError(f"{path} has {width} units, earlier files had {n_units}")
        n_units = width
        blocks.append(vectors.flatten().to_numpy(zero_copy_only=False).reshape(-1, width))
        concepts.extend(table.column("concept").to_pylist())
    if not blocks:
        raise ValueError("no expertise files given")
    return concepts, np.concatenate(blocks, axis=0)
