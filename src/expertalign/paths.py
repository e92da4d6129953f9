"""Where the workflow keeps its outputs (one place for the results layout).

    >>> from expertalign.paths import sentence_file, bank_file, expert_shard, parse_run
    >>> sentence_file("results", "brown", "cat")
    'results/sentences/brown/cat.parquet'
    >>> bank_file("results", "brown", "v1")
    'results/negatives/brown/bank-v1.parquet'
    >>> expert_shard("results", "brown", "pythia-70m", "step512", "0003")
    'results/experts/brown/pythia-70m/step512/shard-0003.arrow'
    >>> parse_run("results/experts/brown/pythia-70m/step512/shard-0003.arrow")
    Run(source='brown', model='pythia-70m', revision='step512', shard='0003')

Every result that depends on the sentences is keyed by the sentence source (``sentences.sources``)
first, then by model and checkpoint. The workflow's rules, the jobs that read paths back and
``expertalign experts --concept`` build and parse their paths here. Any argument may be a
Snakemake wildcard such as ``"{source}"``.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

__all__ = ["Run", "sentence_file", "bank_file", "expert_shard", "expert_benchmark", "parse_run"]


class Run(NamedTuple):
    """What a per-shard path says about its run."""

    source: str
    model: str
    revision: str
    shard: str


def sentence_file(results: str | os.PathLike[str], source: str, concept: str) -> str:
    """A concept's positive sentences from one sentence source."""
    return f"{os.fspath(results)}/sentences/{source}/{concept}.parquet"


def bank_file(results: str | os.PathLike[str], source: str, version: str) -> str:
    """The negative bank of one source and ``negatives.bank_version``."""
    return f"{os.fspath(results)}/negatives/{source}/bank-{version}.parquet"


def expert_shard(results: str | os.PathLike[str], source: str, model: str, revision: str,
                 shard: str) -> str:
    """One expert job's AP file."""
    return f"{os.fspath(results)}/experts/{source}/{model}/{revision}/shard-{shard}.arrow"


def expert_benchmark(results: str | os.PathLike[str], source: str, model: str, revision: str,
                     shard: str) -> str:
    """One expert job's Snakemake benchmark file."""
    return f"{os.fspath(results)}/benchmarks/experts/{source}/{model}/{revision}/shard-{shard}.tsv"


_RUN = re.compile(r"experts/([^/]+)/([^/]+)/([^/]+)/shard-(\d+)\.(?:arrow|tsv)$")


def parse_run(path: str | os.PathLike[str]) -> Run:
    """The source, model, checkpoint and shard of an expert shard or its benchmark file."""
    match = _RUN.search(os.fspath(path))
    if not match:
        raise ValueError(
            f"not an expert shard or benchmark path (.../experts/SOURCE/MODEL/REVISION/"
            f"shard-NNNN.arrow|tsv): {path}"
        )
    return Run(*match.groups())
