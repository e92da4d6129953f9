"""Prepare a job's process before it does any work: log file, offline model hub, threads, GPU.

    >>> from expertalign.jobs.runtime import start_job
    >>> start_job(snakemake.log[0], threads=snakemake.threads)                 # a CPU rule
    >>> start_job(snakemake.log[0], threads=snakemake.threads,
    ...           gpus=snakemake.resources, rule=snakemake.rule)               # a GPU rule

Call it first in a script, before anything imports ``huggingface_hub`` (which reads
``HF_HUB_OFFLINE`` at import) or torch/numba (which read the thread variables at import).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["start_job", "setup_logging"]


def setup_logging(log_path: str | None, threads: int | None = None, offline: bool = True) -> None:
    """Send logging, warnings and tracebacks of this process to the rule's log file.

    ``offline``: compute jobs never reach a model hub (compute nodes often have no network); the
    ``prefetch`` rule has put every model into the cache on the login node before they start.
    """
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        stream = open(log_path, "w", buffering=1)  # noqa: SIM115 - lives as long as the job
        sys.stderr = stream
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    logging.captureWarnings(True)
    if threads:
        # Through the environment, so that jobs which never use torch or numba do not pay for
        # importing them; both read these variables when they are first imported.
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[variable] = str(int(threads))
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(int(threads))


def start_job(
    log_path: str | None,
    *,
    threads: int | None = None,
    offline: bool = True,
    gpus: Mapping[str, Any] | None = None,
    rule: str = "",
) -> None:
    """Set up logging, offline mode and threads (:func:`setup_logging`); for a rule that asked
    for GPUs (``gpus`` is ``snakemake.resources``), stop unless torch sees one, rather than run
    on the CPU in float32 (:func:`expertalign.models.require_gpu`)."""
    setup_logging(log_path, threads, offline)
    if gpus is not None:
        from expertalign.models import gpus_requested, require_gpu

        require_gpu(gpus_requested(gpus), rule)
