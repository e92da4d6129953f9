"""Where the workflow keeps its outputs, and what else follows from the config alone.

    >>> from expertalign.paths import bank_file, expert_shard, hub_revision, parse_run, shard_id
    >>> from expertalign.paths import sentence_file
    >>> sentence_file("results", "brown", "cat")
    'results/sentences/brown/cat.parquet'
    >>> bank_file("results", "brown", "v1")
    'results/negatives/brown/bank-v1.parquet'
    >>> expert_shard("results", "brown", "pythia-70m", "step512", shard_id(3))
    'results/experts/brown/pythia-70m/step512/shard-0003.arrow'
    >>> parse_run("results/experts/brown/pythia-70m/step512/shard-0003.arrow")
    Run(source='brown', model='pythia-70m', revision='step512', shard='0003')
    >>> hub_revision("main"), hub_revision("step512")
    (None, 'step512')

Every result that depends on the sentences is keyed by the sentence source (``sentences.sources``)
first, then by model and checkpoint. The workflow's rules (``workflow/rules/common.smk``), the
jobs that read paths back (:mod:`expertalign.jobs`) and ``expertalign experts --concept`` build
and parse their paths here. Any argument may be a Snakemake wildcard such as ``"{source}"``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

__all__ = [
    "Run",
    "DEFAULT_REVISIONS",
    "hub_revision",
    "config_models",
    "fetched_revision",
    "pilot_model_spec",
    "source_slug",
    "shard_id",
    "sentence_file",
    "bank_file",
    "pilot_sentence_file",
    "sentence_batch_dir",
    "prefetch_marker",
    "units_file",
    "expert_shard",
    "word_vectors_file",
    "expert_log",
    "expert_benchmark",
    "baselines_file",
    "similarity_file",
    "alignment_table",
    "domains_table",
    "causal_file",
    "parse_run",
    "shards_by_checkpoint",
]

# A model's final weights: "main" (the Hub's default branch) or "final" (the embedded model's one
# version); both load the default branch, so neither is passed to the Hub as a revision.
DEFAULT_REVISIONS = ("main", "final")


class Run(NamedTuple):
    """What a per-shard path says about its run."""

    source: str
    model: str
    revision: str
    shard: str


def hub_revision(revision: str | None) -> str | None:
    """The revision to ask the model hub for: ``None`` (its default branch) for a model's final
    weights (:data:`DEFAULT_REVISIONS`, or no revision), else ``revision`` itself."""
    return None if not revision or revision in DEFAULT_REVISIONS else revision


def source_slug(source: str) -> str:
    """A model source as one path component (Hugging Face ids contain a slash)."""
    return re.sub(r"[^A-Za-z0-9_.\-]+", "--", source)


def fetched_revision(source: str, revision: str) -> str:
    """The embedded model has one version whatever the revision: fetch (convert) it once."""
    return "final" if source == "embedded" else revision


def pilot_model_spec(config: Mapping[str, Any]) -> dict[str, Any]:
    """The pilot's model: a configured model by name, or any other source (e.g. gpt2)."""
    models = {m["name"]: m for m in config["models"]}
    name = (config.get("pilot") or {}).get("model") or config["models"][0]["name"]
    if name in models:
        return dict(models[name])
    return {"name": source_slug(name), "source": name, "revisions": ["main"]}


def config_models(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every (source, revision) a config's compute jobs load, once each and in order: the
    configured models at each checkpoint, the generator (transformers backend) and the pilot's
    model; revisions as the workflow names them (map them with :func:`hub_revision` for the hub).

    ``config`` has its schema defaults filled (:func:`expertalign.config.load_config`, or the
    workflow's validated config). The workflow's ``prefetch`` rule and ``expertalign prefetch
    --configfile`` both fetch this list (:func:`expertalign.fetch.prefetch`)."""
    from expertalign.config import sentence_sources

    pairs = [(m["source"], r) for m in config["models"] for r in m.get("revisions", ["main"])]
    for settings in sentence_sources(config).values():
        if settings.get("backend", "transformers") == "transformers":
            pairs.append((settings.get("generator", "embedded"), "main"))
    if (config.get("pilot") or {}).get("enabled", True):
        pilot = pilot_model_spec(config)
        pairs.append((pilot["source"], pilot.get("revisions", ["main"])[-1]))
    return list(dict.fromkeys((s, fetched_revision(s, r)) for s, r in pairs))


def shard_id(k: int) -> str:
    """The name of the ``k``-th shard of the concept table (zero-based), as paths carry it."""
    return f"{k:04d}"


def sentence_file(results: str | os.PathLike[str], source: str, concept: str) -> str:
    """A concept's positive sentences from one sentence source."""
    return f"{os.fspath(results)}/sentences/{source}/{concept}.parquet"


def pilot_sentence_file(results: str | os.PathLike[str], concept: str) -> str:
    """A pilot concept's own pool of sentences (``pilot.pool_size``)."""
    return f"{os.fspath(results)}/pilot/sentences/{concept}.parquet"


def sentence_batch_dir(results: str | os.PathLike[str], sentence_set: str, batch: str) -> str:
    """A sentence batch job's output folder (temporary: its files move to their own paths)."""
    return f"{os.fspath(results)}/sentences/.batches/{sentence_set}/{batch}"


def bank_file(results: str | os.PathLike[str], source: str, version: str) -> str:
    """The negative bank of one source and ``negatives.bank_version``."""
    return f"{os.fspath(results)}/negatives/{source}/bank-{version}.parquet"


def prefetch_marker(results: str | os.PathLike[str], slug: str, revision: str) -> str:
    """The marker of a model in the cache (``slug``: :func:`source_slug`)."""
    return f"{os.fspath(results)}/prefetch/{slug}/{revision}.json"


def units_file(results: str | os.PathLike[str], model: str) -> str:
    """The units table of a configured model (the same at every checkpoint)."""
    return f"{os.fspath(results)}/units/{model}.parquet"


def expert_shard(
    results: str | os.PathLike[str], source: str, model: str, revision: str, shard: str
) -> str:
    """One expert job's AP file."""
    return f"{os.fspath(results)}/experts/{source}/{model}/{revision}/shard-{shard}.arrow"


def word_vectors_file(
    results: str | os.PathLike[str], source: str, model: str, revision: str, shard: str
) -> str:
    """One expert job's word vectors (input embedding and last hidden state of each of its
    concepts' words), which the embedding baselines reduce."""
    return f"{os.fspath(results)}/vectors/{source}/{model}/{revision}/shard-{shard}.parquet"


def expert_log(
    results: str | os.PathLike[str], source: str, model: str, revision: str, shard: str
) -> str:
    """One expert job's log file."""
    return f"{os.fspath(results)}/logs/experts/{source}/{model}/{revision}/shard-{shard}.log"


def expert_benchmark(
    results: str | os.PathLike[str], source: str, model: str, revision: str, shard: str
) -> str:
    """One expert job's Snakemake benchmark file."""
    return f"{os.fspath(results)}/benchmarks/experts/{source}/{model}/{revision}/shard-{shard}.tsv"


def baselines_file(results: str | os.PathLike[str], model: str, revision: str) -> str:
    """Embedding-cosine baselines of every pair of concept words at one checkpoint, reduced
    from the expert jobs' word vectors (:func:`word_vectors_file`)."""
    return f"{os.fspath(results)}/baselines/{model}/{revision}.parquet"


def similarity_file(
    results: str | os.PathLike[str], source: str, model: str, revision: str, table: str
) -> str:
    """A similarity job's output: ``table`` is ``"pairs"`` or ``"sizes"``."""
    return f"{os.fspath(results)}/similarity/{source}/{model}/{revision}/{table}.parquet"


def alignment_table(
    results: str | os.PathLike[str],
    source: str,
    judgment: str,
    model: str,
    revision: str,
    suffix: str = "",
) -> str:
    """An alignment job's output: ``suffix`` ``""`` (the correlations) or ``"-vs-baselines"``."""
    return f"{os.fspath(results)}/alignment/{source}/{judgment}/{model}/{revision}{suffix}.parquet"


def domains_table(results: str | os.PathLike[str], model: str, revision: str) -> str:
    """A domains job's table."""
    return f"{os.fspath(results)}/domains/{model}/{revision}.parquet"


def causal_file(
    results: str | os.PathLike[str], source: str, model: str, revision: str, part: str
) -> str:
    """A causal-check job's table (expertalign.jobs.causal): effects, nulls, split, its rows of
    the cross-concept matrix and its concepts' unit sets, for one part of the concepts."""
    return f"{os.fspath(results)}/causal/{source}/{model}/{revision}/part-{part}.parquet"


_RUN = re.compile(r"experts/([^/]+)/([^/]+)/([^/]+)/shard-(\d+)\.(?:arrow|tsv)$")


def parse_run(path: str | os.PathLike[str]) -> Run:
    """The source, model, checkpoint and shard of an expert shard or its benchmark file
    (:func:`expert_shard`, :func:`expert_benchmark`)."""
    match = _RUN.search(os.fspath(path))
    if not match:
        raise ValueError(
            f"not an expert shard or benchmark path (.../experts/SOURCE/MODEL/REVISION/"
            f"shard-NNNN.arrow|tsv): {path}"
        )
    return Run(*match.groups())


def shards_by_checkpoint(
    paths: Iterable[str | os.PathLike[str]],
) -> dict[tuple[str, str], list[str]]:
    """Expert shard files (of one sentence source) grouped by (model, revision), read from their
    paths (:func:`parse_run`), in the order first seen."""
    runs: dict[tuple[str, str], list[str]] = {}
    for path in paths:
        run = parse_run(path)
        runs.setdefault((run.model, run.revision), []).append(os.fspath(path))
    return runs
