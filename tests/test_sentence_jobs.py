"""Sentence jobs: which concepts a run plans (fingerprints of what shapes their sentences), one
generator load per batch, a failed concept that loses nothing already made, corpus sources with
a fallback, and the type/token ratio table."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from expertalign.jobs import sentences as sentence_jobs
from expertalign.sentence_plan import (
    batches,
    recorded_fingerprint,
    settings_fingerprint,
    shaping_settings,
    stale_concepts,
)
from expertalign.sentences import (
    ConceptFailedError,
    SentenceGenerationError,
    failure_of,
    read_concept_sentences,
    sentences_frame,
    write_sentences_atomic,
)

ROWS = {
    c: {"concept": c, "word": c, "pos": "noun", "definition": f"a {c}"}
    for c in ("cat", "dog", "fox")
}
GENERATED = {
    "backend": "transformers",
    "n_positives": 2,
    "seed": 0,
    "max_rounds": 1,
    "prompts": "short",
    "temperature": 0.8,
    "batch_size": 8,
    "openai_base_url": "http://a",
    "corpus": "brown",
    "corpus_min_words": 5,
    "corpus_max_words": 40,
    "fallback": None,
    "provided": None,
}
CORPUS = {**GENERATED, "backend": "corpus", "fallback": "generated"}


def test_speed_and_server_settings_do_not_shape_generated_sentences():
    base = shaping_settings(GENERATED)
    for key, value in [
        ("batch_size", 64),
        ("openai_base_url", "http://b"),
        ("corpus_min_words", 9),
    ]:
        assert shaping_settings({**GENERATED, key: value}) == base, key
    for key, value in [("prompts", "paper"), ("temperature", 0.5), ("n_positives", 3)]:
        assert shaping_settings({**GENERATED, key: value}) != base, key


def test_corpus_sentences_ignore_generator_settings_but_follow_their_fallback():
    base = shaping_settings(CORPUS, fallback_fingerprint="a")
    assert (
        shaping_settings(
            {**CORPUS, "prompts": "paper", "temperature": 0.1}, fallback_fingerprint="a"
        )
        == base
    )
    assert shaping_settings(CORPUS, fallback_fingerprint="b") != base
    assert shaping_settings({**CORPUS, "corpus_max_words": 20}, fallback_fingerprint="a") != base
    # a concept that has its corpus sentences does not depend on the fallback source at all
    own = shaping_settings(CORPUS)
    assert shaping_settings({**CORPUS, "fallback": "other"}) == own != base


def test_a_corpus_concept_is_current_with_either_of_its_fingerprints(tmp_path):
    frame = sentences_frame("cat", ["A cat sat.", "The cat ran."], "corpus", "corpus:x")
    write_sentences_atomic(frame, tmp_path / "cat.parquet", fingerprint="own")
    outputs = {"cat": str(tmp_path / "cat.parquet")}
    assert stale_concepts(outputs, {"cat": {"own", "with-fallback"}}) == []
    assert stale_concepts(outputs, {"cat": {"other", "with-fallback"}}) == ["cat"]


def test_a_provided_file_is_fingerprinted_by_its_content(tmp_path):
    one, two = tmp_path / "a.txt", tmp_path / "b.txt"
    one.write_text("A cat sat.\n")
    two.write_text("A cat sat.\n")
    assert shaping_settings(GENERATED, provided=str(one)) == shaping_settings(
        GENERATED, provided=str(two)
    )
    two.write_text("A cat ran.\n")
    assert shaping_settings(GENERATED, provided=str(one)) != shaping_settings(
        GENERATED, provided=str(two)
    )


def test_only_missing_or_differently_made_files_are_planned(tmp_path):
    prints = {c: settings_fingerprint(ROWS[c], GENERATED) for c in ROWS}
    outputs = {c: str(tmp_path / f"{c}.parquet") for c in ROWS}
    frame = sentences_frame("cat", ["A cat sat.", "The cat ran."], "facts", "x")
    write_sentences_atomic(frame, outputs["cat"], fingerprint=prints["cat"])
    write_sentences_atomic(frame.assign(concept="dog"), outputs["dog"], fingerprint="old")
    assert recorded_fingerprint(outputs["cat"]) == prints["cat"]
    assert stale_concepts(outputs, prints) == ["dog", "fox"]
    (tmp_path / "fox.parquet").write_bytes(b"not parquet")  # damaged: made again
    assert stale_concepts(outputs, prints) == ["dog", "fox"]
    assert settings_fingerprint({**ROWS["cat"], "definition": "other"}, GENERATED) != prints["cat"]


def test_batches_keep_order_and_size():
    assert batches(list("abcde"), 2) == [["a", "b"], ["c", "d"], ["e"]]
    assert batches([], 3) == []
    with pytest.raises(ValueError, match="at least 1"):
        batches(["a"], 0)


class CountingBackend:
    """Answers every prompt with two numbered sentences naming the word; fails for "dog"."""

    def __init__(self, fail: set[str] = frozenset()):
        self.fail, self.calls = fail, 0

    def generate(self, prompts, seed):
        self.calls += 1
        out = []
        for prompt in prompts:
            word = next(
                w for w in ROWS if f"'{w}'" in prompt or f" {w} " in prompt or f'"{w}"' in prompt
            )
            if word in self.fail:
                raise SentenceGenerationError(f"no sentences for {word}")
            out.append(
                f"1. The {word} walked to the river early.\n"
                f"2. A {word} slept on the warm roof all day."
            )
        return out


def _job(tmp_path, loads, backend, concepts=("cat", "dog", "fox")):
    def load(settings):
        loads.append(1)
        return backend

    return load, dict(
        settings=GENERATED,
        resume_dir=tmp_path / "resume",
        fingerprints={c: f"fp-{c}" for c in concepts},
    )


def test_one_generator_load_makes_every_concept_of_a_batch(tmp_path, monkeypatch):
    loads: list[int] = []
    load, job = _job(tmp_path, loads, CountingBackend())
    monkeypatch.setattr(sentence_jobs, "generation_backend", load)
    sentence_jobs.make_sentences([ROWS[c] for c in ROWS], tmp_path / "batch", **job)
    assert loads == [1]
    for concept in ROWS:
        path = tmp_path / "batch" / f"{concept}.parquet"
        frame = pd.read_parquet(path)
        assert len(frame) == 2 and frame["text"].str.contains(concept).all()
        assert recorded_fingerprint(path) == f"fp-{concept}"
        out = tmp_path / "sentences" / f"{concept}.parquet"
        sentence_jobs.move_out_of_batch(tmp_path / "batch", concept, out)
        pd.testing.assert_frame_equal(pd.read_parquet(out), frame)


def test_a_failed_concept_fails_the_job_by_name_and_loses_nothing(tmp_path, monkeypatch):
    loads: list[int] = []
    first = CountingBackend(fail={"dog"})
    load, job = _job(tmp_path, loads, first)
    monkeypatch.setattr(sentence_jobs, "generation_backend", load)
    with pytest.raises(sentence_jobs.SentenceBatchError) as err:
        sentence_jobs.make_sentences([ROWS[c] for c in ROWS], tmp_path / "batch", **job)
    assert "1 of 3 concepts failed" in str(err.value) and "dog: " in str(err.value)
    assert "no sentences for dog" in str(err.value)
    assert not (tmp_path / "batch").exists()  # nothing that looks finished
    kept = sorted(p.name for p in (tmp_path / "resume").iterdir())
    assert kept == ["cat.parquet", "fox.parquet"]
    made = first.calls
    # the next run makes only the failed concept; cat and fox come from the resume folder
    second = CountingBackend()
    monkeypatch.setattr(sentence_jobs, "generation_backend", lambda settings: second)
    sentence_jobs.make_sentences([ROWS[c] for c in ROWS], tmp_path / "batch", **job)
    assert 0 < second.calls < made
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == [
        "cat.parquet",
        "dog.parquet",
        "fox.parquet",
    ]
    assert not list((tmp_path / "resume").iterdir())


def test_a_resumed_file_with_other_settings_is_made_again(tmp_path, monkeypatch):
    backend = CountingBackend()
    monkeypatch.setattr(sentence_jobs, "generation_backend", lambda settings: backend)
    stale = sentences_frame(
        "cat", ["An old cat sentence here.", "Another old cat one."], "facts", "x"
    )
    write_sentences_atomic(stale, tmp_path / "resume" / "cat.parquet", fingerprint="old")
    sentence_jobs.make_sentences(
        [ROWS["cat"]],
        tmp_path / "batch",
        settings=GENERATED,
        resume_dir=tmp_path / "resume",
        fingerprints={"cat": "new"},
    )
    assert backend.calls > 0
    assert "old" not in " ".join(pd.read_parquet(tmp_path / "batch/cat.parquet")["text"])


def test_corpus_source_takes_sentences_and_falls_back_where_it_has_too_few(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "\n".join(
            [f"The cat number {i} sat on the old mat today." for i in range(5)]
            + ["One dog barked at the moon all night long."]
        )
    )
    fallback = tmp_path / "generated" / "dog.parquet"
    write_sentences_atomic(
        sentences_frame("dog", ["A dog ran home fast.", "The dog slept."], "facts", "generator"),
        fallback,
        fingerprint="g",
    )
    settings = {**CORPUS, "corpus": str(corpus)}
    sentence_jobs.make_sentences(
        [ROWS["cat"], ROWS["dog"]],
        tmp_path / "batch",
        settings=settings,
        resume_dir=tmp_path / "resume",
        fingerprints={"cat": "c", "dog": "d"},
        fallback={"cat": "unused", "dog": str(fallback)},
        fallback_fingerprints={"cat": "c+g", "dog": "d+g"},
    )
    # a concept that took its fallback's sentences records the fingerprint that includes them
    assert recorded_fingerprint(tmp_path / "batch/cat.parquet") == "c"
    assert recorded_fingerprint(tmp_path / "batch/dog.parquet") == "d+g"
    cat = pd.read_parquet(tmp_path / "batch/cat.parquet")
    assert len(cat) == 2 and cat["text"].str.contains("cat").all()
    assert (cat["prompt"] == "corpus").all()
    dog = pd.read_parquet(tmp_path / "batch/dog.parquet")
    assert dog["text"].tolist() == ["A dog ran home fast.", "The dog slept."]
    assert (dog["source"] == "fallback:generated").all()
    # without a fallback dog cannot get sentences: its file records why (naming the count),
    # with its fingerprint (not remade until its settings change), and the job goes on
    sentence_jobs.make_sentences(
        [ROWS["dog"], ROWS["cat"]],
        tmp_path / "batch2",
        settings={**settings, "fallback": None},
        resume_dir=tmp_path / "resume2",
        fingerprints={"dog": "d", "cat": "c"},
    )
    assert len(pd.read_parquet(tmp_path / "batch2/cat.parquet")) == 2
    failed = tmp_path / "batch2/dog.parquet"
    assert re.search(r"dog.*1 sentence.*2 needed", failure_of(failed))
    assert recorded_fingerprint(failed) == "d"
    with pytest.raises(ConceptFailedError, match=r"dog.*delete .*dog\.parquet to try again"):
        read_concept_sentences(failed)


def test_diversity_table_has_each_concept_and_a_mean_per_source(tmp_path):
    for source, texts in [
        ("generated", ["the cat the cat", "the cat"]),
        ("brown", ["a black cat sat", "one cat ran off"]),
    ]:
        write_sentences_atomic(
            sentences_frame("cat", texts, "facts", source), tmp_path / source / "cat.parquet"
        )
    out = tmp_path / "diversity.csv"
    sentence_jobs.diversity_table(
        [str(tmp_path / s / "cat.parquet") for s in ("generated", "brown")], str(out)
    )
    table = pd.read_csv(out)
    rows = {(r.source, r.concept): r.type_token_ratio for r in table.itertuples()}
    assert rows[("generated", "cat")] == pytest.approx(2 / 6, abs=1e-4)
    assert rows[("brown", "cat")] == pytest.approx(7 / 8, abs=1e-4)
    assert rows[("brown", "(mean)")] == pytest.approx(7 / 8, abs=1e-4)
