"""Read-only probes of a Snakemake working directory, its controller and SLURM.

    >>> from expertalign.status import probes
    >>> probes.incomplete_markers(".")        # {output path: {"external_jobid", "since"}}
    >>> locked, planned, since = probes.lock_outputs(".")
    >>> probes.snakemake_pids(".")            # controllers on this host, None without /proc
    >>> probes.squeue(probes.run_command)     # [{"id", "name", "state", "comment"}] or None
    >>> probes.first_error_line(probes.log_tail("results/logs/experts/....log"))

What they read, never taking Snakemake's lock (so they work while the controller runs and after
it died): ``.snakemake/incomplete/`` (one marker per output of a job that started and did not
finish: the output path, url-safe base64, as the file name; the SLURM job id inside),
``.snakemake/locks/`` (the outputs a controller plans to make), ``.snakemake/log/`` (the SLURM
run ids), the processes of this host (a ``snakemake`` process in the working directory) and,
where SLURM is there, ``squeue --me`` (the SLURM plugin names each job by the run id and puts
``rule_<rule>_wildcards_<values joined by _>`` in its comment), ``sacct`` and the SLURM logs
(``logs/slurm`` or ``.snakemake/slurm_logs``); and the results folder's logs and benchmark TSVs
(whose column ``s`` gives the time a finished job took).

Nothing here raises for a missing or unreadable file: a probe that cannot read says so by its
empty or None answer, so one bad file never stops the report.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Sequence

from expertalign.status.jobs import Job

__all__ = [
    "SACCT_FAILED",
    "SQUEUE_RUNNING",
    "Runner",
    "Tree",
    "benchmark_seconds",
    "display_path",
    "first_error_line",
    "incomplete_markers",
    "job_id_key",
    "lock_outputs",
    "log_tail",
    "mtime",
    "run_command",
    "sacct",
    "slurm_logs",
    "slurm_run_ids",
    "snakemake_pids",
    "squeue",
]

# Where the SLURM plugin writes each job's own log (stdout/stderr), relative to the working
# directory: its default, and profiles/slurm's `slurm-logdir`.
SLURM_LOG_DIRS = (".snakemake/slurm_logs", "logs/slurm")
# How much of a log's end is searched for its error.
TAIL_BYTES = 64 * 1024
SQUEUE_RUNNING = {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "RESIZING", "SIGNALING"}
SACCT_FAILED = {
    "FAILED",
    "OUT_OF_MEMORY",
    "TIMEOUT",
    "CANCELLED",
    "NODE_FAIL",
    "BOOT_FAIL",
    "DEADLINE",
    "PREEMPTED",
}
_TRACEBACK = "Traceback (most recent call last):"
_ERROR = re.compile(
    r"(?:\b[A-Z]\w*)?Error\b|\bERROR\b|\berror:|\bKilled\b|CANCELLED|DUE TO TIME LIMIT"
    r"|(?i:\boom\b|oom[-_ ]?kill|out of memory)"
)
_RUN_ID = re.compile(r"SLURM run ID: (\S+)")

# Runs a command and returns its stdout (a test's stand-in for squeue and sacct).
Runner = Callable[[Sequence[str]], str]


class Tree:
    """Existence and listings under the working directory, one ``listdir`` per folder (cheap on
    a shared file system with thousands of shards)."""

    def __init__(self, workdir: str) -> None:
        self.workdir = workdir
        self._listings: dict[str, frozenset[str]] = {}

    def abs(self, path: str) -> str:
        return os.path.normpath(os.path.join(self.workdir, path))

    def listing(self, folder: str) -> frozenset[str]:
        if folder not in self._listings:
            try:
                self._listings[folder] = frozenset(os.listdir(folder))
            except OSError:
                self._listings[folder] = frozenset()
        return self._listings[folder]

    def exists(self, path: str) -> bool:
        full = self.abs(path)
        return os.path.basename(full) in self.listing(os.path.dirname(full))

    def find(self, path: str, suffixed: bool) -> str | None:
        """``path`` (absolute) if it exists; with ``suffixed``, else ``STEM-<digest>.EXT``."""
        full = self.abs(path)
        folder, name = os.path.split(full)
        names = self.listing(folder)
        if name in names:
            return full
        if suffixed:
            stem, ext = os.path.splitext(name)
            hits = [
                os.path.join(folder, n)
                for n in names
                if n.startswith(f"{stem}-") and n.endswith(ext)
            ]
            if hits:  # the latest
                return max(hits, key=lambda p: mtime(p) or 0.0)
        return None


def mtime(path: str | None) -> float | None:
    """The modification time of ``path``; None when there is no path or no file."""
    if not path:
        return None
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None


def display_path(path: str, workdir: str) -> str:
    """A path as the user sees it: relative to the working directory when under it."""
    relative = os.path.relpath(path, os.path.abspath(workdir))
    return path if relative.startswith("..") else relative


# ------------------------------------------------------------------------------ .snakemake


def _decode_record(relative: str) -> str | None:
    """The path a Snakemake record file stands for (url-safe base64; long ones split into
    folders whose names start with ``@``)."""
    parts = relative.split(os.sep)
    encoded = "".join(p[1:] if p.startswith("@") else p for p in parts)
    try:
        return base64.urlsafe_b64decode(encoded.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def incomplete_markers(workdir: str = ".") -> dict[str, dict]:
    """Output path (absolute) -> ``{"external_jobid": ..., "since": mtime}`` for every
    incomplete marker under ``WORKDIR/.snakemake/incomplete``."""
    root = os.path.join(workdir, ".snakemake", "incomplete")
    markers: dict[str, dict] = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(folder, name)
            path = _decode_record(os.path.relpath(full, root))
            if path is None:
                continue
            try:
                with open(full, encoding="utf-8") as f:
                    record = json.load(f)
                since = os.stat(full).st_mtime
            except (OSError, ValueError):
                record, since = {}, None
            markers[os.path.normpath(os.path.join(workdir, path))] = {
                "external_jobid": (record or {}).get("external_jobid"),
                "since": since,
            }
    return markers


def lock_outputs(workdir: str) -> tuple[bool, set[str], float | None]:
    """Whether a lock is held on ``workdir``, the outputs the locking controller plans (absolute)
    and when it took the lock."""
    folder = os.path.join(workdir, ".snakemake", "locks")
    try:
        names = os.listdir(folder)
    except OSError:
        return False, set(), None
    locks = [n for n in names if re.fullmatch(r"\d+\.(input|output)\.lock", n)]
    planned: set[str] = set()
    since = [t for t in (mtime(os.path.join(folder, n)) for n in locks) if t is not None]
    for name in locks:
        if name.endswith(".output.lock"):
            try:
                with open(os.path.join(folder, name), encoding="utf-8") as f:
                    planned.update(
                        os.path.normpath(os.path.join(workdir, line.strip()))
                        for line in f
                        if line.strip()
                    )
            except OSError:
                continue
    return bool(locks), planned, min(since, default=None)


def snakemake_pids(workdir: str) -> list[int] | None:
    """Snakemake controllers on this host working in ``workdir`` (their cwd or ``--directory``);
    None where processes cannot be read (no /proc)."""
    if not os.path.isdir("/proc"):
        return None
    target = os.path.realpath(workdir)
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                args = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        is_snakemake = any(os.path.basename(a) == "snakemake" for a in args[:2]) or (
            "-m" in args[:3] and "snakemake" in args[:4]
        )
        # a job's own snakemake (a SLURM job step, a subprocess of the local executor)
        if not is_snakemake or any("slurm-jobstep" in a for a in args) or "--mode" in args:
            continue
        directory = cwd
        for flag in ("-d", "--directory"):
            if flag in args[:-1]:
                directory = os.path.join(cwd, args[args.index(flag) + 1])
        if os.path.realpath(directory) == target:
            found.append(int(entry))
    return found


# ------------------------------------------------------------------------------ logs, benchmarks


def log_tail(path: str, size: int = TAIL_BYTES) -> str:
    """The last ``size`` bytes of a log as text; empty when it cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def first_error_line(text: str) -> str | None:
    """The error a log ends in: the exception line of its last Python traceback, else the
    first line naming an error (``...Error``, ``error:``, ``Killed``, ``CANCELLED``, ``oom``,
    ``out of memory``); None when it names none."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == _TRACEBACK]
    if starts:
        for line in lines[starts[-1] + 1 :]:
            if line.strip() and not line[0].isspace():
                return line.strip()
    for line in lines:
        if _ERROR.search(line):
            return line.strip()
    return None


def benchmark_seconds(path: str) -> float | None:
    """The ``s`` column of a Snakemake benchmark TSV, summed over its rows (repeats)."""
    try:
        with open(path, encoding="utf-8") as f:
            header = f.readline().rstrip("\n").split("\t")
            column = header.index("s")
            values = [line.split("\t")[column] for line in f if line.strip()]
        return sum(float(v) for v in values) if values else None
    except (OSError, ValueError, IndexError):
        return None


# ------------------------------------------------------------------------------ SLURM


def run_command(args: Sequence[str]) -> str:
    """The :data:`Runner` of a real site: the command's stdout; raises when it fails."""
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def slurm_run_ids(workdir: str) -> set[str]:
    """The SLURM run ids (the job names) the controllers of ``workdir`` logged."""
    folder = os.path.join(workdir, ".snakemake", "log")
    ids: set[str] = set()
    try:
        names = os.listdir(folder)
    except OSError:
        return ids
    for name in names:
        try:
            with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as f:
                for line in f:
                    if "SLURM run ID" in line:
                        ids.update(_RUN_ID.findall(line))
        except OSError:
            continue
    return ids


def squeue(runner: Runner) -> list[dict[str, str]] | None:
    """The user's SLURM jobs (id, name, state, comment), or None when squeue cannot be run."""
    fmt = ["-h", "-o", "%i|%j|%T|%k"]
    for args in (["squeue", "--me", *fmt], ["squeue", "-u", getpass.getuser(), *fmt]):
        try:
            out = runner(args)
        except (OSError, subprocess.SubprocessError):
            continue
        jobs = []
        for line in out.splitlines():
            parts = line.strip().split("|", 3)
            if len(parts) == 4:
                jobs.append(dict(zip(("id", "name", "state", "comment"), parts)))
        return jobs
    return None


def sacct(runner: Runner, ids: Iterable[str]) -> dict[str, str]:
    """SLURM job id -> state (``CANCELLED by 123`` as ``CANCELLED``), for ``ids``; empty when
    sacct is not there."""
    ids = sorted(set(ids))
    states: dict[str, str] = {}
    for start in range(0, len(ids), 200):
        chunk = ids[start : start + 200]
        try:
            out = runner(["sacct", "-X", "-n", "-P", "-o", "JobIDRaw,State", "-j", ",".join(chunk)])
        except (OSError, subprocess.SubprocessError):
            return states
        for line in out.splitlines():
            parts = line.strip().split("|")
            if len(parts) >= 2 and parts[1]:
                states[parts[0]] = parts[1].split()[0]
    return states


def job_id_key(job_id: str) -> tuple[int, int]:
    """A SLURM job id (``123`` or array task ``123_4``) as a key that sorts it by submission."""
    head, _, task = job_id.partition("_")
    return (int(head) if head.isdigit() else -1, int(task) if task.isdigit() else -1)


def slurm_logs(tree: Tree, job: Job) -> list[str]:
    """The job's SLURM logs (``rule_RULE/WILDCARDS/JOBID.log``), oldest job first."""
    wildcards = job.slurm_comment.removeprefix(f"rule_{job.rule}").removeprefix("_wildcards_")
    found = []
    for base in SLURM_LOG_DIRS:
        rule_dir = tree.abs(os.path.join(base, f"rule_{job.rule}"))
        if os.path.basename(rule_dir) not in tree.listing(os.path.dirname(rule_dir)):
            continue
        folder = os.path.join(rule_dir, wildcards) if wildcards else rule_dir
        found += [os.path.join(folder, n) for n in tree.listing(folder) if n.endswith(".log")]
    return sorted(found, key=lambda p: job_id_key(os.path.splitext(os.path.basename(p))[0]))
