"""Output files that appear whole or not at all, on disk, readable as the umask says.

    >>> from expertalign.atomic import atomic_path
    >>> with atomic_path("results/tables/alignment.parquet") as tmp:
    ...     frame.to_parquet(tmp)              # written under a temporary name in the same folder

On success the temporary file is flushed to disk (fsync), given the mode a newly created file
gets under the process's umask (``mkstemp`` makes it 0600, which would hide shards and tables
from the other members of a shared project folder), renamed over the target, and the folder's
entry is flushed too, so a node crash right after a job ends cannot leave an empty "finished"
file. On any error, a kill included, the temporary file is removed and the target is untouched.

A folder of files written together (a converted model) goes the same way, as a whole:

    >>> from expertalign.atomic import atomic_dir
    >>> with atomic_dir(target, finished=lambda t: (t / "config.json").exists()) as staging:
    ...     model.save_pretrained(staging)     # a temporary folder next to ``target``

It is renamed onto ``target`` when the block ends; if another process got there first (the rename
fails and ``finished(target)`` says its folder is complete), that folder is kept. The temporary
folder is removed whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = ["atomic_dir", "atomic_path", "new_file_mode"]


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
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync(tmp)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, target)
    except BaseException:
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
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        yield staging
        try:
            os.replace(staging, target)
        except OSError:
            if finished is None or not finished(target):  # lost a race only if one finished
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
