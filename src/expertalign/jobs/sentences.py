"""The jobs of workflow/rules/sentences.smk: models into the cache, sentences, negative bank.

    >>> from expertalign.jobs import runtime, sentences
    >>> runtime.start_job(snakemake.log[0], threads=snakemake.threads,
    ...                   gpus=snakemake.resources, rule=snakemake.rule)
    >>> sentences.make_sentences(concept_rows, batch_dir, settings=source_settings,
    ...                          fingerprints=prints, resume_dir="results/sentences/.unfinished/x",
    ...                          provided={"cat": "my/cat.txt"}, fallback={"dog": "..."},
    ...                          fallback_fingerprints={"dog": "..."}, data_dir="../shared/data")
    >>> sentences.move_out_of_batch(batch_dir, "cat", "results/sentences/generated/cat.parquet")

One job per rule: :func:`prefetch` (rule prefetch), :func:`make_sentences` (generate_sentences
and collect_sentences), :func:`move_out_of_batch` (sentences_from_batch and
pilot_sentences_from_batch), :func:`diversity_table` (sentence_diversity) and
:func:`negative_bank` (negative_bank).

In :func:`make_sentences` one load of a generator (or corpus) makes the sentences of a batch of
concepts. Each concept's table goes first to ``resume_dir`` (atomically, with its settings
fingerprint); when every concept is done they move into ``batch_dir``, the job's output, from
where the workflow moves each to its own file. A concept that fails does not stop the others;
the job then fails naming every failed concept, and the finished ones stay in ``resume_dir``,
from where the next run takes them instead of making them again (so a failure, a kill or a time
limit loses nothing already made). The generator is loaded only when the first concept needs it.
Its log has a line per concept (:class:`expertalign.progress.ConceptProgress`), and a concept
that takes long logs how far its rounds are (:mod:`expertalign.generation`)::

    concept 3 of 16 (cat): 14 sentences in 2 rounds, 0.52 sentences/s, elapsed 1:21, ETA 6:45
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from expertalign.sentence_plan import recorded_fingerprint

__all__ = [
    "SentenceBatchError",
    "prefetch",
    "generation_backend",
    "make_sentences",
    "move_out_of_batch",
    "diversity_table",
    "negative_bank",
]

log = logging.getLogger("expertalign")


class SentenceBatchError(RuntimeError):
    """Some concepts of a sentence batch failed; the message names each and why."""


def prefetch(source: str, revision: str, marker: str) -> None:
    """Download a model (or convert the embedded one) into the cache; write a marker file only
    once its config, tokenizer and weights are there (:func:`expertalign.fetch.prefetch` raises
    naming the model, the revision and what is missing, or how to get a gated model).

    The marker is the weights' record (:mod:`expertalign.provenance`: Hub commit, SHA-256 of the
    weight files), which expert and baseline jobs copy into their results; the record is also
    appended to the marker's history, and a revision whose commit or weights differ from the
    previous fetch's is logged as a warning (and kept in the record's ``changed_from``)."""
    from expertalign import provenance
    from expertalign.atomic import atomic_path
    from expertalign.fetch import prefetch as fetch

    (fetched,) = fetch([(source, revision)])
    log.info("fetched %s", fetched.describe())
    history = provenance.history_path(marker)
    record = provenance.weights_record(fetched, previous=provenance.last_fetch(history))
    for change in filter(None, record["changed_from"].split("; ")):
        log.warning("weights changed since the last prefetch: %s", change)
    log.info(
        "%s@%s: commit %s, weights sha256 %s",
        source,
        revision,
        record["commit"] or "(none: not a Hub snapshot)",
        record["weights_sha256"],
    )
    provenance.append_history(history, record)
    with atomic_path(marker) as tmp:
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))


def generation_backend(settings: Mapping[str, Any]) -> Any:
    """The configured generator: an OpenAI-compatible server, or a local transformers model."""
    if settings["backend"] == "openai":
        from expertalign.backends.openai_chat import OpenAIChatBackend

        return OpenAIChatBackend(
            settings["openai_base_url"],
            settings["generator"],
            settings["openai_api_key_env"],
            temperature=settings["temperature"],
            top_p=settings["top_p"],
            max_tokens=settings["max_new_tokens"],
            allow_insecure_http=settings.get("openai_allow_insecure_http", False),
        )
    from expertalign.backends.transformers_sampler import TransformersBackend
    from expertalign.models import load_model, sampling_dtype

    dtype = sampling_dtype(settings["dtype"])
    lm = load_model(settings["generator"], dtype=dtype)
    log.info("generator %s in %s", settings["generator"], dtype)
    return TransformersBackend(
        lm.model,
        lm.tokenizer,
        max_new_tokens=settings["max_new_tokens"],
        batch_size=settings["batch_size"],
        temperature=settings["temperature"],
        top_p=settings["top_p"],
        max_lines=settings["max_lines"],
        max_line_tokens=settings["max_line_tokens"],
        word_bias=settings["word_bias"],
        name=settings["generator"],
    )


class _Lazy:
    """A value made on first use (a generator or a corpus that no concept may need)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make, self._value, self._made = make, None, False

    def get(self) -> Any:
        if not self._made:
            self._value, self._made = self._make(), True
        return self._value


def _concept_sentences(
    concept: Mapping[str, Any],
    settings: Mapping[str, Any],
    *,
    provided: str | None,
    fallback: str | None,
    backend: _Lazy,
    corpus: _Lazy,
    on_round: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    from expertalign.generation import format_filter_counts, generate_concept_sentences
    from expertalign.sentences import provided_concept_sentences, sentences_frame

    name, n = concept["concept"], settings["n_positives"]
    if provided:
        return provided_concept_sentences(concept, provided, n)
    if settings["backend"] == "corpus":
        from expertalign.corpus import TooFewSentencesError

        try:
            texts = corpus.get().select(
                concept["word"],
                concept["pos"],
                n,
                seed=settings["seed"],
                concept=name,
                min_words=settings["corpus_min_words"],
                max_words=settings["corpus_max_words"],
            )
        except TooFewSentencesError as err:
            if not fallback:
                raise
            log.info(
                "%s: %d of %d sentences in corpus %s; taking source %r's instead",
                name,
                err.found,
                err.needed,
                err.corpus,
                settings["fallback"],
            )
            from expertalign.sentences import read_concept_sentences

            frame = read_concept_sentences(fallback)
            frame["source"] = f"fallback:{settings['fallback']}"
            return frame
        return sentences_frame(name, texts, "corpus", f"corpus:{corpus.get().name}")
    counts: dict[str, int] = {}
    try:
        return generate_concept_sentences(
            concept,
            backend.get(),
            n,
            seed=settings["seed"],
            max_rounds=settings["max_rounds"],
            prompts=settings["prompts"],
            filter_counts=counts,
            on_round=on_round,
        )
    finally:  # also when too few sentences passed: the counts say which filter took them
        log.info("%s: %s prompts; %s", name, settings["prompts"], format_filter_counts(counts))


def make_sentences(
    concepts: Sequence[Mapping[str, Any]],
    batch_dir: str | os.PathLike[str],
    *,
    settings: Mapping[str, Any],
    fingerprints: Mapping[str, str],
    fallback_fingerprints: Mapping[str, str] | None = None,
    resume_dir: str | os.PathLike[str],
    provided: Mapping[str, str] | None = None,
    fallback: Mapping[str, str] | None = None,
    data_dir: str | None = None,
) -> None:
    """Sentences of each concept into ``batch_dir/<concept>.parquet`` (see the module doc)."""
    from expertalign.progress import ConceptProgress
    from expertalign.sentences import write_sentences_atomic

    provided, fallback = provided or {}, fallback or {}
    fallback_prints = fallback_fingerprints or {}
    resume = Path(resume_dir)
    resume.mkdir(parents=True, exist_ok=True)
    backend = _Lazy(lambda: generation_backend(settings))

    def load() -> Any:
        from expertalign.corpus import load_corpus

        corpus = load_corpus(settings["corpus"], data_dir=data_dir)
        log.info("corpus %s", corpus)
        return corpus

    corpus = _Lazy(load)
    from expertalign.corpus import TooFewSentencesError
    from expertalign.sentences import (
        ConceptFailedError,
        NotEnoughSentencesError,
        retry_hint,
        write_failed_sentences,
    )

    cannot_be_made = (NotEnoughSentencesError, ConceptFailedError, TooFewSentencesError)
    failed: dict[str, str] = {}
    cannot: dict[str, str] = {}
    progress = ConceptProgress(len(concepts), "sentences", logger=log)
    log.info("sentences of %d concepts (backend %s)", len(concepts), settings["backend"])
    for concept in concepts:
        name = concept["concept"]
        done = resume / f"{name}.parquet"
        accepted = {fingerprints[name], fallback_prints.get(name, fingerprints[name])}
        if recorded_fingerprint(done) in accepted:
            log.info("%s: taken from %s (made by an earlier, unfinished job)", name, done)
            progress.skipped(name, "taken from an earlier, unfinished job")
            continue
        rounds: list[int] = []
        try:
            frame = _concept_sentences(
                concept,
                settings,
                provided=provided.get(name),
                fallback=fallback.get(name),
                backend=backend,
                corpus=corpus,
                on_round=lambda round_no, _kept, into=rounds: into.append(round_no),
            )
        except cannot_be_made as err:
            # seeded, so a retry would fail the same way: the concept's file records why, and
            # the other concepts, the bank and the shards without it go on
            log.error("%s: no sentences: %s; %s", name, err, retry_hint(done))
            write_failed_sentences(done, name, f"{type(err).__name__}: {err}", fingerprints[name])
            cannot[name] = str(err)
            progress.done(name, 0, "(cannot be made: recorded)")
            continue
        except Exception as err:  # noqa: BLE001 - reported below, with every other failure
            log.error("%s: %s", name, err)
            failed[name] = f"{type(err).__name__}: {err}"
            progress.done(name, 0, f"(failed after {_rounds(rounds)})" if rounds else "(failed)")
            continue
        log.info("%s: %d sentences", name, len(frame))
        made = f"in {_rounds(rounds)}" if rounds else f"from {frame['source'].iat[0]}"
        progress.done(name, len(frame), made)
        # a concept that took its fallback's sentences depends on them: its own fingerprint
        took_fallback = frame["source"].astype(str).str.startswith("fallback:").any()
        print_ = fallback_prints[name] if took_fallback else fingerprints[name]
        write_sentences_atomic(frame, done, fingerprint=print_)
    if failed:
        kept = len(concepts) - len(failed)
        raise SentenceBatchError(
            f"{len(failed)} of {len(concepts)} concepts failed:\n"
            + "\n".join(f"  {name}: {why}" for name, why in failed.items())
            + f"\nThe {kept} finished concepts are kept in {resume}/ and taken from there on "
            "the next run."
        )
    if cannot:
        log.error(
            "%d of %d concepts cannot get sentences with these settings (each recorded in its "
            "file; the workflow goes on without them): %s",
            len(cannot),
            len(concepts),
            ", ".join(cannot),
        )
    out = Path(batch_dir)
    out.mkdir(parents=True, exist_ok=True)
    for concept in concepts:
        os.replace(resume / f"{concept['concept']}.parquet", out / f"{concept['concept']}.parquet")


def _rounds(rounds: Sequence[int]) -> str:
    """``1 round``, ``2 rounds``: the rounds a concept's generation took (its last round)."""
    return f"{rounds[-1]} round" + ("" if rounds[-1] == 1 else "s")


def move_out_of_batch(
    batch_dir: str | os.PathLike[str], concept: str, output: str | os.PathLike[str]
) -> None:
    """One concept's finished table from its batch folder into its own file (a hard link where
    the file system allows, so the batch folder stays whole until the workflow removes it)."""
    import shutil

    from expertalign.atomic import atomic_path

    source = Path(batch_dir) / f"{concept}.parquet"
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp:
        tmp.unlink(missing_ok=True)
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)


def diversity_table(sentence_files: Sequence[str], output: str) -> None:
    """Type/token ratio of each concept's sentences, per source (the folder a file is in), and
    each source's mean over its concepts, as CSV."""
    from expertalign.atomic import atomic_path
    from expertalign.corpus import type_token_ratio
    from expertalign.sentences import failure_of

    rows = []
    for path in sentence_files:
        if failure_of(path) is not None:  # listed by `expertalign status`, not here
            continue
        texts = pd.read_parquet(path, columns=["text"])["text"].tolist()
        rows.append(
            {
                "source": Path(path).parent.name,
                "concept": Path(path).stem,
                "sentences": len(texts),
                "type_token_ratio": type_token_ratio(texts),
            }
        )
    frame = pd.DataFrame(rows)
    means = (
        frame.groupby("source", sort=False)
        .agg(sentences=("sentences", "mean"), type_token_ratio=("type_token_ratio", "mean"))
        .reset_index()
        .assign(concept="(mean)")
    )
    table = pd.concat([means[frame.columns], frame], ignore_index=True)
    with atomic_path(output) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")


def negative_bank(
    sentence_files: Sequence[str],
    output: str,
    *,
    size: int,
    seed: int,
    version: str,
    config: Mapping[str, Any] | None = None,
) -> None:
    """The negative bank: ``size`` sentences sampled evenly across the concepts' sentence files
    (seeded, tagged with ``version``), as Parquet
    (:func:`expertalign.negatives.build_negative_bank`); its metadata records the package
    version and the SHA-256 of ``config`` (:func:`expertalign.provenance.run_metadata`)."""

    from expertalign import provenance
    from expertalign.negatives import build_negative_bank
    from expertalign.sentences import failure_of
    from expertalign.storage import write_frame_atomic

    failed = {path: failure_of(path) for path in sentence_files}
    for path, why in failed.items():
        if why is not None:
            log.warning("bank %s: without %s: %s", version, path, why)
    frames = [pd.read_parquet(path) for path, why in failed.items() if why is None]
    bank = build_negative_bank(frames, size=size, seed=seed, version=version)
    log.info("bank %s: %d sentences from %d concepts", version, len(bank), len(frames))
    meta = {"bank_version": version, **provenance.run_metadata(config)}
    write_frame_atomic(bank, output, meta)
