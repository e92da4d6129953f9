"""Outputs appear whole or not at all, and with the mode the umask gives new files (a shared
project folder's group can read shards and tables), whichever writer made them."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from expertalign.analysis.figures import save_figure
from expertalign.atomic import _Uninterrupted, atomic_dir, atomic_path, interrupt
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


class _Signalled(BaseException):
    """What a signal handler raises (runtime.JobTerminated is a SystemExit)."""


def test_a_signal_right_after_the_temporary_is_created_still_removes_it(tmp_path, monkeypatch):
    """A handler's exception lands between two bytecodes, here between ``mkstemp`` returning
    and the ``try`` that removes its file: :func:`interrupt` holds it until ``tmp`` is named."""
    real_mkstemp, real_mkdtemp = tempfile.mkstemp, tempfile.mkdtemp

    def mkstemp(*args, **kwargs):
        made = real_mkstemp(*args, **kwargs)
        interrupt(_Signalled())
        return made

    def mkdtemp(*args, **kwargs):
        made = real_mkdtemp(*args, **kwargs)
        interrupt(_Signalled())
        return made

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    with pytest.raises(_Signalled), atomic_path(tmp_path / "out.txt"):
        pytest.fail("the block must not start")
    with pytest.raises(_Signalled), atomic_dir(tmp_path / "model"):
        pytest.fail("the block must not start")
    assert list(tmp_path.iterdir()) == []


def test_a_signal_during_the_removal_does_not_cut_it_short(tmp_path, monkeypatch):
    real_unlink, real_rmtree = Path.unlink, shutil.rmtree

    def unlink(self, *args, **kwargs):
        interrupt(_Signalled())
        return real_unlink(self, *args, **kwargs)

    def rmtree(*args, **kwargs):
        interrupt(_Signalled())
        return real_rmtree(*args, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    with pytest.raises(_Signalled) as raised, atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("the job's own error")
    assert isinstance(raised.value.__context__, RuntimeError)  # the signal wins, chained
    with pytest.raises(_Signalled), atomic_dir(tmp_path / "model") as staging:
        (staging / "config.json").write_text("{")
    assert list(tmp_path.iterdir()) == [tmp_path / "model"]  # renamed, then the signal
    assert (tmp_path / "model" / "config.json").read_text() == "{"


def test_interrupt_raises_at_once_outside_those_steps():
    first, second = _Signalled("first"), _Signalled("second")
    with pytest.raises(_Signalled, match="first"):
        interrupt(first)
    with pytest.raises(_Signalled, match="first"), _Uninterrupted():
        interrupt(first)
        interrupt(second)  # a repeat while the first waits: the first is raised
    with _Uninterrupted():
        pass  # nothing waited: nothing raised
