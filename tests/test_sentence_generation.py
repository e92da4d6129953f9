"""Sentence generation: prompts, post-processing, rounds, provided files and output."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from synthetic_data import CAT

from expertalign.generation import generate_concept_sentences
from expertalign.prompts import build_prompts
from expertalign.sentence_filters import extract_sentences, word_pattern
from expertalign.sentences import (
    SentenceGenerationError,
    provided_concept_sentences,
    read_provided_sentences,
    write_sentences_atomic,
)

# --- prompts ------------------------------------------------------------------------------


def test_short_prompts_carry_word_pos_definition_and_style():
    facts = build_prompts("cat", "noun", CAT["definition"], "facts", 3, prompt_set="short")
    stories = build_prompts(
        "cat", "noun", CAT["definition"], "short stories", 2, prompt_set="short"
    )
    assert len(facts) == 3 and len(set(facts)) == 1 and len(stories) == 2
    for prompt in (facts[0], stories[0]):
        assert "noun 'cat'" in prompt
        assert "(feline mammal usually having thick soft fur)" in prompt
        assert "Refer to the concept only as 'cat'" in prompt
        assert "10" in prompt and "one sentence per line" in prompt.lower()
    assert "facts" in facts[0] and "stories" in stories[0]
    assert facts[0] != stories[0]
    with pytest.raises(ValueError, match="facts, stories"):
        build_prompts("cat", "noun", "", "poems", 1)


# --- post-processing ----------------------------------------------------------------------


def test_extract_strips_numbering_quotes_and_labels():
    raw = [
        "Here are 10 facts about cats:\n"
        "1. Cats sleep for most of the day.\n"
        '2) "A cat can jump five times its height."\n'
        "- Sentence: My cat hides under the bed.\n"
        "**Fact 4:** The cat purrs when it is happy.\n"
        "5. Dog: a canine mammal with a tail.\n"
        "6. “Every cat has whiskers on its face.”\n"
    ]
    assert extract_sentences(raw, "cat", "noun") == [
        "Cats sleep for most of the day.",
        "A cat can jump five times its height.",
        "My cat hides under the bed.",
        "The cat purrs when it is happy.",
        "Every cat has whiskers on its face.",
    ]


def test_inflections_and_word_boundaries():
    items = [
        "The cat sat here today.",
        "Two CATS sat here today.",
        "The category was long again.",
        "A bobcat is not the concept.",
        "Many boxes stood in the hall.",
        "Fresh berries grew there in June.",
        "She walked to the shop today.",
        "He is walking to the shop.",
        "They stopped at the old gate.",
        "The cat's toy was lost today.",
    ]
    text = ["\n".join(items)]
    assert extract_sentences(text, "cat", "noun") == [items[0], items[1], items[9]]
    assert extract_sentences(text, "box", "noun") == [items[4]]
    assert extract_sentences(text, "berry", "noun") == [items[5]]
    assert extract_sentences(text, "walk", "verb") == [items[6], items[7]]
    assert extract_sentences(text, "stop", "verb") == [items[8]]
    # Adjectives are not inflected; plural concept words also match their singular.
    assert word_pattern("red", "adjective").search("reds are nice") is None
    assert word_pattern("flowers", "noun").search("One flower bloomed.")
    assert word_pattern("glass", "noun").search("the glas") is None


def test_multi_word_concepts():
    raw = [
        "1. We ate ice cream at noon today.\n2. Two ice-creams melted in the sun.\n"
        "3. The ice was cold and the cream was sweet.\n4. Ice  Creams are cold treats indeed."
    ]
    assert extract_sentences(raw, "ice cream", "noun") == [
        "We ate ice cream at noon today.",
        "Two ice-creams melted in the sun.",
        "Ice Creams are cold treats indeed.",
    ]


def test_length_limits_dedupe_and_order():
    long = "The cat " + "ran far " * 30 + "away."
    raw = [
        "1. The cat sat.\n2. The cat sat on the mat.\n3. " + long,
        "1. the  CAT sat on the mat.\n2. A dog met the cat at noon.\n3. The cat sat on the mat.",
    ]
    assert extract_sentences(raw, "cat", "noun") == [
        "The cat sat on the mat.",
        "A dog met the cat at noon.",
    ]


def test_items_about_the_task_are_dropped():
    raw = [
        "1. The first story is about a cat.\n2. Each fact uses the word 'cat' once.\n"
        "3. The cat told the story of her life.\n4. This sentence mentions a cat twice."
    ]
    assert extract_sentences(raw, "cat", "noun") == ["The cat told the story of her life."]


def test_loops_and_non_words_are_not_sentences():
    raw = [
        "1. purple (purple) 6: 21\n2. There is no doctor, no doctor, no doctor here.\n"
        "3. The purple sky glowed over the hills.\n"
        "4. Purple is a color of kings. Purple is a color of dreams.\n"
        "5. A purple coat, a purple hat and purple shoes.\n"
        "6. A purple coat, a purple hat, purple shoes and a purple scarf.\n"
        "7. The fifth story is about a purple kite.\n8. The purple purple kite flew away."
    ]
    assert extract_sentences(raw, "purple", "adjective") == [
        "The purple sky glowed over the hills.",
        "A purple coat, a purple hat and purple shoes.",
    ]


# --- rounds with a scripted backend -------------------------------------------------------


class ScriptedBackend:
    """Answers each prompt with numbered sentences; how many mention the word is scripted."""

    name = "scripted"
    parallel_calls = 1

    def __init__(self, per_call: int = 10, word: str = "cat") -> None:
        self.per_call = per_call
        self.word = word
        self.calls: list[tuple[int, int]] = []

    def generate(self, prompts, seed):
        self.calls.append((len(prompts), seed))
        out = []
        for i, prompt in enumerate(prompts):
            kind = "fact" if "facts" in prompt else "tale"
            lines = [
                f"{j + 1}. A {kind} {seed % 1000} {i} {j} about one {self.word} here."
                for j in range(self.per_call)
            ]
            out.append("Sure! Here you go:\n" + "\n".join(lines) + "\n11. no word in this line")
        return out


def test_generate_balanced_halves_ids_and_format():
    backend = ScriptedBackend()
    df = generate_concept_sentences(CAT, backend, n_sentences=25, seed=0, max_rounds=2)
    assert list(df.columns) == ["sentence_id", "concept", "text", "prompt", "source"]
    assert df["sentence_id"].tolist() == [f"cat:{i:04d}" for i in range(25)]
    assert df["prompt"].value_counts().to_dict() == {"facts": 13, "stories": 12}
    assert df["prompt"].tolist() == ["facts"] * 13 + ["stories"] * 12
    assert df["text"].str.contains(" fact ").iloc[:13].all()
    assert df["text"].str.contains(" tale ").iloc[13:].all()
    assert (df["concept"] == "cat").all() and (df["source"] == "scripted").all()
    assert df["text"].is_unique
    # One round: 2 facts calls (13 at 10 per call) and 2 stories calls.
    assert [n for n, _ in backend.calls] == [4]


def test_generate_is_deterministic_given_the_seed():
    a = generate_concept_sentences(CAT, ScriptedBackend(), 10, seed=7, max_rounds=1)
    b = generate_concept_sentences(CAT, ScriptedBackend(), 10, seed=7, max_rounds=1)
    c = generate_concept_sentences(CAT, ScriptedBackend(), 10, seed=8, max_rounds=1)
    pd.testing.assert_frame_equal(a, b)
    assert a["text"].tolist() != c["text"].tolist()


def test_generate_runs_more_rounds_then_fails_clearly():
    backend = ScriptedBackend(per_call=2)
    df = generate_concept_sentences(CAT, backend, n_sentences=8, seed=0, max_rounds=3)
    assert len(df) == 8 and len(backend.calls) == 2
    assert len({seed for _, seed in backend.calls}) == 2  # each round samples afresh
    silent = ScriptedBackend(word="dog")
    expected = r"concept 'cat'.*found only 0 of 8 .*facts 0/4, stories 0/4.*3 rounds"
    with pytest.raises(SentenceGenerationError, match=expected):
        generate_concept_sentences(CAT, silent, n_sentences=8, seed=0, max_rounds=3)
    assert len(silent.calls) == 3


def test_generate_passes_per_prompt_stop_flags():
    seen: list[list[bool]] = []

    class Stopping(ScriptedBackend):
        parallel_calls = 4

        def generate(self, prompts, seed, stop_when=None):
            out = super().generate(prompts, seed)
            partial = [out[0]] + [""] * (len(out) - 1)  # only the first facts call so far
            seen.append(list(stop_when(partial)))
            seen.append(list(stop_when(out)))
            return out

    generate_concept_sentences(CAT, Stopping(), n_sentences=20, seed=0, max_rounds=1)
    assert seen == [[True, True, False, False], [True, True, True, True]]


# --- provided sentences and output --------------------------------------------------------


def test_read_provided_sentences_formats(tmp_path):
    (tmp_path / "s.txt").write_text("The cat sat.\n\n  A cat ran.  \n")
    assert read_provided_sentences(tmp_path / "s.txt") == ["The cat sat.", "A cat ran."]
    frame = pd.DataFrame(
        {"concept": ["cat", "dog", "cat"], "text": ["The cat sat.", "A dog ran.", "A cat ran."]}
    )
    frame.to_csv(tmp_path / "s.tsv", sep="\t", index=False)
    frame.to_csv(tmp_path / "s.csv", index=False)
    frame.to_parquet(tmp_path / "s.parquet")
    for name in ("s.tsv", "s.csv", "s.parquet"):
        assert read_provided_sentences(tmp_path / name) == frame["text"].tolist()
        assert read_provided_sentences(tmp_path / name, concept="cat") == [
            "The cat sat.",
            "A cat ran.",
        ]
    frame.rename(columns={"text": "sentence"}).to_csv(tmp_path / "bad.tsv", sep="\t")
    with pytest.raises(ValueError, match="no 'text' column"):
        read_provided_sentences(tmp_path / "bad.tsv")
    with pytest.raises(ValueError, match="unknown sentence file type"):
        read_provided_sentences(tmp_path / "s.json")


def test_provided_concept_sentences(tmp_path):
    (tmp_path / "cat.txt").write_text("The cat sat.\nthe  CAT sat.\nA cat ran.\nCats nap.\n")
    df = provided_concept_sentences(CAT, tmp_path / "cat.txt", n_sentences=2)
    assert df["text"].tolist() == ["The cat sat.", "A cat ran."]
    assert df["prompt"].tolist() == ["provided"] * 2
    assert df["sentence_id"].tolist() == ["cat:0000", "cat:0001"]
    with pytest.raises(SentenceGenerationError, match="'cat'.*3 distinct sentences, 5 needed"):
        provided_concept_sentences(CAT, tmp_path / "cat.txt", n_sentences=5)


def test_write_sentences_atomic(tmp_path):
    df = generate_concept_sentences(CAT, ScriptedBackend(), 4, seed=0, max_rounds=1)
    path = tmp_path / "out" / "cat.parquet"
    write_sentences_atomic(df, path)
    pd.testing.assert_frame_equal(pd.read_parquet(path), df)
    with pytest.raises(ValueError, match="lacks columns prompt, source"):
        write_sentences_atomic(df[["sentence_id", "concept", "text"]], path)

    def half_a_file(table, where, *args, **kwargs):
        Path(where).write_text("half a file")
        raise OSError("disk full")

    import pyarrow.parquet

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pyarrow.parquet, "write_table", half_a_file)
        with pytest.raises(OSError, match="disk full"):
            write_sentences_atomic(df, path)
    assert os.listdir(path.parent) == ["cat.parquet"]  # no temp file left, old file intact
    pd.testing.assert_frame_equal(pd.read_parquet(path), df)
