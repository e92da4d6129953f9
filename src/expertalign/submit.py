"""Compute one concept's experts interactively, locally or on a SLURM cluster through submitit.

    >>> from expertalign.submit import ExpertsRequest, run_experts
    >>> request = ExpertsRequest(model="EleutherAI/pythia-70m", revision="step143000",
    ...                          positives=cat_sentences, negatives=other_sentences)
    >>> result = run_experts(request, slurm={"slurm_partition": "gpu", "gpus_per_node": 1})
    >>> result.ap.shape, result.experts(0.5)          # AP vector, unit ids with AP > 0.5

A concept the workflow already has sentences for needs no sentence files: its positives and its
negatives (the same bank rows the workflow's expert job uses) are read from the results folder:

    >>> request = workflow_request("cat", "config/config.yaml", model="EleutherAI/pythia-70m",
    ...                            revision="step143000")

``slurm=None`` runs in this process. With ``slurm`` the request is pickled to a submitit job, which
runs on a node (offline compute nodes need the model pre-fetched: ``expertalign prefetch``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["ExpertsRequest", "ExpertsResult", "compute_experts", "run_experts", "workflow_request"]


@dataclass
class ExpertsRequest:
    model: str
    positives: Sequence[str]
    negatives: Sequence[str]
    revision: str | None = None
    random_init: bool = False
    seed: int = 0
    dtype: str = "auto"
    max_length: int = 128
    max_tokens: int = 4096


@dataclass
class ExpertsResult:
    ap: np.ndarray  # float32 [units]
    # pandas DataFrame: unit, layer, module, kind, submodule, index
    units: object = field(repr=False)

    def experts(self, tau: float) -> np.ndarray:
        """Unit ids whose AP is strictly greater than ``tau``."""
        return np.flatnonzero(self.ap > tau)


def workflow_request(
    concept: str,
    configfile: str | Path,
    *,
    model: str,
    source: str | None = None,
    **options: object,
) -> ExpertsRequest:
    """A request for one concept of a workflow run: its sentences and its negatives as the workflow
    has them (``results/sentences/<source>/<concept>.parquet`` and that source's negative bank;
    ``source`` defaults to the config's first sentence source).

    ``options`` are further :class:`ExpertsRequest` fields (``revision``, ``random_init``, ...).
    """
    import pandas as pd

    from expertalign import paths
    from expertalign.config import ConfigError, sentence_sources
    from expertalign.negatives import concept_negatives

    config = _workflow_config(configfile)
    sources = list(sentence_sources(config))
    source = source or sources[0]
    if source not in sources:
        raise ConfigError(
            f"{configfile}: no sentence source {source!r} in sentences.sources "
            f"({', '.join(sources)})"
        )
    sentences = Path(paths.sentence_file(config["results"], source, concept))
    bank_path = Path(
        paths.bank_file(config["results"], source, config["negatives"]["bank_version"])
    )
    for path in (sentences, bank_path):
        if not path.exists():
            raise FileNotFoundError(
                f"concept {concept!r}: {path} does not exist; make it first with "
                f"`snakemake --configfile {configfile} {path}`"
            )
    from expertalign.sentences import read_concept_sentences

    positives = read_concept_sentences(sentences)["text"].tolist()
    if not positives:
        raise ValueError(f"{sentences}: no sentences for concept {concept!r}")
    bank = pd.read_parquet(bank_path)
    rule = config["negatives"]
    rows = concept_negatives(
        bank,
        concept,
        rule["n_negatives"],
        positives,
        mode=rule.get("mode", "shared"),
        seed=rule.get("seed", 0),
    )
    negatives = bank["text"].iloc[rows].tolist()
    return ExpertsRequest(model=model, positives=positives, negatives=negatives, **options)


def _workflow_config(configfile: str | Path) -> dict:
    """The workflow's config with its schema's defaults filled in, as the workflow sees it."""
    from expertalign.config import load_config

    return load_config(configfile)


def compute_experts(request: ExpertsRequest) -> ExpertsResult:
    """Run in this process (also what a submitit job runs)."""
    from expertalign.extract import concept_expertise
    from expertalign.models import load_model
    from expertalign.units import find_units

    lm = load_model(
        request.model,
        request.revision,
        dtype=request.dtype,
        random_init=request.random_init,
        seed=request.seed,
    )
    layout = find_units(lm.model)
    ap = concept_expertise(
        lm,
        layout,
        request.positives,
        request.negatives,
        max_length=request.max_length,
        max_tokens=request.max_tokens,
    )
    return ExpertsResult(ap=ap, units=layout.table().to_pandas())


def run_experts(
    request: ExpertsRequest,
    slurm: Mapping[str, object] | None = None,
    folder: str | Path = "submitit",
    wait: bool = True,
    poll_s: float = 2.0,
):
    """Compute here (``slurm=None``) or submit to SLURM; returns the result, or the job if not
    ``wait``.

    ``slurm`` holds submitit parameters, e.g. ``{"slurm_partition": "gpu", "gpus_per_node": 1,
    "timeout_min": 30, "mem_gb": 32}``. Waiting gives up (and cancels the job) after the job's
    ``timeout_min`` plus ten minutes: without SLURM accounting submitit cannot see a job that
    died before writing its result, and would otherwise wait forever.
    """
    if slurm is None:
        return compute_experts(request)
    import submitit

    executor = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    executor.update_parameters(**dict(slurm))
    job = executor.submit(compute_experts, request)
    if not wait:
        return job
    deadline = time.monotonic() + 60 * (float(slurm.get("timeout_min", 60)) + 10)
    while not job.done():
        if time.monotonic() > deadline:
            job.cancel(check=False)
            raise TimeoutError(
                f"SLURM job {job.job_id} gave no result in time; its logs: {job.paths.stdout} "
                f"and {job.paths.stderr}"
            )
        time.sleep(poll_s)
    return job.result()
