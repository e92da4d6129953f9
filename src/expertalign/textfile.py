"""UTF-8 text files as users write them: a byte-order mark is dropped, a bad byte is named.

    >>> from expertalign.textfile import NotUTF8Error, read_utf8
    >>> text = read_utf8("config/concepts.tsv")
    >>> # on a bad byte: NotUTF8Error("…/concepts.tsv, line 9: not UTF-8 text (byte 0xe4); …")
    >>> # with .path, .line (1-based, counted in newlines as an editor shows them) and .byte

Readers of concept tables, sentence files and judgment files call this and, where they have an
error type of their own, re-raise with ``.line`` and ``.byte`` in their own message format.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["NotUTF8Error", "read_utf8"]


class NotUTF8Error(ValueError):
    """A file is not UTF-8; ``line`` is where the first bad ``byte`` is."""

    def __init__(self, path: Path, line: int, byte: int) -> None:
        self.path, self.line, self.byte = path, line, byte
        super().__init__(
            f"{path}, line {line}: not UTF-8 text (byte 0x{byte:02x}); save the file as UTF-8"
        )


def read_utf8(path: str | os.PathLike[str]) -> str:
    """The file's text without a UTF-8 byte-order mark; raises :class:`NotUTF8Error`."""
    path = Path(path)
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise NotUTF8Error(path, line, data[exc.start]) from None
