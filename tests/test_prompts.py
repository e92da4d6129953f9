"""The paper's prompts (App. A) word for word, the prompt set chosen by the config, and the
sentence job's log of what each filter removed."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import yaml

from expertalign.config import validate_config
from expertalign.generation import ROUND_FILTERS, generate_concept_sentences
from expertalign.jobs import sentences as sentence_jobs
from expertalign.prompts import PROMPT_SETS, article, build_prompts
from expertalign.sentence_filters import FILTERS

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT.parent / "shared" / "paper" / "analyze-the-neurons-not-the-embeddings.txt"
CAT = {
    "concept": "cat",
    "word": "cat",
    "pos": "noun",
    "definition": "feline mammal usually having thick soft fur.",
}
# The paper's names for the slots of its prompts.
SLOTS = {
    "word": "[concept name]",
    "article": "[a/an]",
    "pos": "[adjective/noun/verb]",
    "definition": "[WordNet definition]",
    "n": 10,
}


def _paper_prompt(label: str) -> str:
    """The quoted prompt after `label` in the paper's App. A, with the page's line numbers
    (4-digit numbers in the text) and hyphenation at line ends removed, spaces normalised."""
    if not PAPER.is_file():
        pytest.skip(f"the paper is not at {PAPER}")
    text = PAPER.read_text(encoding="utf-8")
    match = re.search(re.escape(label) + r'\s*"(.+?)"', text, re.DOTALL)
    assert match, f"no {label!r} in {PAPER}"
    prompt = re.sub(r"\s*\b\d{4}\b\s*", " ", match.group(1))
    prompt = re.sub(r"(\w)- (\w)", r"\1\2", prompt)  # "con- cept" -> "concept"
    return " ".join(prompt.split())


@pytest.mark.parametrize(
    ("kind", "label"), [("facts", "Fact prompt:"), ("stories", "Story prompt:")]
)
def test_paper_prompts_are_the_papers_text(kind, label):
    ours = PROMPT_SETS["paper"][kind].format(**SLOTS)
    assert " ".join(ours.split()) == _paper_prompt(label)


def test_paper_prompts_fill_the_slots():
    facts = build_prompts("cat", "noun", CAT["definition"], "facts", 2)
    assert len(facts) == 2 and facts[0] == facts[1]
    assert facts[0] == (
        "Generate a set of 10 sentences, including as many facts as possible, about the concept "
        "cat as a noun and defined as feline mammal usually having thick soft fur. Refer to the "
        "concept only as cat without including specific classes, types, or names of cat. Make "
        "sure the sentences are diverse and do not repeat."
    )
    story = build_prompts("red", "adjective", "", "short stories", 1)[0]
    assert story.startswith(
        "Generate a set of 10 sentences, where each sentence is a short "
        "story about the concept red as an adjective and defined as the "
        "usual sense of the adjective. Refer to"
    )
    assert [article(p) for p in ("noun", "verb", "adjective")] == ["a", "a", "an"]
    with pytest.raises(ValueError, match="prompt set must be one of paper, short"):
        build_prompts("cat", "noun", "", "facts", 1, prompt_set="long")


def test_prompt_set_comes_from_the_config():
    schema = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    sentences = yaml.safe_load(schema.read_text())["properties"]["sentences"]["properties"]
    assert sentences["prompts"]["default"] == "paper"
    assert sentences["prompts"]["enum"] == sorted(PROMPT_SETS)
    default = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    assert default["sentences"]["prompts"] == "short"
    assert paper["sentences"]["prompts"] == "paper"
    del default["sentences"]["prompts"]
    assert validate_config(default, schema)["sentences"]["prompts"] == "paper"


class FilterBackend:
    """Answers every prompt with the same lines, one for each filter (and two good ones)."""

    name = "fake"
    parallel_calls = 1

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def generate(self, prompts, seed):
        self.prompts += prompts
        return [
            "Here are 10 facts about cats:\n"  # preamble
            "1. A cat.\n"  # length
            "2. The dog ran home fast today.\n"  # no_word
            "3. Cat cat cat, cats and a cat.\n"  # word_repeated
            "4. The first story is about a cat.\n"  # about_task
            "5. The cat sat sat on the mat.\n"  # loop
            "6. The cat sat on the mat.\n"
            "7. The  CAT sat on the mat.\n"  # duplicate
            "8. The cat ate fish at noon.\n"
        ] * len(prompts)


def test_filter_counts_add_up():
    counts: dict[str, int] = {}
    df = generate_concept_sentences(
        CAT, FilterBackend(), n_sentences=2, seed=0, max_rounds=1, filter_counts=counts
    )
    assert df["text"].tolist() == ["The cat sat on the mat.", "The cat ate fish at noon."]
    # Each of the two calls (facts, stories) removes one item per filter; of the stories
    # call's two good items, one is the facts' sentence (repeat); the facts call had one more
    # good item than its quota of 1 (surplus).
    assert counts == {
        "candidates": 18,
        **{name: 2 for name in FILTERS},
        "repeat": 1,
        "surplus": 1,
        "kept": 2,
    }
    assert counts["candidates"] == sum(counts[n] for n in (*FILTERS, *ROUND_FILTERS)) + 2


@pytest.mark.parametrize("prompt_set", ["paper", "short"])
def test_sentence_job_uses_the_configured_prompts_and_logs_filter_counts(
    prompt_set, tmp_path, monkeypatch, caplog
):
    backend = FilterBackend()
    monkeypatch.setattr(sentence_jobs, "generation_backend", lambda settings: backend)
    settings = {
        "n_positives": 2,
        "seed": 0,
        "max_rounds": 1,
        "prompts": prompt_set,
        "backend": "transformers",
    }
    with caplog.at_level(logging.INFO, logger="expertalign"):
        sentence_jobs.make_sentences(
            [CAT],
            tmp_path / "batch",
            settings=settings,
            fingerprints={"cat": "x"},
            resume_dir=tmp_path / "resume",
        )
    expected = {
        build_prompts("cat", "noun", CAT["definition"], k, 1, prompt_set)[0]
        for k in ("facts", "stories")
    }
    assert set(backend.prompts) == expected
    lines = [r.getMessage() for r in caplog.records if "candidates" in r.getMessage()]
    assert lines == [
        f"cat: {prompt_set} prompts; candidates 18, kept 2; removed: preamble 2, length 2, "
        "no_word 2, word_repeated 2, about_task 2, loop 2, duplicate 2, repeat 1, surplus 1"
    ]


def test_filter_counts_are_logged_when_generation_fails(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(sentence_jobs, "generation_backend", lambda settings: FilterBackend())
    settings = {
        "n_positives": 8,
        "seed": 0,
        "max_rounds": 1,
        "prompts": "paper",
        "backend": "transformers",
    }
    with caplog.at_level(logging.INFO, logger="expertalign"):
        sentence_jobs.make_sentences(
            [CAT],
            tmp_path / "batch",
            settings=settings,
            fingerprints={"cat": "x"},
            resume_dir=tmp_path / "resume",
        )
    # too few after every round: recorded in cat's file (seeded: a retry would fail the same)
    from expertalign.sentences import failure_of

    assert "found only 2 of 8" in failure_of(tmp_path / "batch" / "cat.parquet")
    assert any(
        "candidates 18, kept 2; removed: preamble 2" in r.getMessage() for r in caplog.records
    )
