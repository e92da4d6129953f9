"""The prompts that ask an instruction LLM for a concept's positive sentences.

Two styles, as in the paper: "facts" and "stories" (the paper's "short stories"), each asking
for 10 sentences about the concept, named by its word, POS and WordNet definition. Two prompt
sets (config key ``sentences.prompts``):

* ``paper`` (default): the paper's two prompts word for word (App. A). The paper writes the
  slots as "[concept name]", "[a/an] [adjective/noun/verb]" and "[WordNet definition]"; here
  they are the concept's word, "a"/"an" with its POS, and its definition (no quotes, a final
  full stop dropped because the prompt adds one).
* ``short``: a shorter, more explicit variant for small generators (the embedded 135M model,
  ``config/config.yaml``): one numbered sentence per line, the word in quotes.

Use::

    from expertalign.prompts import build_prompts, PROMPT_SETS

    build_prompts("cat", "noun", "feline mammal usually having thick soft fur", "facts", 2)
    # ['Generate a set of 10 sentences, including as many facts as possible, about the concept
    #   cat as a noun and defined as feline mammal ... Make sure the sentences are diverse ...'] * 2
    build_prompts("cat", "noun", "", "stories", 1, prompt_set="short")
"""

from __future__ import annotations

__all__ = [
    "SENTENCES_PER_CALL",
    "KINDS",
    "PROMPT_SETS",
    "DEFAULT_PROMPT_SET",
    "build_prompts",
    "article",
]

SENTENCES_PER_CALL = 10
KINDS: tuple[str, ...] = ("facts", "stories")
DEFAULT_PROMPT_SET = "paper"

# The slots: {n} sentences per call, {word}, {article} ("a"/"an"), {pos}, {definition}.
_PAPER_TAIL = (
    "about the concept {word} as {article} {pos} and defined as {definition}. "
    "Refer to the concept only as {word} without including specific classes, types, or names "
    "of {word}. Make sure the sentences are diverse and do not repeat."
)
PROMPT_SETS: dict[str, dict[str, str]] = {
    "paper": {
        "facts": "Generate a set of {n} sentences, including as many facts as possible, "
        + _PAPER_TAIL,
        "stories": "Generate a set of {n} sentences, where each sentence is a short story "
        + _PAPER_TAIL,
    },
    "short": {
        "facts": (
            "Write {n} short facts about the {pos} '{word}' ({definition}).\n"
            "Each fact is one short sentence that uses the word '{word}'. "
            "Refer to the concept only as '{word}'.\n"
            "Write one sentence per line, numbered 1 to {n}, and nothing else."
        ),
        "stories": (
            "Write {n} very short stories about the {pos} '{word}' ({definition}).\n"
            "Each story is one short sentence that uses the word '{word}'. "
            "Refer to the concept only as '{word}'.\n"
            "Write one sentence per line, numbered 1 to {n}, and nothing else."
        ),
    },
}


def article(pos: str) -> str:
    """The indefinite article before a POS name: "an adjective", "a noun", "a verb"."""
    return "an" if pos[:1].lower() in "aeiou" and pos else "a"


def build_prompts(
    word: str,
    pos: str,
    definition: str,
    kind: str,
    n_calls: int,
    prompt_set: str = DEFAULT_PROMPT_SET,
) -> list[str]:
    """`n_calls` user prompts of style `kind` ("facts" or "stories"; "short stories" also
    accepted) from `prompt_set` ("paper" or "short"), each asking for SENTENCES_PER_CALL
    sentences. The calls are identical: variety comes from sampling, and identical prompts let
    a local backend prefill them once. An empty definition becomes "the usual sense of the
    <pos>"."""
    if prompt_set not in PROMPT_SETS:
        raise ValueError(f"prompt set must be one of {', '.join(PROMPT_SETS)}, got '{prompt_set}'")
    kind = "stories" if kind in ("short stories", "short_stories") else kind
    if kind not in KINDS:
        raise ValueError(f"prompt kind must be one of {', '.join(KINDS)}, got '{kind}'")
    if n_calls < 0:
        raise ValueError(f"n_calls must be >= 0, got {n_calls}")
    definition = " ".join(str(definition or "").split()).rstrip(".")
    text = PROMPT_SETS[prompt_set][kind].format(
        n=SENTENCES_PER_CALL,
        pos=pos,
        word=word,
        article=article(pos),
        definition=definition or f"the usual sense of the {pos}",
    )
    return [text] * n_calls
