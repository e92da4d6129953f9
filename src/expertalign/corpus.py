"""A corpus of natural sentences to take a concept's positive sentences from.

Brown (POS-tagged, read through NLTK from ``<data_dir>/nltk_data``) tells a word's parts of
speech apart ("mars" of the verb "mar" is not "Mars" the name); a user's own corpus (``.txt``,
one sentence a line, or ``.parquet`` with a ``text`` column) is untagged: word match only. Use::

    from expertalign.corpus import load_corpus, TooFewSentencesError, type_token_ratio

    corpus = load_corpus("brown", data_dir="../shared/data")   # or "my_corpus.txt"/".parquet"
    corpus.load_seconds, corpus.read_seconds    # NLTK read (~6 s for Brown) + index, once
    corpus.count("cat", "noun")                 # deduplicated matches within the length range
    texts = corpus.select("cat", "noun", 40, seed=0, concept="cat")  # TooFewSentencesError if < 40
    type_token_ratio(texts)                     # the paper's diversity measure for a sentence set

Matching: case-insensitive, inflections included (:func:`expertalign.inflections.word_forms`:
plurals, verb -s/-ed/-ing with e-drop and consonant doubling, listed irregulars, -er/-est). In
Brown a form counts only under its tags (title/headline suffixes ``-tl``/``-hl`` and possessives
``nn$`` included): nouns ``nn``/``nns`` (proper nouns ``np`` do not count), verbs ``vb``/``vbz``/
``vbg``/``vbd``/``vbn`` by form, adjectives ``jj``/``jjr``/``jjt``. Limits: irregular forms not in
the lists are missed; "be", "have", "do" (own Brown tags) and contractions tagged ``x+y`` are not
matched; an irregular form shared by two verbs (``lay``) counts for both. Sentences are
deduplicated by their lowercased words (the first in corpus order is kept), kept if they have
``min_words``..``max_words`` words (runs of letters/digits), and sampled with a seed mixed with
the word and part of speech only: a concept's sentences do not depend on the other concepts, and
a larger ``n`` keeps the smaller ``n``'s sentences as its prefix.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from expertalign.inflections import normalize_pos, word_forms
from expertalign.seeds import mix_seed

__all__ = [
    "MAX_WORDS",
    "MIN_WORDS",
    "Corpus",
    "CorpusError",
    "TooFewSentencesError",
    "detokenize",
    "load_corpus",
    "normalize_pos",
    "type_token_ratio",
    "word_forms",
]

MIN_WORDS = 5
MAX_WORDS = 40
_KEPT_TAGS = frozenset({"NN", "NNS", "VB", "VBZ", "VBG", "VBD", "VBN", "JJ", "JJR", "JJT", "JJS"})
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")  # a word, for lengths and dedup
_PART = re.compile(r"[^\W_]+")  # untagged matching: "cat's" and "cat-like" hold "cat"


class CorpusError(ValueError):
    """A corpus that cannot be read (missing file or NLTK data, no ``text`` column, ...)."""


class TooFewSentencesError(ValueError):
    """A concept has fewer matching sentences in the corpus than needed."""

    def __init__(
        self,
        concept: str,
        word: str,
        pos: str,
        found: int,
        needed: int,
        corpus: str,
        detail: str = "",
    ) -> None:
        self.concept, self.word, self.pos = concept, word, pos
        self.found, self.needed, self.corpus = found, needed, corpus
        super().__init__(
            f"concept '{concept}' (word '{word}', {pos}): {found} sentence(s) in corpus "
            f"'{corpus}'{detail}, {needed} needed; choose another concept, ask for fewer "
            "sentences, or configure a fallback source"
        )


_NO_SPACE_BEFORE = frozenset(
    {",", ".", ";", ":", "?", "!", ")", "]", "}", "''", "'", "%", "n't", "'s"}
)
_NO_SPACE_AFTER = frozenset({"``", "(", "[", "{", "$", "`"})


def detokenize(tokens: Sequence[str]) -> str:
    """Readable text from Brown tokens: ``` ``/'' ``` become straight double quotes, no space
    before closing punctuation or after opening brackets/quotes."""
    out: list[str] = []
    glue = True
    for tok in tokens:
        text = '"' if tok in ("``", "''") else tok
        if out and not glue and tok not in _NO_SPACE_BEFORE:
            out.append(" ")
        out.append(text)
        glue = tok in _NO_SPACE_AFTER
    return "".join(out)


def _n_words(text: str) -> int:
    return len(_WORD.findall(text))


def _key(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def _tag(token: str, tag: str) -> tuple[str, str] | None:
    """(lowercase word, base tag) for a Brown token whose tag may count, else None."""
    tag = tag.upper()
    while tag.endswith(("-TL", "-HL", "-NC")):
        tag = tag[:-3]
    tok = token.lower()
    if tag.endswith("$"):  # possessive: dog's/NN$, dogs'/NNS$
        tag, tok = tag[:-1], re.sub(r"'s?$", "", tok)
    return (tok, tag) if tag in _KEPT_TAGS else None


class Corpus:
    """Sentences with an index word -> sentence ids, built once; `tagged` tells whether
    parts of speech are checked. Construct with :func:`load_corpus` or the classmethods."""

    def __init__(
        self,
        name: str,
        texts: Sequence[str],
        tags: Sequence[Sequence[tuple[str, str]]] | None = None,
        read_seconds: float = 0.0,
    ) -> None:
        t0 = time.perf_counter()
        self.name, self.texts, self.tagged = name, list(texts), tags is not None
        self._n_words = [_n_words(t) for t in self.texts]
        self._index: dict[str, list[tuple[int, str]]] = {}
        for sid, text in enumerate(self.texts):
            pairs: Iterable[tuple[str, str] | None]
            if tags is not None:
                pairs = (_tag(tok, tag) for tok, tag in tags[sid])
            else:
                pairs = ((w, "") for w in _PART.findall(text.lower()))
            for pair in pairs:
                if pair is not None:
                    self._index.setdefault(pair[0], []).append((sid, pair[1]))
        #: seconds to read the sentences (NLTK for Brown), to index them, and both
        self.read_seconds = read_seconds
        self.index_seconds = time.perf_counter() - t0
        self.load_seconds = read_seconds + self.index_seconds

    def __repr__(self) -> str:
        return f"Corpus({self.name!r}, {len(self.texts)} sentences, tagged={self.tagged})"

    @classmethod
    def from_tagged(
        cls,
        sents: Iterable[Sequence[tuple[str, str]]],
        name: str = "tagged",
        read_seconds: float = 0.0,
    ) -> Corpus:
        """From Brown-style tagged sentences [(token, tag), ...] (read here if lazy)."""
        t0 = time.perf_counter()
        sents = [list(s) for s in sents]
        return cls(
            name,
            [detokenize([w for w, _ in s]) for s in sents],
            sents,
            read_seconds + time.perf_counter() - t0,
        )

    @classmethod
    def from_texts(cls, texts: Iterable[str], name: str = "texts") -> Corpus:
        """Untagged sentences (blank ones dropped, spacing normalized)."""
        return cls(name, [" ".join(t.split()) for t in map(str, texts) if t.strip()])

    @classmethod
    def from_file(cls, path: str | Path) -> Corpus:
        """An untagged corpus: .txt (UTF-8, one sentence a line) or .parquet (`text` column)."""
        path = Path(path)
        if not path.is_file():
            raise CorpusError(f"corpus file {path} does not exist")
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
            if "text" not in names:
                raise CorpusError(f"{path}: no 'text' column (columns: {', '.join(names)})")
            texts = pq.read_table(path, columns=["text"]).column("text").to_pylist()
            return cls.from_texts((t for t in texts if t is not None), name=path.name)
        if suffix in (".txt", ".text", ""):
            from expertalign.textfile import read_utf8

            return cls.from_texts(read_utf8(path).splitlines(), name=path.name)
        raise CorpusError(f"{path}: unknown corpus file type '{suffix}' (use .txt or .parquet)")

    @classmethod
    def brown(cls, nltk_data: str | Path, categories: Sequence[str] | None = None) -> Corpus:
        """Brown through NLTK's reader from an NLTK data dir holding corpora/brown.zip (or an
        unpacked corpora/brown); `categories` (e.g. ["news"]) limits it to those genres."""
        import nltk
        from nltk.corpus.reader import CategorizedTaggedCorpusReader

        t0 = time.perf_counter()
        root_dir = str(Path(nltk_data).resolve())
        if not (Path(root_dir) / "corpora").is_dir():
            raise CorpusError(
                f"NLTK data dir {root_dir} has no corpora/ folder (expected "
                "corpora/brown.zip there)"
            )
        if root_dir not in nltk.data.path:  # NLTK reads only from dirs on its path
            nltk.data.path.insert(0, root_dir)
        root = None
        for resource in ("corpora/brown/", "corpora/brown.zip/brown/"):
            try:
                root = nltk.data.find(resource, paths=[root_dir])
                break
            except LookupError:
                continue
        if root is None:
            raise CorpusError(f"no Brown corpus under {root_dir} (corpora/brown.zip)")
        reader = CategorizedTaggedCorpusReader(
            root, r"c[a-z]\d\d", cat_file="cats.txt", tagset="brown", encoding="ascii"
        )
        if categories:
            unknown = sorted(set(categories) - set(reader.categories()))
            if unknown:
                raise CorpusError(
                    f"unknown Brown categories {unknown} (known: {', '.join(reader.categories())})"
                )
        sents = reader.tagged_sents(categories=list(categories) if categories else None)
        name = "brown" + (f"[{','.join(categories)}]" if categories else "")
        return cls.from_tagged(sents, name, time.perf_counter() - t0)

    def matches(
        self, word: str, pos: str, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS
    ) -> list[int]:
        """Ids of deduplicated sentences (first occurrence, corpus order) that use `word` in
        `pos` (any part of speech if the corpus is untagged), with min..max words."""
        if min_words > max_words:
            raise ValueError(f"min_words {min_words} > max_words {max_words}")
        *head, last = word.lower().replace("_", " ").split() or [""]
        if not last:
            raise ValueError("empty concept word")
        forms = word_forms(last, pos)
        ids: set[int] = set()
        for form, tags in forms.items():
            ids.update(
                sid for sid, tag in self._index.get(form, ()) if not self.tagged or tag in tags
            )
        if head:  # multi-word ("ice cream"): the other words right before the last one
            pat = re.compile(
                r"\b"
                + "".join(re.escape(h) + r"[\s-]+" for h in head)
                + "(?:"
                + "|".join(map(re.escape, forms))
                + r")\b",
                re.IGNORECASE,
            )
            ids = {i for i in ids if pat.search(self.texts[i])}
        seen: set[str] = set()
        out: list[int] = []
        for sid in sorted(ids):
            key = _key(self.texts[sid])
            if min_words <= self._n_words[sid] <= max_words and key not in seen:
                seen.add(key)
                out.append(sid)
        return out

    def count(
        self, word: str, pos: str, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS
    ) -> int:
        """How many sentences :meth:`select` could choose from (to decide on a fallback)."""
        return len(self.matches(word, pos, min_words, max_words))

    def select(
        self,
        word: str,
        pos: str,
        n: int,
        *,
        seed: int,
        concept: str | None = None,
        min_words: int = MIN_WORDS,
        max_words: int = MAX_WORDS,
    ) -> list[str]:
        """`n` sentences for the concept, sampled reproducibly from :meth:`matches`; raises
        :class:`TooFewSentencesError` if there are fewer than `n`."""
        if n < 0:
            raise ValueError(f"number of sentences must be >= 0, not {n}")
        ids = self.matches(word, pos, min_words, max_words)
        if len(ids) < n:
            raise TooFewSentencesError(
                concept or word,
                word,
                normalize_pos(pos),
                len(ids),
                n,
                self.name,
                f" ({min_words}-{max_words} words, "
                f"deduplicated{', untagged' if not self.tagged else ''})",
            )
        random.Random(mix_seed(seed, word.lower(), normalize_pos(pos))).shuffle(ids)
        return [self.texts[i] for i in ids[:n]]


def load_corpus(
    source: str | Path = "brown",
    *,
    data_dir: str | Path | None = None,
    nltk_data: str | Path | None = None,
    categories: Sequence[str] | None = None,
) -> Corpus:
    """Brown for `source` "brown" (from `nltk_data`, default ``<data_dir>/nltk_data``), else
    the untagged .txt/.parquet corpus at path `source`."""
    if str(source) == "brown":
        if nltk_data is None:
            if data_dir is None:
                raise CorpusError("Brown needs data_dir (with nltk_data/) or nltk_data")
            nltk_data = Path(data_dir) / "nltk_data"
        return Corpus.brown(nltk_data, categories)
    return Corpus.from_file(source)


def type_token_ratio(texts: Iterable[str]) -> float:
    """Distinct lowercase word tokens / all word tokens over a set of sentences (the paper's
    diversity measure, taken per concept; average over concepts for a source). 0.0 if empty."""
    tokens = [w for t in texts for w in _WORD.findall(t.lower())]
    return len(set(tokens)) / len(tokens) if tokens else 0.0
