"""Prepare a job's process before it does any work: log file, offline model hub, threads, GPU.

    >>> from expertalign.jobs.runtime import start_job
    >>> start_job(snakemake.log[0], threads=snakemake.threads)                 # a CPU rule
    >>> start_job(snakemake.log[0], threads=snakemake.threads,
    ...           gpus=snakemake.resources, rule=snakemake.rule)               # a GPU rule

Call it first in a script, before anything imports ``huggingface_hub`` (which reads
``HF_HUB_OFFLINE`` at import) or torch/numba (which read the thread variables at import).

It also makes SIGTERM and SIGHUP stop the job by an exception (:func:`unwind_on_signals`).
SLURM sends SIGTERM at a time limit or ``scancel`` (then SIGKILL after its KillWait, 30 s by
default), Snakemake sends it to the jobs it stops, a closed terminal sends SIGHUP; Python's default
action for both ends the process on the spot, without unwinding ``with`` blocks, so an output
being written through :mod:`expertalign.atomic` left its hidden temporary file or folder behind.
Now the main thread raises :class:`JobTerminated`, the blocks remove their temporaries, the log
says ``terminated by SIGTERM``, and the process exits with status 128 + the signal's number
(143 for SIGTERM), as a shell reports a job killed by a signal.

And it makes an uncaught exception write its whole traceback to the job's log and one line to
the terminal Snakemake runs in (:func:`report_failures`), ``rule prefetch failed:
ModelNotFoundError: … (log: results/logs/prefetch/….log)``: Snakemake itself shows only that the
script's command failed and the log's path, or, with ``--show-failed-logs``, the whole log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from expertalign import atomic

__all__ = [
    "ALLOW_NO_GPU_ENV",
    "TERMINATING_SIGNALS",
    "JobTerminated",
    "NoGPUError",
    "failure_line",
    "gpus_requested",
    "report_failures",
    "require_gpu",
    "setup_logging",
    "start_job",
    "unwind_on_signals",
]

# Set to 1 to let a job that asked for a GPU run on the CPU (a test cluster with fake GPUs).
ALLOW_NO_GPU_ENV = "EXPERTALIGN_ALLOW_NO_GPU"
log = logging.getLogger(__name__)
# What a job stops cleanly on. SIGINT raises KeyboardInterrupt already; SIGKILL cannot be caught.
TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class JobTerminated(SystemExit):
    """The job was sent a terminating signal. A ``SystemExit`` so that ``except Exception``
    does not stop it and the process exits with ``code`` = 128 + the signal's number, silently
    (the handler has logged why)."""

    def __init__(self, signum: int) -> None:
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"terminated by {signal.Signals(self.signum).name} (exit status {self.code})"


_handler_pid: int | None = None  # the process that installed the handler; forks inherit it
_terminated_by: int | None = None


def _log_quietly(level: int, message: str, *args: object) -> None:
    # A handler runs between two bytecodes of the main thread, which may be inside a write to
    # the same log stream ("reentrant call"): a lost log line must not stop the unwinding.
    with contextlib.suppress(Exception):
        log.log(level, message, *args)


def _on_terminating_signal(signum: int, frame: FrameType | None) -> None:
    global _terminated_by
    if os.getpid() != _handler_pid:
        # A forked child (multiprocessing) inherited the handler: it dies as it would have
        # without it, and writes nothing in the job's log.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    name = signal.Signals(signum).name
    if _terminated_by is not None:
        # SLURM signals every process of a job step and Snakemake may signal its child too, so a
        # second SIGTERM can follow within milliseconds; raising again could land in some
        # library's cleanup. If the first exception was swallowed, SIGKILL still ends the job.
        _log_quietly(logging.WARNING, "%s again while stopping; ignored", name)
        return
    _terminated_by = signum
    _log_quietly(
        logging.ERROR,
        "terminated by %s (a SLURM time limit or scancel, Snakemake stopping, or a closed "
        "terminal): stopping, removing unfinished outputs' temporary files, exit status %d",
        name,
        128 + signum,
    )
    # Through atomic.interrupt: held back while an atomic block creates or removes a temporary.
    atomic.interrupt(JobTerminated(signum))


def unwind_on_signals() -> list[signal.Signals]:
    """Make SIGTERM and SIGHUP raise :class:`JobTerminated` in this process's main thread, so
    that ``with`` blocks unwind (atomic outputs remove their temporaries) before it exits with
    status 128 + the signal's number. Returns the signals so handled.

    Only from the main thread (Python allows handlers nowhere else; elsewhere nothing changes),
    and only for a signal whose action is still the default: an ignored SIGHUP (``nohup``)
    stays ignored, and a handler someone else installed stays theirs. Calling it again is
    harmless. Only the first signal raises; repeats are logged and ignored."""
    global _handler_pid, _terminated_by
    if threading.current_thread() is not threading.main_thread():
        return []
    if _handler_pid != os.getpid():  # first call in this process (or in a fork)
        _handler_pid, _terminated_by = os.getpid(), None
    handled = []
    for signum in TERMINATING_SIGNALS:
        current = signal.getsignal(signum)
        if current is signal.SIG_DFL:
            signal.signal(signum, _on_terminating_signal)
        elif current is not _on_terminating_signal:
            continue
        handled.append(signum)
    return handled


# The terminal line quotes at most this much of a message; the log has all of it.
_MAX_LINE = 1000


def failure_line(error: BaseException, rule: str, log_path: str) -> str:
    """``rule R failed: Type: first line of the message (log: PATH)``: what the terminal shows of
    a job's uncaught exception (the log has the traceback and the whole message)."""
    try:
        text = str(error)
    except Exception:  # noqa: BLE001 - a broken __str__ must not hide that the job failed
        text = ""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(first) > _MAX_LINE:
        first = first[:_MAX_LINE] + " …"
    cause = f"{type(error).__name__}: {first}" if first else type(error).__name__
    return f"{f'rule {rule}' if rule else 'job'} failed: {cause} (log: {log_path})"


def _snakemake_rule() -> str:
    # A Snakemake script runs as __main__ with a global ``snakemake`` (the job's rule, wildcards,
    # ...); reading the rule here spares every script passing it.
    job = getattr(sys.modules.get("__main__"), "snakemake", None)
    return str(getattr(job, "rule", "") or "")


def report_failures(log_path: str, rule: str = "") -> None:
    """Make an uncaught exception write its whole traceback (its causes too) to the job's log
    and one line, :func:`failure_line`, to the process's original stderr: the terminal Snakemake
    runs in (on SLURM the job's output file). The process still exits with status 1.

    Without it the traceback goes to the log only (``sys.stderr`` is the log, see
    :func:`setup_logging`), and Snakemake's error says no more than that the script's command
    returned non-zero and where the log is; with ``--show-failed-logs`` it prints the whole log,
    tracebacks and all. ``rule`` defaults to the running Snakemake script's."""
    rule = rule or _snakemake_rule()

    def on_uncaught(
        kind: type[BaseException], error: BaseException, trace: TracebackType | None
    ) -> None:
        try:
            log.error("%s failed", f"rule {rule}" if rule else "job", exc_info=(kind, error, trace))
        except Exception:  # noqa: BLE001 - logging broken: the traceback goes to the log directly
            traceback.print_exception(kind, error, trace, file=sys.stderr)
        terminal = sys.__stderr__
        if terminal is not None and terminal is not sys.stderr:
            with contextlib.suppress(Exception):  # a closed terminal: the log has it all
                print(failure_line(error, rule, log_path), file=terminal, flush=True)

    sys.excepthook = on_uncaught


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
    """Set up logging, offline mode and threads (:func:`setup_logging`); make SIGTERM and
    SIGHUP unwind the job so that its outputs' temporary files are removed
    (:func:`unwind_on_signals`); make an uncaught exception put its traceback in the log and
    one line on the terminal (:func:`report_failures`); for a rule that asked for GPUs (``gpus``
    is ``snakemake.resources``), stop unless torch sees one, rather than run on the CPU in
    float32 (:func:`require_gpu`)."""
    setup_logging(log_path, threads, offline)
    unwind_on_signals()
    if log_path:
        report_failures(log_path, rule)
    if gpus is not None:
        require_gpu(gpus_requested(gpus), rule)
