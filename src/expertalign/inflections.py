"""Inflected forms of a concept word by part of speech, with the Brown tags each form counts under.

    from expertalign.inflections import normalize_pos, word_forms

    normalize_pos("n")                 # "noun" (the concept table spells noun/verb/adjective)
    word_forms("stop", "verb")["stopped"]   # frozenset({"VBD", "VBN"})

Nouns: -s/-es/-ies, -f/-fe -> -ves (both forms kept), a short list of irregular plurals. Verbs:
-s/-es/-ies, -ed/-ing with e-drop, y->i and, where the word ends consonant-vowel-consonant, both
the plain and the doubled form (stress is unknown: visited, stopped; a form that does not exist
costs nothing), and a list of common irregular verbs (past/participle). Adjectives: -er/-est.
Limits: irregular forms outside the lists are missed; a form is generated only from the lemma.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["normalize_pos", "word_forms"]

_POS = {
    "noun": "noun",
    "n": "noun",
    "nn": "noun",
    "verb": "verb",
    "v": "verb",
    "vb": "verb",
    "adjective": "adjective",
    "a": "adjective",
    "j": "adjective",
    "adj": "adjective",
    "jj": "adjective",
}
_VOWELS = frozenset("aeiou")
_IRREGULAR_NOUN_PLURALS = (
    "man:men woman:women child:children foot:feet tooth:teeth goose:geese mouse:mice louse:lice "
    "person:people ox:oxen die:dice penny:pence criterion:criteria phenomenon:phenomena "
    "cactus:cacti fungus:fungi nucleus:nuclei stimulus:stimuli radius:radii datum:data "
    "medium:media bacterium:bacteria curriculum:curricula index:indices appendix:appendices "
    "genus:genera corpus:corpora"
)
_IRREGULAR_NOUNS = dict(w.split(":") for w in _IRREGULAR_NOUN_PLURALS.split())
# base/past/participle (alternatives joined by "|"; one form when past and participle agree).
_IRREGULAR_VERB_FORMS = (
    "arise/arose/arisen awake/awoke/awoken bear/bore/borne|born beat/beat/beaten "
    "become/became/become begin/began/begun bend/bent bet/bet bind/bound bite/bit/bitten "
    "bleed/bled blow/blew/blown break/broke/broken breed/bred bring/brought build/built "
    "burn/burnt|burned burst/burst buy/bought catch/caught choose/chose/chosen cling/clung "
    "come/came/come cost/cost creep/crept cut/cut deal/dealt dig/dug draw/drew/drawn "
    "dream/dreamt|dreamed drink/drank/drunk drive/drove/driven eat/ate/eaten fall/fell/fallen "
    "feed/fed feel/felt fight/fought find/found flee/fled fly/flew/flown forbid/forbade/forbidden "
    "forget/forgot/forgotten forgive/forgave/forgiven freeze/froze/frozen get/got/got|gotten "
    "give/gave/given go/went/gone grind/ground grow/grew/grown hang/hung|hanged hear/heard "
    "hide/hid/hidden hit/hit hold/held hurt/hurt keep/kept kneel/knelt know/knew/known lay/laid "
    "lead/led lean/leant|leaned leap/leapt|leaped learn/learnt|learned leave/left lend/lent "
    "let/let lie/lay|lied/lain|lied light/lit|lighted lose/lost make/made mean/meant meet/met "
    "pay/paid put/put quit/quit read/read ride/rode/ridden ring/rang/rung rise/rose/risen "
    "run/ran/run say/said see/saw/seen seek/sought sell/sold send/sent set/set sew/sewed/sewn "
    "shake/shook/shaken shed/shed shine/shone shoot/shot show/showed/shown shrink/shrank/shrunk "
    "shut/shut sing/sang/sung sink/sank/sunk sit/sat sleep/slept slide/slid smell/smelt|smelled "
    "speak/spoke/spoken speed/sped spend/spent spin/spun spit/spat split/split spread/spread "
    "spring/sprang/sprung stand/stood steal/stole/stolen stick/stuck sting/stung stink/stank/stunk "
    "strike/struck/struck|stricken swear/swore/sworn sweep/swept swim/swam/swum swing/swung "
    "take/took/taken teach/taught tear/tore/torn tell/told think/thought throw/threw/thrown "
    "understand/understood wake/woke/woken wear/wore/worn weave/wove/woven weep/wept win/won "
    "wind/wound write/wrote/written"
)
_IRREGULAR_VERBS = {p[0]: p[1:] for p in (e.split("/") for e in _IRREGULAR_VERB_FORMS.split())}


def normalize_pos(pos: str) -> str:
    """'noun', 'verb' or 'adjective' from the concept table's spelling (or n/v/a/j/nn/vb/jj)."""
    try:
        return _POS[str(pos).strip().lower()]
    except KeyError:
        raise ValueError(
            f"part of speech {pos!r} not understood (use noun, verb or adjective)"
        ) from None


def _suffixed(w: str, suffix: str) -> set[str]:
    """`w` + an -ed/-ing/-er/-est suffix: e-drop, y->i, and (stress unknown) both the plain
    and the consonant-doubled form for a final consonant-vowel-consonant (visited, stopped)."""
    if w.endswith("e"):
        if suffix == "ing":
            if w.endswith("ie"):
                return {w[:-2] + "ying"}
            return {w + "ing"} if w.endswith(("ee", "ye", "oe")) else {w[:-1] + "ing"}
        return {w[:-1] + suffix}
    if w.endswith("y") and len(w) > 1 and w[-2] not in _VOWELS and suffix != "ing":
        return {w[:-1] + "i" + suffix}
    forms = {w + suffix}
    if (
        len(w) >= 3
        and w[-1] not in _VOWELS | set("wxy")
        and w[-2] in _VOWELS
        and w[-3] not in _VOWELS
    ):
        forms.add(w + w[-1] + suffix)
    return forms


def _s_form(w: str) -> set[str]:
    """Plural / third person singular: -s, -es, consonant+y -> -ies."""
    if w.endswith("y") and len(w) > 1 and w[-2] not in _VOWELS:
        return {w[:-1] + "ies"}
    if w.endswith(("s", "x", "z", "ch", "sh", "o")):
        return {w + "es", w + "s"}
    return {w + "s"}


def word_forms(word: str, pos: str) -> dict[str, frozenset[str]]:
    """The lowercase forms of `word` in part of speech `pos`, each with the Brown tags (without
    -tl/-hl suffixes) under which it counts."""
    w, pos = word.strip().lower(), normalize_pos(pos)
    forms: dict[str, set[str]] = {}

    def add(fs: Iterable[str], *tags: str) -> None:
        for f in fs:
            forms.setdefault(f, set()).update(tags)

    if pos == "noun":
        plural = _s_form(w)
        if w in _IRREGULAR_NOUNS:  # regular forms kept too: persons, indexes, dies
            plural.add(_IRREGULAR_NOUNS[w])
        elif w.endswith("fe"):
            plural.add(w[:-2] + "ves")
        elif w.endswith("f"):
            plural.add(w[:-1] + "ves")
        add({w} | plural, "NN", "NNS")
    elif pos == "verb":
        add({w}, "VB")
        add(_s_form(w), "VBZ")
        add(_suffixed(w, "ing"), "VBG")
        if w in _IRREGULAR_VERBS:
            past, *participle = _IRREGULAR_VERBS[w]
            add(past.split("|"), "VBD")
            add((participle[0] if participle else past).split("|"), "VBN")
        else:
            add(_suffixed(w, "ed") if not w.endswith("e") else {w + "d"}, "VBD", "VBN")
    else:
        add({w}, "JJ")
        add(_suffixed(w, "er"), "JJR")
        add(_suffixed(w, "est"), "JJT", "JJS")
    return {f: frozenset(t) for f, t in forms.items()}
