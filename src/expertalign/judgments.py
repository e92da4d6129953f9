"""Human similarity judgments a run can use: the configured sets, restricted to the concepts.

Usage::

    from expertalign.judgments import read_men, read_word_pairs, pairs_in_vocabulary

    men = read_men("../shared/data", split="test")        # 1000 pairs, natural form
    kept = pairs_in_vocabulary(men, {"sun", "car", "water"})
    kept.attrs["vocabulary_filter"]   # counts of what was dropped and why
    judged = read_judgment_set("men", {"split": "test"}, "../shared/data")  # a config entry
    judged_among(judged, {"sun", "car"}, "men", judgment_source("men", {"split": "test"}, ".."))

The file readers (:func:`read_men`, :func:`read_word_pairs`, :class:`JudgmentFileError`, ...)
live in :mod:`expertalign.judgment_files` and are importable from here too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from expertalign import judgment_files

# The file readers, re-exported: callers import what they need about judgments from here.
from expertalign.judgment_files import (
    MEN_FILES,
    MEN_POS,  # noqa: F401 - re-exported (judgment_files.__all__)
    JudgmentFileError,
    men_dir,
    men_lemma_forms,  # noqa: F401 - re-exported
    men_parts_of_speech,  # noqa: F401 - re-exported
    read_men,
    read_word_pairs,
)

__all__ = [
    *judgment_files.__all__,
    "pairs_in_vocabulary",
    "read_judgment_set",
    "judgment_source",
    "judged_among",
    "check_judged_pairs",
    "MIN_JUDGED_PAIRS",
]

# Spearman's rho, its bootstrap and Williams' test (experts vs a baseline on the same pairs,
# n > 3) need at least this many pairs.
MIN_JUDGED_PAIRS = 4

log = logging.getLogger(__name__)


def pairs_in_vocabulary(pairs: pd.DataFrame, words: Iterable[str]) -> pd.DataFrame:
    """Keep the pairs whose two words are both in ``words`` (case-insensitive).

    Also drops self-pairs (same word twice, ignoring case) and repeated unordered pairs (the first
    occurrence is kept). Words keep the casing of ``pairs``; the index is reset. The counts are
    logged and stored in ``result.attrs["vocabulary_filter"]`` as a dict with keys ``n_input``,
    ``n_out_of_vocabulary``, ``n_self_pairs``, ``n_duplicates``, ``n_kept``.
    """
    missing = [c for c in ("word1", "word2") if c not in pairs.columns]
    if missing:
        raise ValueError(f"pairs lacks column(s) {missing}; has {list(pairs.columns)}")
    if isinstance(words, str):
        raise TypeError("words must be a collection of words, not a single string")
    vocab = {str(w).lower() for w in words}
    a = pairs["word1"].astype(str).str.lower().to_numpy()
    b = pairs["word2"].astype(str).str.lower().to_numpy()

    in_vocab = [x in vocab and y in vocab for x, y in zip(a, b)]
    n_oov = len(a) - sum(in_vocab)
    keep: list[int] = []
    seen: set[tuple[str, str]] = set()
    n_self = 0
    n_dup = 0
    for i, (x, y, ok) in enumerate(zip(a, b, in_vocab)):
        if not ok:
            continue
        if x == y:
            n_self += 1
            continue
        key = (x, y) if x <= y else (y, x)
        if key in seen:
            n_dup += 1
            continue
        seen.add(key)
        keep.append(i)
    out = pairs.iloc[keep].reset_index(drop=True)
    counts = {
        "n_input": int(len(pairs)),
        "n_out_of_vocabulary": int(n_oov),
        "n_self_pairs": int(n_self),
        "n_duplicates": int(n_dup),
        "n_kept": int(len(out)),
    }
    out.attrs["vocabulary_filter"] = counts
    log.info(
        "pairs_in_vocabulary: kept %(n_kept)d of %(n_input)d pairs "
        "(%(n_out_of_vocabulary)d out of vocabulary, %(n_self_pairs)d self-pairs, "
        "%(n_duplicates)d duplicates)",
        counts,
    )
    return out


def judgment_source(name: str, spec: Mapping[str, Any], data_dir: str | os.PathLike[str]) -> str:
    """Where a configured judgment set is read from, for messages."""
    if "path" in spec:
        return str(spec["path"])
    split = spec.get("split", "test")
    try:
        folder = men_dir(data_dir)
    except JudgmentFileError:
        folder = Path(data_dir) / "MEN"
    name_of = MEN_FILES["natural_full" if split == "full" else f"lemma_{split}"]
    return f"{folder / name_of}, MEN {split} split"


def read_judgment_set(
    name: str, spec: Mapping[str, Any], data_dir: str | os.PathLike[str]
) -> pd.DataFrame:
    """A configured judgment set (config ``alignment.judgments.<name>``): a word-pair file
    with a column mapping, or MEN from ``data_dir`` with a split."""
    if "path" in spec:
        return read_word_pairs(
            spec["path"],
            word1=spec.get("word1", "word1"),
            word2=spec.get("word2", "word2"),
            score=spec.get("score", "score"),
        )
    if str(name).lower() != "men":
        raise ValueError(
            f"config key alignment.judgments.{name}: give a path (only 'men' is read from data_dir)"
        )
    return read_men(data_dir, spec.get("split", "test"))


def judged_among(
    pairs: pd.DataFrame,
    words: Iterable[str],
    name: str,
    source: str,
    minimum: int = MIN_JUDGED_PAIRS,
) -> pd.DataFrame:
    """:func:`pairs_in_vocabulary`, refusing fewer than ``minimum`` pairs with a message that
    names the judgment set and its file (a correlation of two pairs means nothing)."""
    words = list(words)
    kept = pairs_in_vocabulary(pairs, words)
    if len(kept) < minimum:
        raise JudgmentFileError(
            f"judgment set '{name}' ({source}): {len(kept)} of its {len(pairs)} pairs have both "
            f"words among the {len(words)} concepts, need at least {minimum}; add concepts "
            "for judged words or use another judgment set"
        )
    return kept


def check_judged_pairs(
    judgments: Mapping[str, Mapping[str, Any]],
    data_dir: str | os.PathLike[str],
    words: Iterable[str],
) -> None:
    """For the dry run: every configured judgment set's file is there, readable, and has enough
    pairs among the concepts' ``words``. A missing file is named with its config key here: on a
    finished run, a judgment set added with a missing file would otherwise plan nothing."""
    words = list(words)
    for name, spec in judgments.items():
        key = f"alignment.judgments.{name}" + (".path" if "path" in spec else "")
        where = "" if "path" in spec else " (MEN is read from config key data_dir)"
        try:
            pairs = read_judgment_set(name, spec, data_dir)
        except JudgmentFileError as err:
            raise JudgmentFileError(f"config key {key}{where}: {err}") from None
        judged_among(pairs, words, name, judgment_source(name, spec, data_dir))
