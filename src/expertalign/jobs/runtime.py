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
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "ALLOW_NO_GPU_ENV",
    "NoGPUError",
    "gpus_requested",
    "require_gpu",
    "setup_logging",
    "start_job",
]

# Set to 1 to let a job that asked for a GPU run on the CPU (a test cluster with fake GPUs).
ALLOW_NO_GPU_ENV = "EXPERTALIGN_ALLOW_NO_GPU"
log = logging.getLogger(__name__)


class NoGPUError(RuntimeError):
    """A job that asked for a GPU sees none (it would run on the CPU in float32 instead)."""


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


def gpus_requested(resources: Any) -> int:
    """GPUs a Snakemake job asked for: its ``gpu`` resource, else the count in a ``gres`` such
    as ``gpu:a100:1`` (sites that want ``--gres``; see profiles/slurm/README.md).
    ``resources`` is ``snakemake.resources`` or any mapping."""
    gpu = resources.get("gpu", 0) or 0
    if int(gpu) > 0:
        return int(gpu)
    total = 0
    for item in str(resources.get("gres", "") or "").split(","):
        parts = item.split("(")[0].strip().split(":")
        if parts[0] == "gpu":
            total += int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 1
    return total


def require_gpu(requested: int, rule: str) -> None:
    """Raise :class:`NoGPUError` when a job asked for ``requested`` > 0 GPUs and torch sees none.

    Without this check such a job quietly runs its model on the CPU in float32, hours slower,
    on a node the site charges as a GPU node. The message names the node, what
    ``CUDA_VISIBLE_DEVICES`` holds and whether torch was built with CUDA. Setting
    ``EXPERTALIGN_ALLOW_NO_GPU=1`` turns the error into a warning (a test cluster whose GPUs are
    fake)."""
    if requested <= 0:
        return
    import torch

    if torch.cuda.is_available():
        log.info("rule %s: %s on %s", rule, torch.cuda.get_device_name(0), socket.gethostname())
        return
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    where = (
        f"rule {rule} asked for {requested} GPU(s) but torch sees none on node "
        f"{socket.gethostname()} (CUDA_VISIBLE_DEVICES={visible!r}, "
        f"torch {torch.__version__}, {build})"
    )
    if os.environ.get(ALLOW_NO_GPU_ENV) == "1":
        log.warning("%s; running on the CPU because %s=1", where, ALLOW_NO_GPU_ENV)
        return
    raise NoGPUError(
        f"{where}: stopping instead of running on the CPU in float32. Check that the job got a "
        "GPU (the rule's `gpu`/`gres` in profiles/slurm/config.yaml; `nvidia-smi` on the node) and "
        "that torch was installed with CUDA (tools/setup.sh with EXPERTALIGN_TORCH=<CUDA torch "
        f"version>). To run GPU rules on the CPU on purpose, set {ALLOW_NO_GPU_ENV}=1."
    )


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
    on the CPU in float32 (:func:`require_gpu`)."""
    setup_logging(log_path, threads, offline)
    if gpus is not None:
        require_gpu(gpus_requested(gpus), rule)
