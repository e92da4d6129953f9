"""Reading human similarity judgments: MEN with its official split, and any word-pair file.

Usage::

    from expertalign.judgment_files import read_men, read_word_pairs, men_parts_of_speech

    men = read_men("../shared/data", split="test")        # 1000 pairs, natural form
    simlex = read_word_pairs("SimLex-999.txt", word1="word1", word2="word2",
                             score="SimLex999", sep="\\t")
    pos = men_parts_of_speech("../shared/data")           # {"sun": "noun", ...}
    lemmas = men_lemma_forms("../shared/data")            # {"eyes": ("eye", "noun"), ...}

(all of them are also importable from :mod:`expertalign.judgments`, which selects the pairs a
run can use.)

Both readers return a DataFrame with columns ``word1`` (str), ``word2`` (str), ``score``
(float64) in file order. Malformed input raises :class:`JudgmentFileError`, whose message names
the file, the 1-based line number and the column.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import pandas as pd

from expertalign.textfile import NotUTF8Error, read_utf8

__all__ = [
    "JudgmentFileError",
    "MEN_FILES",
    "MEN_POS",
    "men_dir",
    "read_men",
    "men_parts_of_speech",
    "men_lemma_forms",
    "read_word_pairs",
]

MEN_FILES = {
    "natural_full": "MEN_dataset_natural_form_full",
    "lemma_full": "MEN_dataset_lemma_form_full",
    "lemma_dev": "MEN_dataset_lemma_form.dev",
    "lemma_test": "MEN_dataset_lemma_form.test",
    "derived_dev": "DERIVED_natural_form.dev",
    "derived_test": "DERIVED_natural_form.test",
}
#: part of speech of a MEN lemma's tag (``sun-n``)
MEN_POS = {"n": "noun", "v": "verb", "j": "adjective"}


class JudgmentFileError(ValueError):
    """A judgment file is missing, malformed or inconsistent; the message says where."""


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "word1": pd.Series([], dtype=object),
            "word2": pd.Series([], dtype=object),
            "score": pd.Series([], dtype="float64"),
        }
    )


def _frame(w1: list[str], w2: list[str], score: list[float]) -> pd.DataFrame:
    if not w1:
        return _empty()
    # object dtype keeps plain Python str regardless of pandas' default string backend
    return pd.DataFrame(
        {
            "word1": pd.Series(w1, dtype=object),
            "word2": pd.Series(w2, dtype=object),
            "score": pd.Series(score, dtype="float64"),
        }
    )


def _parse_score(raw: str, path: Path | str, lineno: int, column: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise JudgmentFileError(
            f"{path}: line {lineno}, column {column!r}: score {raw!r} is not a number"
        ) from None
    if not math.isfinite(value):
        raise JudgmentFileError(
            f"{path}: line {lineno}, column {column!r}: score {raw!r} is not finite"
        )
    return value


def _read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file (a byte-order mark dropped); a bad byte is reported by line."""
    try:
        text = read_utf8(path)
    except NotUTF8Error as err:
        raise JudgmentFileError(
            f"{path}: line {err.line}: not UTF-8 text (byte 0x{err.byte:02x}); save the file "
            "as UTF-8"
        ) from None
    # split on newlines only, as an editor numbers lines (splitlines also breaks at \x1c etc.)
    return [line.rstrip("\r") for line in text.split("\n")]


def _read_space_triples(path: Path) -> tuple[list[str], list[str], list[str]]:
    """Read a headerless ``word1 word2 score`` file (MEN layout); scores kept as raw text."""
    if not path.is_file():
        raise JudgmentFileError(f"{path}: file not found")
    w1: list[str] = []
    w2: list[str] = []
    raw: list[str] = []
    for lineno, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 3:
            raise JudgmentFileError(
                f"{path}: line {lineno}: expected 3 space-separated fields "
                f"(word1 word2 score), found {len(fields)}: {line.rstrip()!r}"
            )
        _parse_score(fields[2], path, lineno, "score")
        w1.append(fields[0])
        w2.append(fields[1])
        raw.append(fields[2])
    return w1, w2, raw


def men_dir(data_dir: str | os.PathLike[str]) -> Path:
    """The folder holding the MEN files: ``data_dir`` itself or ``data_dir/MEN``."""
    base = Path(data_dir)
    if (base / MEN_FILES["natural_full"]).is_file():
        return base
    if (base / "MEN" / MEN_FILES["natural_full"]).is_file():
        return base / "MEN"
    raise JudgmentFileError(
        f"{base}: no {MEN_FILES['natural_full']} here or in {base / 'MEN'}; "
        "point data_dir at the data folder or at the MEN folder"
    )


def _aligned_full_files(
    folder: Path,
) -> tuple[tuple[list[str], list[str], list[str]], tuple[list[str], list[str], list[str]]]:
    """The natural-form and lemma-form full files of ``folder``, checked to be line-aligned."""
    n1, n2, nraw = _read_space_triples(folder / MEN_FILES["natural_full"])
    l1, l2, lraw = _read_space_triples(folder / MEN_FILES["lemma_full"])
    if len(l1) != len(n1):
        raise JudgmentFileError(
            f"{folder}: {MEN_FILES['lemma_full']} has {len(l1)} pairs but "
            f"{MEN_FILES['natural_full']} has {len(n1)}; they must be line-aligned"
        )
    for i, (a, b) in enumerate(zip(lraw, nraw)):
        if float(a) != float(b):
            raise JudgmentFileError(
                f"{folder}: line {i + 1}: lemma and natural full files disagree on the score "
                f"({a} vs {b}); they must be line-aligned"
            )
    return (n1, n2, nraw), (l1, l2, lraw)


def read_men(data_dir: str | os.PathLike[str], split: str = "test") -> pd.DataFrame:
    """MEN pairs in natural form (``sun sunlight 50``), scores on the 0–50 scale.

    ``split`` is ``"test"`` (1000 pairs, the one to report), ``"dev"`` (2000) or ``"full"``
    (3000). The authors define the split on the lemma-form files only; the natural form of a
    lemma-split line is the natural-form line at the same position in the line-aligned full
    files. Rows come in the order of the split file.
    """
    if split not in ("test", "dev", "full"):
        raise ValueError(f"split must be 'test', 'dev' or 'full', not {split!r}")
    folder = men_dir(data_dir)
    if split == "full":
        n1, n2, nraw = _read_space_triples(folder / MEN_FILES["natural_full"])
        return _frame(n1, n2, [float(s) for s in nraw])

    (n1, n2, nraw), (l1, l2, lraw) = _aligned_full_files(folder)
    position = {(a, b): i for i, (a, b) in enumerate(zip(l1, l2))}
    if len(position) != len(l1):
        raise JudgmentFileError(f"{folder / MEN_FILES['lemma_full']}: repeated lemma pairs")

    split_path = folder / MEN_FILES[f"lemma_{split}"]
    s1, s2, sraw = _read_space_triples(split_path)
    w1: list[str] = []
    w2: list[str] = []
    score: list[float] = []
    for lineno, (a, b, raw) in enumerate(zip(s1, s2, sraw), start=1):
        i = position.get((a, b))
        if i is None:
            raise JudgmentFileError(
                f"{split_path}: line {lineno}: pair {a} {b} is not in {MEN_FILES['lemma_full']}"
            )
        if float(raw) != float(lraw[i]):
            raise JudgmentFileError(
                f"{split_path}: line {lineno}: score {raw} differs from the full file's {lraw[i]}"
            )
        w1.append(n1[i])
        w2.append(n2[i])
        score.append(float(raw))
    return _frame(w1, w2, score)


def men_lemma_forms(data_dir: str | os.PathLike[str]) -> dict[str, tuple[str, str]]:
    """The lemma and part of speech (``MEN_POS``) of every MEN natural-form word, from the
    line-aligned lemma-form file (``eyes`` -> ``("eye", "noun")``, ``born`` -> ``("bear",
    "verb")``); a word with several lemmas keeps the one of its first line."""
    folder = men_dir(data_dir)
    (n1, n2, _), (l1, l2, _) = _aligned_full_files(folder)
    forms: dict[str, tuple[str, str]] = {}
    for lineno, natural, lemmas in zip(range(1, len(n1) + 1), zip(n1, n2), zip(l1, l2)):
        for word, lemma in zip(natural, lemmas):
            base, _, tag = lemma.rpartition("-")
            if tag not in MEN_POS or not base:
                raise JudgmentFileError(
                    f"{folder / MEN_FILES['lemma_full']}: pair {lineno}: unknown part-of-speech "
                    f"tag in {lemma!r} (known: {', '.join(MEN_POS)})"
                )
            forms.setdefault(word, (base, MEN_POS[tag]))
    return forms


def men_parts_of_speech(data_dir: str | os.PathLike[str]) -> dict[str, str]:
    """Part of speech (``MEN_POS``: noun, verb, adjective) of every MEN natural-form word, from
    the tag of the lemma at the same place of the line-aligned lemma-form file (``sun-n``); a
    word with several tags keeps the one of its first line."""
    return {word: pos for word, (_, pos) in men_lemma_forms(data_dir).items()}


def _sniff_sep(first_line: str) -> str | None:
    if "\t" in first_line:
        return "\t"
    if "," in first_line:
        return ","
    if ";" in first_line:
        return ";"
    return None  # runs of whitespace


def _split(line: str, sep: str | None) -> list[str]:
    if sep is None:
        return line.split()
    return [f.strip() for f in next(csv.reader([line], delimiter=sep))]


def read_word_pairs(
    path: str | os.PathLike[str],
    word1: str | int = "word1",
    word2: str | int = "word2",
    score: str | int = "score",
    sep: str | None = None,
) -> pd.DataFrame:
    """Read a word-pair judgment file into ``word1, word2, score``.

    Column names select columns of a file with a header row. If all three selectors are ints the
    file is taken as headerless and they are 0-based field positions (e.g. MEN: 0, 1, 2).
    ``sep=None`` picks tab, comma or semicolon from the first non-empty line, else runs of
    whitespace. Blank lines are skipped; lines starting with ``#`` before the header are comments.
    Fields are stripped of surrounding spaces; words are kept as written.
    """
    p = Path(path)
    if not p.is_file():
        raise JudgmentFileError(f"{p}: file not found")
    selectors = (word1, word2, score)
    headerless = all(isinstance(s, int) for s in selectors)
    if not headerless and any(isinstance(s, int) for s in selectors):
        raise ValueError("word1, word2 and score must be all column names or all positions")

    lines = [(i, ln) for i, ln in enumerate(_read_lines(p), start=1)]
    body = [(i, ln) for i, ln in lines if ln.strip()]
    if not headerless:
        while body and body[0][1].lstrip().startswith("#"):
            body = body[1:]
    if not body:
        raise JudgmentFileError(f"{p}: no data (empty file)")
    if sep is None:
        sep = _sniff_sep(body[0][1])

    names = ["word1", "word2", "score"]
    if headerless:
        positions = [int(s) for s in selectors]  # type: ignore[arg-type]
        n_fields = None
    else:
        header_line, header = body[0][0], _split(body[0][1], sep)
        body = body[1:]
        missing = [s for s in selectors if s not in header]
        if missing:
            raise JudgmentFileError(
                f"{p}: line {header_line}: missing column(s) {missing}; header has {header}"
            )
        positions = [header.index(s) for s in selectors]  # type: ignore[arg-type]
        names = [str(s) for s in selectors]
        n_fields = len(header)

    need = max(positions) + 1
    w1: list[str] = []
    w2: list[str] = []
    scores: list[float] = []
    for lineno, line in body:
        fields = _split(line, sep)
        if n_fields is not None and len(fields) != n_fields:
            raise JudgmentFileError(
                f"{p}: line {lineno}: expected {n_fields} fields like the header, "
                f"found {len(fields)}: {line!r}"
            )
        if len(fields) < need:
            raise JudgmentFileError(
                f"{p}: line {lineno}: expected at least {need} fields, found {len(fields)}: "
                f"{line!r}"
            )
        a, b = fields[positions[0]], fields[positions[1]]
        for value, name in ((a, names[0]), (b, names[1])):
            if not value:
                raise JudgmentFileError(f"{p}: line {lineno}, column {name!r}: empty word")
        w1.append(a)
        w2.append(b)
        scores.append(_parse_score(fields[positions[2]], p, lineno, names[2]))
    return _frame(w1, w2, scores)
