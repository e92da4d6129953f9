"""Output files that appear whole or not at all, on disk, readable as the umask says.

    >>> from expertalign.atomic import atomic_path
    >>> with atomic_path("results/tables/alignment.parquet") as tmp:
    ...     frame.to_parquet(tmp)              # written under a temporary name in the same folder

On success the temporary file is flushed to disk (fsync), given the mode a newly created file
gets under the process's umask (``mkstemp`` makes it 0600, which would hide shards and tables
from the other members of a shared project folder), renamed over the target, and the folder's
entry is flushed too, so a node crash right after a job ends cannot leave an empty "finished"
file. On any error, a kill included, the temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "new_file_mode"]


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
