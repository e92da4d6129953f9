"""Output files that appear whole or not at all, on disk, readable as the umask says.

    >>> from expertalign.atomic import atomic_path
    >>> with atomic_path("results/tables/alignment.parquet") as tmp:
    ...     frame.to_parquet(tmp)              # written under a temporary name in the same folder

On success the temporary file is flushed to disk (fsync), given the mode a newly created file
gets under the process's umask (``mkstemp`` makes it 0600, which would hide shards and tables
from the other members of a shared project folder), renamed over the target, and the folder's
entry is flushed too, so a node crash right after a job ends cannot leave an empty "finished"
file. On any exception the temporary file is removed and the target is untouched.

A folder of files written together (a converted model) goes the same way, as a whole:

    >>> from expertalign.atomic import atomic_dir
    >>> with atomic_dir(target, finished=lambda t: (t / "config.json").exists()) as staging:
    ...     model.save_pretrained(staging)     # a temporary folder next to ``target``

It is renamed onto ``target`` when the block ends; if another process got there first (the rename
fails and ``finished(target)`` says its folder is complete), that folder is kept. The temporary
folder is removed whatever happens.

Kills. Python's default SIGTERM (SLURM at a time limit or ``scancel``, Snakemake stopping its
jobs) and SIGHUP end the process without unwinding ``with`` blocks, which would leave the hidden
``.<name>.<random>.tmp`` file or ``.<name>-<random>`` folder behind.
:func:`expertalign.jobs.runtime.start_job` therefore turns those signals into an exception
(``JobTerminated``); the handler raises it through :func:`interrupt`, which holds it back while
a block is creating or removing its temporary, so that an exception landing at any moment can
neither orphan a file just created nor cut its removal short:

    >>> from expertalign.atomic import interrupt
    >>> def on_sigterm(signum, frame):
    ...     interrupt(JobTerminated(signum))   # raised now, or as soon as that step is done

SIGKILL cannot be caught: a job whose main thread sits in one C call longer than SLURM's
KillWait (30 s by default) after the SIGTERM can still leave a temporary. Those names start with
a dot and never match an output, so they cost only disk space.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["atomic_dir", "atomic_path", "interrupt", "new_file_mode"]


class _Held(threading.local):
    """Per thread: how deep it is in steps an :func:`interrupt` waits for, and what waits.

    Python runs signal handlers in the main thread, so only the main thread's values matter to
    a handler; per thread, so that another thread's step never delays the main thread's one."""

    depth = 0
    pending: BaseException | None = None


_held = _Held()


def interrupt(error: BaseException) -> None:
    """Raise ``error`` now, or, if this thread is creating or removing an atomic block's
    temporary file or folder, as soon as that step is done (the first one given wins).

    For signal handlers, whose exception can land between any two bytecodes: between
    ``mkstemp`` returning and the ``try`` that would remove its file, or in the middle of that
    removal."""
    if _held.depth:
        if _held.pending is None:
            _held.pending = error
        return
    raise error


class _Uninterrupted:
    """A step that :func:`interrupt` waits for: on leaving the outermost one, what it was given
    meanwhile is raised."""

    def __enter__(self) -> None:
        _held.depth += 1

    def __exit__(self, *exc_info: object) -> None:
        _held.depth -= 1
        if not _held.depth and _held.pending is not None:
            error, _held.pending = _held.pending, None
            raise error


def new_file_mode() -> int:
    """The mode ``open(path, "w")`` would give a new file under the current umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path to write; it becomes ``path`` when the block ends without an error."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp: Path | None = None
    try:
        with _Uninterrupted():  # the file exists only once ``tmp`` names it for the except
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            tmp = Path(name)
            os.close(fd)
        yield tmp
        _fsync(tmp)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, target)
    except BaseException:
        with _Uninterrupted():
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # some file systems refuse fsync on a directory
        _fsync(target.parent, directory=True)


@contextlib.contextmanager
def atomic_dir(
    path: str | os.PathLike[str], *, finished: Callable[[Path], bool] | None = None
) -> Iterator[Path]:
    """A temporary folder to fill; it becomes ``path`` when the block ends without an error.

    If the rename fails (``path`` exists and is not empty: another process finished first), the
    error is ignored when ``finished(path)`` is true, and raised otherwise (or without
    ``finished``). The temporary folder is removed in every case.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging: Path | None = None
    try:
        with _Uninterrupted():  # as in atomic_path: named before anything can interrupt
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        yield staging
        try:
            os.replace(staging, target)
        except OSError:
            if finished is None or not finished(target):  # lost a race only if one finished
                raise
    finally:
        with _Uninterrupted():  # a large model's folder takes a moment to remove
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
