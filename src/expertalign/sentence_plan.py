"""Which concepts' sentences a run must make, and in which batches (one generator load each).

    >>> from expertalign.sentence_plan import settings_fingerprint, stale_concepts, batches
    >>> prints = {c: settings_fingerprint(row, settings) for c, row in rows.items()}
    >>> todo = stale_concepts(output_paths, prints)     # missing, or made with other settings
    >>> batches(todo, 16)                                # table order, at most 16 per job

A concept's sentences depend on its row (word, part of speech, definition) and on its source's
settings, without the speed settings. Their fingerprint is stored inside the sentence file (in
the Parquet schema's metadata), so the workflow can plan, when it builds the DAG, only the
concepts whose file is missing or was made with other settings, and group them into jobs that
load the generator once. Adding one concept plans one concept; changing a setting of one source
plans that source's concepts again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "FINGERPRINT_KEY",
    "SPEED_SETTINGS",
    "shaping_settings",
    "settings_fingerprint",
    "recorded_fingerprint",
    "stale_concepts",
    "batches",
]

FINGERPRINT_KEY = b"expertalign.sentence_settings"
T = TypeVar("T")
# Settings that change how fast sentences are made, or where a server runs, not which sentences.
SPEED_SETTINGS = (
    "batch_size",
    "openai_api_key_env",
    "openai_allow_insecure_http",
    "openai_base_url",
    "concepts_per_job",
)
CORPUS_SETTINGS = ("corpus", "corpus_min_words", "corpus_max_words", "fallback")


def _file_identity(path: str | os.PathLike[str]) -> str:
    stat = Path(path).stat()  # a corpus may be gigabytes: its size and time, not its digest
    return f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def shaping_settings(
    settings: Mapping[str, Any],
    *,
    provided: str | None = None,
    fallback_fingerprint: str | None = None,
) -> dict[str, Any]:
    """The settings a concept's sentences depend on, with nothing else, so that only a change
    of these makes them again: for a ``provided`` file how many are taken and the file's
    content; for a corpus its settings (and, for a concept with too few corpus sentences, which
    takes its ``fallback`` source's, that source's fingerprint: pass ``fallback_fingerprint``);
    for a generator every setting except the speed ones and the corpus ones."""
    if provided:
        digest = hashlib.sha256(Path(provided).read_bytes()).hexdigest()
        return {"n_positives": settings["n_positives"], "provided": digest}
    if settings.get("backend") == "corpus":
        keys = ("backend", "n_positives", "seed", "corpus", "corpus_min_words", "corpus_max_words")
        shaping = {k: settings.get(k) for k in keys}
        if shaping["corpus"] != "brown" and Path(str(shaping["corpus"])).is_file():
            shaping["corpus"] = _file_identity(shaping["corpus"])
        if fallback_fingerprint is not None:  # the concept took its fallback source's sentences
            shaping["fallback"] = settings.get("fallback")
            shaping["fallback_fingerprint"] = fallback_fingerprint
        return shaping
    return {
        k: v
        for k, v in settings.items()
        if k not in (*SPEED_SETTINGS, *CORPUS_SETTINGS, "provided")
    }


def settings_fingerprint(concept: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """A digest of everything that shapes a concept's sentences."""
    text = json.dumps(
        {"concept": dict(concept), "settings": dict(settings)}, sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()


def recorded_fingerprint(path: str | os.PathLike[str]) -> str | None:
    """The fingerprint a sentence file was written with (None: missing, unreadable or none)."""
    import pyarrow.parquet as pq

    if not Path(path).is_file():
        return None
    try:
        metadata = pq.read_schema(path).metadata or {}
    except (OSError, ValueError):  # a damaged file is remade, not trusted
        return None
    value = metadata.get(FINGERPRINT_KEY)
    return value.decode() if value is not None else None


def stale_concepts(
    outputs: Mapping[str, str], fingerprints: Mapping[str, str | Collection[str]]
) -> list[str]:
    """Concepts (in ``outputs`` order) whose file is missing or holds none of the fingerprints
    it may have (a corpus concept: the one of its corpus sentences, or of its fallback's)."""

    def accepted(concept: str) -> Collection[str]:
        value = fingerprints[concept]
        return (value,) if isinstance(value, str) else value

    return [
        concept
        for concept, path in outputs.items()
        if recorded_fingerprint(path) not in accepted(concept)
    ]


def batches(items: Sequence[T], size: int) -> list[list[T]]:
    """``items`` in consecutive groups of at most ``size``."""
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    return [list(items[start : start + size]) for start in range(0, len(items), size)]
