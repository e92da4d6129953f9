"""Which lines of a generator's answers are kept as a concept's sentences.

Answers are split into lines; numbering ("1.", "1)"), bullets, quotes and labels such as
"Sentence:" are removed, and an item is kept only if it passes every filter, in this order
(the names are those of :data:`FILTERS`, counted by :func:`extract_sentences`):

* ``preamble``: a line ending in a colon ("Here are 10 facts about cats:");
* ``length``: fewer than 4 words of letters, or more than 60 words;
* ``no_word``: no mention of the word or an inflection of it (:func:`word_pattern`);
* ``word_repeated``: the word more than three times (a small model stuck on it);
* ``about_task``: talk about the task ("The first story is about ...", "the word 'cat'");
* ``loop``: a word twice in a row, or a three-word sequence twice;
* ``duplicate``: a repeat of an earlier item (ignoring case and spacing).

Use::

    from collections import Counter
    from expertalign.sentence_filters import extract_sentences

    counts = Counter()
    extract_sentences(["1. The cat sat on the mat.", "2. A dog."], "cat", "noun", counts)
    # ['The cat sat on the mat.']; counts == {'candidates': 2, 'length': 1, 'kept': 1}
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping, Sequence

__all__ = ["FILTERS", "MIN_WORDS", "MAX_WORDS", "word_pattern", "extract_sentences", "dedupe_key"]

MIN_WORDS = 4
MAX_WORDS = 60
FILTERS: tuple[str, ...] = (
    "preamble",
    "length",
    "no_word",
    "word_repeated",
    "about_task",
    "loop",
    "duplicate",
)


_BULLET = re.compile(r"^\s*(?:[-*•·]+\s*|\(?\d{1,3}\s*[.):\]]\s*|\d{1,3}\s+-\s+|#+\s*)")
_LABEL = re.compile(
    r"^\s*\**\s*(?:sentence|fact|story|short story|example)\s*\d*\s*\**\s*[:.)-]"
    r"\s*\**\s*",
    re.IGNORECASE,
)
# A heading of one or two words before a colon or dash ("Cat: a feline mammal", "Doctor - a
# licensed medical practitioner", "Fun fact: ..."): the
# item is what follows, and it must mention the concept on its own.
_HEADING = re.compile(r"^\s*\**\w[\w'’]*(?:[ -]\w[\w'’]*)?\**(?:\s*:|\s+[-–—])\s+(?=\S)")
_QUOTES = "\"'“”‘’«»`"
# Small models echo the task ("The first story is about a cat.", "... uses the word 'cat'").
_META = re.compile(
    r"\b(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last|final|next|"
    r"this|each|every|following|short|\d+)\s+(?:stor(?:y|ies)|"
    r"sentences?|facts?)\b(?!\s+(?:of|about)\s+(?:his|her|their|my|our)\b)"
    r"|\bthe\s+(?:word|term|noun|verb|adjective)\s+['\"“‘]|\brefer(?:s|ring)? to the concept\b",
    re.IGNORECASE,
)
_VOWELS = set("aeiou")


def _inflections(token: str, pos: str) -> set[str]:
    forms = {token}
    if pos in ("noun", "verb"):
        forms |= {token + "s", token + "es"}
        if len(token) > 1 and token.endswith("y") and token[-2] not in _VOWELS:
            forms.add(token[:-1] + "ies")
    if (
        pos == "noun"
        and len(token) > 3
        and token.endswith("s")
        and not token.endswith(("ss", "us", "is"))
    ):
        # Plural concept words ("flowers") also count in the singular.
        forms.add(token[:-1])
    if pos == "verb":
        stem = token[:-1] if token.endswith("e") and not token.endswith("ee") else token
        forms |= {stem + "ed", stem + "ing", token + "d" if token.endswith("e") else token + "ed"}
        if len(token) > 1 and token.endswith("y") and token[-2] not in _VOWELS:
            forms.add(token[:-1] + "ied")
        if (
            len(token) >= 3
            and token[-1] not in _VOWELS | set("wxy")
            and token[-2] in _VOWELS
            and token[-3] not in _VOWELS
        ):
            forms |= {token + token[-1] + "ed", token + token[-1] + "ing"}  # stop -> stopped
    return forms


def word_pattern(word: str, pos: str) -> re.Pattern[str]:
    """Case-insensitive, word-bounded regex for `word` or an inflection of its last token
    (nouns: -s/-es/-ies; verbs: -s/-es/-ies/-ed/-ing). Multi-word concepts match across any
    run of spaces or hyphens."""
    tokens = word.lower().replace("_", " ").split()
    if not tokens:
        raise ValueError("empty concept word")
    *head, last = tokens
    forms = sorted(_inflections(last, pos), key=lambda f: (-len(f), f))
    sep = r"[\s\-]+"
    prefix = "".join(re.escape(t) + sep for t in head)
    return re.compile(
        r"\b" + prefix + "(?:" + "|".join(map(re.escape, forms)) + r")\b", re.IGNORECASE
    )


def _clean_item(line: str) -> str:
    item = line.strip()
    for _ in range(3):  # "1. **Fact 1:** "..."" needs several passes
        before = item
        item = _BULLET.sub("", item)
        item = _LABEL.sub("", item)
        item = _HEADING.sub("", item)
        item = item.strip().strip("*").strip()
        if len(item) >= 2 and item[0] in _QUOTES:
            end = item.rstrip(".!?")
            if end and end[-1] in _QUOTES:
                item = item[1:].strip()
                item = re.sub(r"[" + re.escape(_QUOTES) + r"]([.!?]?)$", r"\1", item).strip()
        if item == before:
            break
    return " ".join(item.split())


_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")


def _n_real_words(text: str) -> int:
    """Words made of letters ("purple (purple) 6: 21" has two)."""
    return len(_WORD.findall(text))


def _loops(text: str) -> bool:
    """True for a sampling loop, not a sentence: a word twice in a row ("books books") or a
    three-word sequence twice ("no doctor, no doctor")."""
    words = [w.lower() for w in _WORD.findall(text)]
    if any(a == b for a, b in zip(words, words[1:])):
        return True
    trigrams = list(zip(words, words[1:], words[2:]))
    return len(set(trigrams)) < len(trigrams)


def dedupe_key(text: str) -> str:
    """Two items are the same sentence if these keys are equal (case and spacing ignored)."""
    return " ".join(text.lower().split())


def _rejection(item: str, pattern: re.Pattern[str]) -> str | None:
    """The first filter (of FILTERS, but for duplicates) that drops a cleaned item, or None."""
    if item.endswith(":"):  # "Here are 10 facts about cats:"
        return "preamble"
    if len(item.split()) > MAX_WORDS or _n_real_words(item) < MIN_WORDS:
        return "length"
    mentions = len(pattern.findall(item))
    if mentions == 0:
        return "no_word"
    if mentions > 3:  # a small model stuck on the word, not a sentence
        return "word_repeated"
    if _META.search(item):
        return "about_task"
    if _loops(item):
        return "loop"
    return None


def extract_sentences(
    raw_completions: Sequence[str],
    word: str,
    pos: str,
    counts: MutableMapping[str, int] | None = None,
) -> list[str]:
    """Items of the completions that pass every filter (see the module docstring), cleaned
    and deduplicated, in order.

    With `counts` (e.g. a Counter), adds the number of candidates (non-empty items after
    cleaning) under "candidates", of items each filter dropped under its name, and of items
    kept under "kept".
    """
    pattern = word_pattern(word, pos)
    seen: set[str] = set()
    out: list[str] = []
    tally: dict[str, int] = dict.fromkeys(("candidates", *FILTERS, "kept"), 0)
    for completion in raw_completions:
        for line in str(completion).splitlines():
            item = _clean_item(line)
            if not item:
                continue
            tally["candidates"] += 1
            reason = _rejection(item, pattern)
            if reason is None and dedupe_key(item) in seen:
                reason = "duplicate"
            if reason is not None:
                tally[reason] += 1
                continue
            seen.add(dedupe_key(item))
            out.append(item)
    tally["kept"] = len(out)
    if counts is not None:
        for name, n in tally.items():
            if n:
                counts[name] = counts.get(name, 0) + n
    return out
