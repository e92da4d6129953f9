"""Outputs appear whole or not at all, and with the mode the umask gives new files (a shared
project folder's group can read shards and tables), whichever writer made them."""

from __future__ import annotations

import os
import stat

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from expertalign.analysis.figures import save_figure
from expertalign.atomic import atomic_path
from expertalign.sentences import sentences_frame, write_sentences_atomic
from expertalign.storage import expertise_table, write_table_atomic


@pytest.fixture(params=[0o022, 0o002, 0o077])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_writer_gives_the_umasks_mode(tmp_path, umask):
    table = expertise_table(["cat"], np.zeros((1, 3), np.float32), n_pos=[1], n_neg=[1])
    write_table_atomic(table, tmp_path / "shard.arrow")
    write_table_atomic(pa.Table.from_pandas(pd.DataFrame({"a": [1]})), tmp_path / "t.csv")
    write_sentences_atomic(
        sentences_frame("cat", ["A cat sat."], "facts", "test"), tmp_path / "cat.parquet"
    )
    fig, _ = plt.subplots()
    save_figure(fig, tmp_path / "figure.png")
    for name in ("shard.arrow", "t.csv", "cat.parquet", "figure.png"):
        assert _mode(tmp_path / name) == 0o666 & ~umask, name
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_error_inside_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="midway"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("midway")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_the_file_is_flushed_before_it_appears(tmp_path, monkeypatch):
    """fsync runs on the temporary file before the rename (and on the folder after it)."""
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(
        os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1]
    )
    with atomic_path(tmp_path / "x.txt") as tmp:
        tmp.write_text("data")
    assert events[:2] == ["fsync", "replace"]
    assert (tmp_path / "x.txt").read_text() == "data"
