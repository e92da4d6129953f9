"""Where the workflow keeps the outputs that other tools read back (one place for the layout).

    >>> from expertalign.paths import sentence_file, bank_file
    >>> sentence_file("results", "cat")
    'results/sentences/cat.parquet'
    >>> bank_file("results", "v1")
    'results/negatives/bank-v1.parquet'

The workflow's rules and ``expertalign experts --concept`` both build their paths here.
"""

from __future__ import annotations

import os

__all__ = ["sentence_file", "bank_file"]


def sentence_file(results: str | os.PathLike[str], concept: str) -> str:
    """A concept's positive sentences (``concept`` may be the ``{concept}`` wildcard)."""
    return f"{os.fspath(results)}/sentences/{concept}.parquet"


def bank_file(results: str | os.PathLike[str], version: str) -> str:
    """The negative bank of one ``negatives.bank_version``."""
    return f"{os.fspath(results)}/negatives/bank-{version}.parquet"
