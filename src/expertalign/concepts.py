"""Load and validate the concept table, and look up definitions in WordNet.

The table is a UTF-8 TSV with one header row (columns in docs/CONTRACTS.md)::

    concept	word	pos	definition	domain	broader
    cat	cat	noun	feline mammal usually having thick soft fur ...	animals	false
    animal	animal	noun		animals	true

Use::

    from expertalign.concepts import load_concepts, word_concepts, wordnet_definition

    df = load_concepts("config/concepts.tsv")          # raises ConceptTableError on bad rows
    word_concepts(df)                       # {"cat": "cat", ...}: judgments match by word
    wordnet_definition("table", "noun", "/usr/share/wordnet", sense=2)

Errors name the file, the line (the header is line 1, as an editor counts) and the column,
so a person can fix the table without reading code.

Human judgments (MEN, word-pair files, SPP) are matched to concepts by word, so a word (ignoring
case) names one concept only: two rows with the same word (two senses, ``bank_n`` and ``bank_v``)
are refused, since either sense would otherwise silently take every judgment of the word.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import pandas as pd

from expertalign.textfile import NotUTF8Error, read_utf8

__all__ = [
    "ConceptTableError",
    "REQUIRED_COLUMNS",
    "OPTIONAL_COLUMNS",
    "POS_VALUES",
    "load_concepts",
    "word_concepts",
    "concept_of_words",
    "wordnet_definition",
]

REQUIRED_COLUMNS: tuple[str, ...] = ("concept", "word", "pos")
OPTIONAL_COLUMNS: tuple[str, ...] = ("definition", "domain", "broader")
POS_VALUES: tuple[str, ...] = ("noun", "verb", "adjective")
CONCEPT_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
_TRUE = {"true"}
_FALSE = {"false", ""}


class ConceptTableError(ValueError):
    """A concept table that cannot be used; the message names file, line and column."""

    def __init__(self, path: str | Path, line: int, column: str, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.column = column
        self.problem = problem
        super().__init__(f"{self.path}, line {line}, column '{column}': {problem}")


def load_concepts(path: str | Path) -> pd.DataFrame:
    """Read and validate a concept TSV; return it with `definition`/`domain` ("" if absent)
    and `broader` (bool) filled, in file order (row order defines shards).

    Blank lines are skipped but still counted, so reported line numbers match the file.
    Extra columns are kept as strings. A row may end after the required columns (its optional
    fields empty); any other row with fewer fields than the header is refused, since which
    field it lacks cannot be told.
    """
    path = Path(path)
    text = _read_utf8(path)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ConceptTableError(
            path,
            1,
            "-",
            f"empty file; expected a header row with at least {', '.join(REQUIRED_COLUMNS)}",
        )
    header = [h.strip() for h in lines[0].split("\t")]
    for col in REQUIRED_COLUMNS:
        if col not in header:
            raise ConceptTableError(
                path,
                1,
                col,
                f"required column missing (header has: {', '.join(header)}; "
                "columns must be separated by tabs)",
            )
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ConceptTableError(path, 1, dupes[0], "column appears more than once in the header")

    # A shorter row may stop right after the last required column (a table of words without
    # definitions); one that stops anywhere later lost a field, and which one cannot be told.
    required_end = header[: max(header.index(c) for c in REQUIRED_COLUMNS) + 1]
    records: list[dict[str, str]] = []
    line_of_row: list[int] = []
    first_line_of_id: dict[str, int] = {}
    first_line_of_word: dict[str, tuple[int, str]] = {}
    for lineno, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        fields = raw.split("\t")
        if len(fields) > len(header):
            raise ConceptTableError(
                path,
                lineno,
                header[-1],
                f"{len(fields)} tab-separated fields but the header has {len(header)}",
            )
        if len(required_end) < len(fields) < len(header):
            _short_row(path, lineno, header, fields)
        # A row of the required fields alone (no optional ones at all) is padded with empties.
        fields = fields + [""] * (len(header) - len(fields))
        rec = {h: f.strip() for h, f in zip(header, fields)}
        for col in OPTIONAL_COLUMNS:
            rec.setdefault(col, "")
        _check_row(path, lineno, rec)
        cid = rec["concept"]
        if cid in first_line_of_id:
            raise ConceptTableError(
                path,
                lineno,
                "concept",
                f"duplicate concept id '{cid}' (first on line {first_line_of_id[cid]})",
            )
        first_line_of_id[cid] = lineno
        word = _word_key(rec["word"])
        if word in first_line_of_word:
            line, other = first_line_of_word[word]
            raise ConceptTableError(
                path,
                lineno,
                "word",
                f"word '{rec['word']}' of concept '{cid}' is also the word of concept '{other}' "
                f"(line {line}); human judgments are matched to concepts by word, so each word "
                "may name one concept: keep one sense per word",
            )
        first_line_of_word[word] = (lineno, cid)
        records.append(rec)
        line_of_row.append(lineno)

    columns = list(header) + [c for c in OPTIONAL_COLUMNS if c not in header]
    df = pd.DataFrame.from_records(records, columns=columns)
    if df.empty:
        df = pd.DataFrame({c: pd.Series(dtype=str) for c in columns})
    df["broader"] = [str(v).lower() in _TRUE for v in df["broader"]]
    df["broader"] = df["broader"].astype(bool)
    df.attrs["path"] = str(path)
    df.attrs["lines"] = line_of_row
    return df.reset_index(drop=True)


def _short_row(path: Path, lineno: int, header: list[str], fields: list[str]) -> None:
    """A row with some but not all of the optional fields: refused, since padding it at the end
    would shift every field after a missing one into the wrong column (a definition read as the
    domain, and fed to the generator's prompt)."""
    missing = header[len(fields)]
    shown = ", ".join(f"{h}={f.strip()!r}" for h, f in zip(header, fields))
    raise ConceptTableError(
        path,
        lineno,
        missing,
        f"{len(fields)} tab-separated fields but the header has {len(header)}, so a field is "
        f"missing and the ones after it would shift left (read as {shown}); write every "
        "field, an empty one as nothing between two tabs",
    )


def _read_utf8(path: Path) -> str:
    """The file's text without a UTF-8 byte-order mark; a bad byte is reported by its line."""
    try:
        return read_utf8(path)
    except NotUTF8Error as err:
        raise ConceptTableError(
            path, err.line, "-", f"not UTF-8 text (byte 0x{err.byte:02x}); save the table as UTF-8"
        ) from None


def _word_key(word: str) -> str:
    return " ".join(word.lower().split())


def word_concepts(df: pd.DataFrame) -> dict[str, str]:
    """The concept of each word (lower-case), as judgments are matched; a word shared by two
    rows raises ValueError (``load_concepts`` refuses such tables already)."""
    out: dict[str, str] = {}
    for concept, word in zip(df["concept"], df["word"]):
        key = _word_key(str(word))
        if key in out:
            raise ValueError(
                f"word '{word}' names two concepts, '{out[key]}' and '{concept}'; "
                "judgments are matched by word, so keep one sense per word"
            )
        out[key] = str(concept)
    return out


def concept_of_words(words: Mapping[str, str]) -> dict[str, str]:
    """The concept of each lower-cased word of ``words`` (concept → word), the first concept
    where two share a word: how the jobs match judged and primed word pairs to concepts."""
    out: dict[str, str] = {}
    for concept, word in words.items():
        out.setdefault(str(word).lower(), concept)
    return out


def _check_row(path: Path, lineno: int, rec: dict[str, str]) -> None:
    cid = rec["concept"]
    if not CONCEPT_ID.match(cid):
        raise ConceptTableError(
            path,
            lineno,
            "concept",
            f"bad concept id '{cid}': must match {CONCEPT_ID.pattern} "
            "(lower-case letters, digits, '_' and '-')",
        )
    if not rec["word"]:
        raise ConceptTableError(path, lineno, "word", "empty word")
    if rec["pos"] not in POS_VALUES:
        raise ConceptTableError(
            path, lineno, "pos", f"bad pos '{rec['pos']}': must be one of {', '.join(POS_VALUES)}"
        )
    broader = rec["broader"].lower()
    if broader not in _TRUE and broader not in _FALSE:
        raise ConceptTableError(
            path,
            lineno,
            "broader",
            f"bad broader value '{rec['broader']}': must be true, false or empty",
        )


# --- WordNet ------------------------------------------------------------------------------

_WN_POS = {"noun": "noun", "verb": "verb", "adjective": "adj"}
# WordNet's own detachment rules (morphy), so plural concept words ("subjects") find their lemma.
_MORPHY_RULES: dict[str, tuple[tuple[str, str], ...]] = {
    "noun": (
        ("s", ""),
        ("ses", "s"),
        ("xes", "x"),
        ("zes", "z"),
        ("ches", "ch"),
        ("shes", "sh"),
        ("men", "man"),
        ("ies", "y"),
    ),
    "verb": (
        ("s", ""),
        ("ies", "y"),
        ("es", "e"),
        ("es", ""),
        ("ed", "e"),
        ("ed", ""),
        ("ing", "e"),
        ("ing", ""),
    ),
    "adj": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
}


@lru_cache(maxsize=8)
def _index(wordnet_dir: str, wn_pos: str) -> dict[str, list[int]]:
    """lemma -> synset offsets in sense order (first = most frequent sense)."""
    out: dict[str, list[int]] = {}
    with open(Path(wordnet_dir) / f"index.{wn_pos}", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("  "):  # licence header
                continue
            fields = line.split()
            n_synsets = int(fields[2])
            out[fields[0]] = [int(x) for x in fields[-n_synsets:]]
    return out


@lru_cache(maxsize=8)
def _exceptions(wordnet_dir: str, wn_pos: str) -> dict[str, str]:
    path = Path(wordnet_dir) / f"{wn_pos}.exc"
    if not path.exists():
        return {}
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) >= 2:
                out.setdefault(fields[0], fields[1])
    return out


def _lemma_candidates(word: str, wn_pos: str, wordnet_dir: str) -> list[str]:
    key = word.strip().lower().replace(" ", "_")
    cands = [key]
    exc = _exceptions(wordnet_dir, wn_pos).get(key)
    if exc:
        cands.append(exc)
    for suffix, repl in _MORPHY_RULES.get(wn_pos, ()):
        if key.endswith(suffix) and len(key) > len(suffix) + 1:
            cands.append(key[: -len(suffix)] + repl)
    return cands


def _gloss(wordnet_dir: str, wn_pos: str, offset: int) -> str:
    # Offsets are byte positions into data.{pos}; read just that line.
    with open(Path(wordnet_dir) / f"data.{wn_pos}", "rb") as fh:
        fh.seek(offset)
        line = fh.readline().decode("utf-8")
    gloss = line.split(" | ", 1)[1].strip() if " | " in line else ""
    # The gloss is "definition; "example"; ..."; keep the definition only.
    definition = re.split(r';\s*"', gloss, maxsplit=1)[0]
    return definition.strip().rstrip(";").strip()


def wordnet_definition(word: str, pos: str, wordnet_dir: str | Path, sense: int = 1) -> str | None:
    """The WordNet gloss (definition part only) of `word`'s `sense`-th sense of `pos`
    (1 = most frequent), or None when WordNet has no such lemma or sense."""
    if pos not in _WN_POS:
        raise ValueError(f"pos must be one of {', '.join(POS_VALUES)}, got '{pos}'")
    if sense < 1:
        raise ValueError(f"sense is 1-based, got {sense}")
    wn_pos = _WN_POS[pos]
    wdir = str(Path(wordnet_dir))
    if not (Path(wdir) / f"index.{wn_pos}").exists():
        raise FileNotFoundError(
            f"no WordNet index.{wn_pos} in {wdir} (install the Debian package wordnet-base, "
            "which puts the dict files in /usr/share/wordnet)"
        )
    index = _index(wdir, wn_pos)
    for lemma in _lemma_candidates(word, wn_pos, wdir):
        offsets = index.get(lemma)
        if offsets:
            if sense > len(offsets):
                return None
            return _gloss(wdir, wn_pos, offsets[sense - 1])
    return None
