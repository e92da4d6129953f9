"""Which part of speech and WordNet sense define a concept word: the one sense-override table
that both concept-table builders use (``tools/make_concepts.py``, the default run's table, and
``tools/make_paper_concepts.py``, the paper's).

Usage::

    from expertalign.senses import SENSES, concept_definition, concept_pos

    concept_definition("eyes", "noun", "/usr/share/wordnet")    # "the organ of sight" (eye, 1)
    concept_pos("red", men_tags={"red": "adjective"}, lemma_tags={}, fallback="noun")

Part of speech: MEN's tag for a MEN word (the natural form's lemma-file tag, which is what the
human ratings were collected for), else the override's, else the tag MEN gives the word as a
lemma (``bear``: MEN has only ``bear-v``, as the lemma of *born*), else ``fallback`` (the domain
words: noun; SPP words: the first of noun, verb, adjective WordNet knows).

Definition: WordNet's gloss of the word's first sense of that part of speech, found through its
own lemma (WordNet's morphy: *animals* -> *animal*), except for the words in :data:`SENSES`.
They are there for one of two reasons: the word's first sense is not the one meant (*table* is
first "a set of data", *licking* first "beat ... in a competition"), or the natural form is a
WordNet lemma of its own whose first sense is not the plural's (*eyes* is "opinion or
judgment", *shoes* "a particular situation"), where MEN's lemma (*eye*, *shoe*) is looked up
instead. Every MEN word whose natural form and MEN lemma have different first glosses is listed,
also where the natural form's is kept (*stairs*, *beads*), so that each is a recorded decision
(``tests/test_concepts.py`` checks the paper's table against MEN's tags and this table).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from expertalign.concepts import wordnet_definition

__all__ = ["Sense", "SENSES", "SenseError", "sense_of", "concept_definition", "concept_pos"]


@dataclass(frozen=True)
class Sense:
    """The WordNet lemma and 1-based sense that define a word; ``pos`` (optional) its part of
    speech where the word is no MEN word (MEN's tag always wins for a MEN word)."""

    lemma: str
    sense: int = 1
    pos: str | None = None


class SenseError(ValueError):
    """WordNet has no such sense; the message names the word, lemma, part of speech and sense."""


# word -> the sense meant, with why (first sense = WordNet's most frequent one).
SENSES: dict[str, Sense] = {
    # the paper's domain words (App. E)
    "table": Sense("table", 2),  # 1 = "a set of data arranged in rows and columns"
    "heart": Sense("heart", 2),  # 1 = "the locus of feelings and intuitions"
    "subjects": Sense("subject", 3),  # 1 = subject matter; 3 = "a branch of knowledge"
    "colour": Sense("colour", 6),  # 1 = "any material used for its color"; 6 = color.n.01
    "pumpkin": Sense("pumpkin", 2),  # 1 = the vine; 2 = the fruit
    "corn": Sense("corn", 3),  # 1 = the grass; 3 = "ears of corn ... served for human food"
    # MEN words: MEN's lemma where the natural form is a WordNet lemma of its own
    "stripes": Sense("stripe", 1),  # "stripes" is only the military badge
    "shoes": Sense("shoe", 1),  # "shoes" = "a particular situation"
    "eyes": Sense("eye", 1),  # "eyes" = "opinion or judgment"
    "arms": Sense("arm", 1),  # "arms" = "weapons"; MEN: arms-legs, arms-shoulder
    "fell": Sense("fall", 1),  # verb "fell" = "cause to fall by ... delivering a blow"
    "fungi": Sense("fungus", 1),  # "fungi" = the taxonomic kingdom; MEN: fungi-mushrooms
    "tears": Sense("tear", 1),  # the drop, as MEN's eyes-tears; "tears" = the process of crying
    "whiskers": Sense("whisker", 2),  # cat-whiskers; "whiskers" = a man's beard, whisker 1 = "a
    # very small distance"
    "words": Sense("word", 1),  # "words" = "the words that are spoken"
    "eggs": Sense("egg", 1),  # the laid egg (MEN: eggs-nest); "eggs" = "... used as food"
    # MEN words whose natural form's own first sense is the one meant (kept, recorded)
    "stairs": Sense("stairs", 1),  # the flight; "stair" is one step
    "beads": Sense("beads", 1),  # "several beads threaded together" (MEN: beads-necklace)
    # MEN words whose lemma's first sense is not the one meant
    "amphibians": Sense("amphibian", 3),  # 1 = "a flat-bottomed motor vehicle"
    "licking": Sense("lick", 2),  # 1 = "beat ... in a competition"; 2 = "pass the tongue over"
    "born": Sense("bear", 2),  # 1 = "have"; 2 = "cause to be born" (MEN: born-mother, -son)
    # SPP words (no MEN word): the part of speech and sense of their SPP pair
    "bear": Sense("bear", 1, "noun"),  # cub-bear; MEN's bear-v is the lemma of "born"
    "sign": Sense("sign", 2, "noun"),  # billboard-sign; 2 = "a public display of a message"
    "come": Sense("come", 1, "verb"),  # leave-come (antonyms); noun 1 is "semen"
    "act": Sense("act", 3, "noun"),  # act-play: a subdivision of a play; noun 1 = a legal act
    "play": Sense("play", 1, "noun"),  # act-play: "a dramatic work"; MEN's play-v is "played"
    "cub": Sense("cub", 3, "noun"),  # cub-bear: the young of a carnivore; 1 = "awkward youth"
    "lick": Sense("lick", 2),  # lick-tongue: verb (MEN's lick-v), "pass the tongue over"
}


def sense_of(word: str) -> Sense:
    """The override of ``word`` (case-insensitive), else its own lemma's first sense."""
    return SENSES.get(word.lower(), Sense(word))


def concept_definition(word: str, pos: str, wordnet_dir: str | Path) -> str:
    """The gloss that defines ``word`` as ``pos``, on one line; :class:`SenseError` if WordNet
    lacks the sense."""
    sense = sense_of(word)
    definition = wordnet_definition(sense.lemma, pos, wordnet_dir, sense=sense.sense)
    if definition is None:
        raise SenseError(
            f"WordNet has no {pos} sense {sense.sense} of '{sense.lemma}' (for the word '{word}')"
        )
    # tabs and newlines would break the TSV; WordNet glosses have none, but be safe
    return " ".join(definition.split())


def concept_pos(
    word: str,
    men_tags: Mapping[str, str],
    lemma_tags: Mapping[str, str],
    fallback: str,
) -> str:
    """The part of speech of ``word`` (see the module docstring): ``men_tags`` maps MEN natural
    forms, ``lemma_tags`` MEN lemmas, to MEN's tag."""
    if word in men_tags:
        return men_tags[word]
    override = SENSES.get(word.lower())
    if override is not None and override.pos is not None:
        return override.pos
    return lemma_tags.get(word, fallback)
