"""The benchmark's synthetic shard: concepts' positives and a bank of other sentences.

    >>> from corpus import make_shard, concept_negatives
    >>> concepts, positives, bank_ids, bank_texts = make_shard(2, 40, 100, own=4, seed=0)
    >>> negatives = concept_negatives(bank_ids, bank_texts, "cat", positives["cat"], 100,
    ...                               "per_concept", seed=0)

Sentences are synthesised deterministically from templates and word lists (no data needed). The
bank holds ``n_neg`` sentences about none of the concepts plus ``own`` of each concept's positives
(bank ids ``concept:NNNN``), shuffled; a concept's negatives are the bank rows that
``expertalign.negatives.negative_rows`` picks for it, as the workflow's shard job does.
"""

from __future__ import annotations

import random

CONCEPTS = [
    "cat", "river", "guitar", "doctor", "bread", "mountain", "train", "garden", "computer",
    "ocean", "teacher", "horse", "coffee", "church", "winter", "football",
]  # fmt: skip
_NOUNS = [
    "committee", "bridge", "printer", "violin", "tractor", "museum", "senator", "recipe",
    "laptop", "harbour", "factory", "lawyer", "bicycle", "volcano", "library", "orchestra",
    "airport", "budget", "engine", "newspaper", "tomato", "umbrella", "hospital", "jacket",
    "pilot", "festival", "carpet", "telescope", "wallet", "kitchen", "village", "theatre",
    "ladder", "battery", "farmer", "painting", "helmet", "candle", "mirror", "highway",
    "student", "island", "camera", "blanket", "bakery", "castle", "rocket", "sandwich",
]  # fmt: skip
_ADJS = [
    "old", "new", "small", "enormous", "quiet", "noisy", "famous", "ordinary", "beautiful",
    "strange", "local", "expensive", "cheap", "broken", "bright", "dusty", "friendly",
    "mysterious", "familiar", "modern", "ancient", "tiny", "heavy", "colourful", "elegant",
]  # fmt: skip
_PLACES = [
    "the town square", "the edge of the forest", "the train station", "a crowded market",
    "the back of the house", "the city centre", "a small village in the north", "the harbour",
    "the university campus", "the old factory", "the top of the hill", "the public library",
]  # fmt: skip
_TIMES = [
    "last Tuesday", "every morning", "during the long summer holidays", "late at night",
    "before the storm arrived", "on a cold afternoon in January", "after the meeting",
    "at the end of the year", "once a week", "just before sunrise", "for several hours",
]  # fmt: skip
_PEOPLE = [
    "My grandmother", "The mayor", "A young engineer", "Our neighbour", "The new manager",
    "A tired student", "My older brother", "The journalist", "A local farmer", "The nurse",
]  # fmt: skip
_VERBS = [
    "appeared", "was spotted", "stood", "remained", "was left", "was found", "waited",
    "was photographed", "was discussed", "became famous",
]  # fmt: skip
_TEMPLATES = [
    "The {adj} {noun} {verb} near {place} {time}.",
    "{person} said that the {noun} {verb} near {place} {time}.",
    "Yesterday, {lperson} noticed {a_adj} {noun} at {place} and could not stop talking about it.",
    "Have you ever seen {a_noun} as {adj} as the one at {place}?",
    "{person} wrote a long article about the {adj} {noun} that {verb} {time}.",
    "According to the report, the {noun} at {place} is more {adj} than anyone expected.",
    "When the weather changed {time}, the {adj} {noun} {verb} for a while.",
    "Nobody at {place} could explain why the {noun} looked so {adj} {time}.",
    "{person} bought {a_adj} {noun} {time} and told everyone at {place}.",
    "In the story, {a_adj} {noun} {verb} at {place} and changed the life of the whole family.",
]

#: the negatives modes of ``expertalign.negatives`` the benchmark measures
MODES = ("shared", "per_concept")


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def make_sentences(word: str | None, n: int, seed: int, exclude=frozenset()) -> list[str]:
    """``n`` distinct English sentences of ~10-25 tokens from templates x word lists; each
    contains ``word`` if given, else a noun from a list that avoids ``exclude``. Deterministic."""
    rng = random.Random(f"{seed}:{word}")
    nouns = [x for x in _NOUNS if x not in exclude]
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        person = rng.choice(_PEOPLE)
        adj = rng.choice(_ADJS)
        noun = word or rng.choice(nouns)
        text = rng.choice(_TEMPLATES).format(
            adj=adj,
            a_adj=_a(adj),
            noun=noun,
            a_noun=_a(noun),
            verb=rng.choice(_VERBS),
            place=rng.choice(_PLACES),
            time=rng.choice(_TIMES),
            person=person,
            lperson=person[0].lower() + person[1:],
        )
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def make_shard(n_concepts: int, n_pos: int, n_neg: int, own: int, seed: int):
    """Concepts' positives, and a bank of ``n_neg`` other sentences plus ``own`` of each
    concept's positives, shuffled: a concept's negatives are bank rows not its own
    (:func:`concept_negatives`). Returns ``concepts, positives, bank_ids, bank_texts``."""
    if n_concepts > len(CONCEPTS):
        raise SystemExit(f"at most {len(CONCEPTS)} concepts")
    concepts = CONCEPTS[:n_concepts]
    positives = {c: make_sentences(c, n_pos, seed) for c in concepts}
    others = make_sentences(None, n_neg, seed, set(CONCEPTS))
    bank = [(f"other:{i:05d}", t) for i, t in enumerate(others)]
    for c in concepts:
        bank += [(f"{c}:{i:04d}", positives[c][i]) for i in range(min(own, n_pos))]
    random.Random(seed).shuffle(bank)
    return concepts, positives, [i for i, _ in bank], [t for _, t in bank]


def shard_of(args, mode: str):
    """The shard of ``mode``: shared - a bank of ``--negatives`` other sentences; per_concept - a
    pool of ``--pool`` (plus each concept's ``--own`` in both)."""
    n_other = args.pool if mode == "per_concept" else args.negatives
    return make_shard(args.concepts, args.positives, n_other, args.own, args.seed)


def own_ids(bank_ids, concept) -> set[str]:
    """The bank ids that are ``concept``'s own sentences."""
    return {i for i in bank_ids if i.startswith(f"{concept}:")}


def concept_negatives(bank_ids, bank_texts, concept, positives, n_neg, mode, seed):
    """The concept's negatives exactly as ``shard_expertise`` picks them (for the reference)."""
    from expertalign.negatives import negative_rows

    keep, _ = negative_rows(
        bank_ids,
        bank_texts,
        own_ids(bank_ids, concept),
        set(positives),
        n_neg,
        concept,
        mode=mode,
        seed=seed,
    )
    return [bank_texts[row] for row in keep]


def modes_of(args) -> list[str]:
    """The negatives modes ours runs in (``--mode``)."""
    return list(MODES) if args.mode == "both" else [args.mode]


def primary_mode(args) -> str:
    """The mode the reference and the top-level JSON keys use: per_concept when both run."""
    return "per_concept" if args.mode in ("both", "per_concept") else "shared"
