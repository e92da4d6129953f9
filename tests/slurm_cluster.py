"""A real one-node SLURM cluster for tests: what the session fixture ``local_slurm`` runs, and
helpers.

A test asks for the cluster by naming the fixture (defined in ``tests/conftest.py``):

    from slurm_cluster import profile_for_local_cluster, run_snakemake

    def test_something(local_slurm, tmp_path):
        profile = profile_for_local_cluster(tmp_path / "profile", local_slurm)

The fixture installs SLURM and munge from Debian's packages (``tools/slurm/local-cluster.sh
install``), starts munged, slurmctld and slurmd by hand (``start``: no systemd needed), yields a
:class:`LocalSlurm`, and stops the daemons by their PID files at the end of the session
(``stop``). It skips, saying why, when not root, when the machine has no apt (not Debian or
Ubuntu), or when ``EXPERTALIGN_SKIP_SLURM=1``; in CI (``CI=true``) it fails instead, unless
``EXPERTALIGN_SKIP_SLURM=1``. A cluster that was already running and healthy
before the session is reused and left running.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from prerequisites import in_ci

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "slurm" / "local-cluster.sh"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SLURM_PROFILE = REPO / "profiles" / "slurm"


class OverTimeJob:
    """``sbatch --time=1`` of a 3-minute sleep, which SLURM must end as TIMEOUT; submitted when
    the cluster starts, so that the minute it takes passes while the other SLURM tests run. A
    thread follows its state in ``squeue`` (a finished job leaves squeue after MinJobAge)."""

    _ENDED = ("TIMEOUT", "COMPLETED", "FAILED", "CANCELLED")

    def __init__(self, folder: Path, deadline_s: float = 170) -> None:
        script = folder / "slow.sh"
        script.write_text("#!/bin/bash\nsleep 180\necho finished\n")
        self.out = folder / "slow.out"
        job = subprocess.run(
            ["sbatch", "--parsable", "--time=1", "--mem=50M", "-o", str(self.out), str(script)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        self.job_id = job.stdout.strip().split(";")[0]
        self.state = ""
        self.info = ""  # scontrol's view when it ended
        self._deadline = time.monotonic() + deadline_s
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while time.monotonic() < self._deadline:
            self.state = _run(["squeue", "--states=all", "-h", "-j", self.job_id, "-o", "%T"])
            self.state = self.state.stdout.strip()
            if self.state in self._ENDED:
                self.info = _run(["scontrol", "show", "job", self.job_id]).stdout
                return
            time.sleep(5)

    def final_state(self) -> str:
        """The state it ended in (or the last seen, if it had not ended by the deadline)."""
        self._thread.join(timeout=max(0.0, self._deadline - time.monotonic()) + 30)
        return self.state


@dataclass
class LocalSlurm:
    node: str
    cpus: int
    mem_mb: int
    gpu_type: str
    n_gpus: int
    partitions: list[str]
    start_seconds: float
    started_here: bool
    timings: dict[str, float] = field(default_factory=dict)
    over_time_job: OverTimeJob | None = None

    def squeue(self) -> str:
        return _run(["squeue", "--states=all", "-o", "%i %P %j %T %M %R"]).stdout

    def job_info(self, job_id: str | int) -> str:
        return _run(["scontrol", "show", "job", str(job_id)]).stdout


def _run(cmd: list[str], timeout: float = 60, check: bool = False) -> subprocess.CompletedProcess:
    # Output through a file, not a pipe: a daemon that kept the pipe open would hang us.
    with tempfile.TemporaryFile(mode="w+") as out:
        proc = subprocess.run(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        out.seek(0)
        text = out.read()
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{text[-6000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, text, "")


class JobRecorder:
    """Records ``scontrol show job -o`` of every job seen while it is active (a context manager):
    a finished job's record is gone after MinJobAge (600 s here), and a long test run may read
    it later than that. ``jobs``: job id -> its last one-line record."""

    def __init__(self, interval: float = 3.0) -> None:
        self.interval = interval
        self.jobs: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _poll(self) -> None:
        for line in _run(["scontrol", "show", "job", "-o"]).stdout.splitlines():
            if line.startswith("JobId="):
                self.jobs[line.split()[0].removeprefix("JobId=")] = line

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()

    def __enter__(self) -> JobRecorder:
        self._poll()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()


def _skip_reason() -> str | None:
    if os.environ.get("EXPERTALIGN_SKIP_SLURM") == "1":
        return "EXPERTALIGN_SKIP_SLURM=1"
    if not sys.platform.startswith("linux"):
        return "the local SLURM cluster needs Linux"
    if os.geteuid() != 0:
        return "the local SLURM cluster needs root (it installs packages and starts daemons)"
    if shutil.which("apt-get") is None or not Path("/etc/debian_version").exists():
        if not all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "munged")):
            return "the local SLURM cluster needs Debian/Ubuntu (apt-get) or SLURM installed"
    conf = Path("/etc/slurm/slurm.conf")
    if conf.exists() and "Written by tools/slurm/local-cluster.sh" not in conf.read_text():
        return f"{conf} belongs to a real SLURM installation; not replacing it with a test cluster"
    return None


def _node_facts() -> tuple[str, int, int, str, int, list[str]]:
    out = _run(["sinfo", "-h", "-N", "-o", "%N|%c|%m|%G|%P"], check=True).stdout
    rows = [line.split("|") for line in out.split()]
    node, cpus, mem, gres = rows[0][:4]
    partitions = [r[4].rstrip("*") for r in rows]
    # gres like gpu:a100:2 or gpu:a100:2(S:0)
    _, gpu_type, n = gres.split("(")[0].split(":")
    return node, int(cpus), int(mem), gpu_type, int(n), partitions


def skip_unless_startable() -> None:
    """Skip the calling fixture or test, saying why, when the cluster cannot start here; in CI
    fail instead, unless ``EXPERTALIGN_SKIP_SLURM=1``."""
    reason = _skip_reason()
    if reason:
        # .ci/run runs as root on Debian, where the cluster starts: in CI a skip would hide that
        # the SLURM tests did not run (EXPERTALIGN_SKIP_SLURM=1 still opts out explicitly)
        if in_ci() and os.environ.get("EXPERTALIGN_SKIP_SLURM") != "1":
            pytest.fail(f"the local SLURM cluster cannot start in CI: {reason}")
        pytest.skip(reason)


def start_cluster() -> LocalSlurm:
    """Install SLURM and munge if needed, start the daemons (a running, healthy cluster is
    reused) and describe the node."""
    t0 = time.monotonic()
    _run(["bash", str(SCRIPT), "install"], timeout=900, check=True)
    t_install = time.monotonic() - t0
    was_running = _run(["bash", str(SCRIPT), "status"]).returncode == 0
    t1 = time.monotonic()
    started = _run(["bash", str(SCRIPT), "start"], timeout=300, check=True)
    t_start = time.monotonic() - t1
    print(started.stdout, file=sys.stderr)
    node, cpus, mem, gpu_type, n_gpus, partitions = _node_facts()
    print(f"[local_slurm] install {t_install:.1f} s, start {t_start:.1f} s", file=sys.stderr)
    return LocalSlurm(
        node=node,
        cpus=cpus,
        mem_mb=mem,
        gpu_type=gpu_type,
        n_gpus=n_gpus,
        partitions=partitions,
        start_seconds=t_start,
        started_here=not was_running,
        timings={"install_s": round(t_install, 2), "start_s": round(t_start, 2)},
    )


def stop_cluster(cluster: LocalSlurm) -> None:
    """Stop the daemons if this session started them (``EXPERTALIGN_KEEP_SLURM=1`` keeps them)."""
    if cluster.started_here and os.environ.get("EXPERTALIGN_KEEP_SLURM") != "1":
        _run(["bash", str(SCRIPT), "stop"], timeout=120)


def profile_for_local_cluster(
    dst: Path, cluster: LocalSlurm, source: Path = SLURM_PROFILE, fast_polling: bool = True
) -> Path:
    """Copy the real SLURM profile to ``dst`` and adapt only what this one node needs.

    Kept as is: executor and plugin options, partitions, GPU model, rule names, logs dir.
    Changed: memory and threads, shrunk to what the one node has (the profile asks for real-node
    sizes that sbatch would refuse here; half the node's CPUs per job), ``retries`` 0 (fail
    fast), and, with ``fast_polling``, the first status check after 2 s instead of 40 s.
    """
    config = yaml.safe_load((source / "config.yaml").read_text())
    site = config.get("cluster-specific", {})
    missing = {site.get("cpu_partition"), site.get("gpu_partition")} - set(cluster.partitions)
    assert not missing, f"profile partitions {missing} not on the local cluster"
    assert site.get("gpu_model") == cluster.gpu_type, (site.get("gpu_model"), cluster.gpu_type)

    # Memory (every mem_mb, an int or the N of "N * attempt"; the cap holds the largest tiny
    # job: two Python processes with torch, the embedded model, about 2 GB), threads, retries 0
    # (fail fast: a failing job is not resubmitted in tests) and polling.
    return escalating_profile_for_local_cluster(
        dst, cluster, retries=0, source=source, fast_polling=fast_polling
    )


def run_snakemake(
    args: list[str], cwd: Path, timeout: float, env: dict | None = None
) -> subprocess.CompletedProcess:
    """``snakemake ARGS`` in ``cwd``; SIGINT on timeout (SIGTERM would leave jobs and locks)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    # The local cluster's GPUs are fake (/dev/fakegpu*) and torch here is a CPU build: the GPU
    # rules, which refuse to run without a GPU, run on the CPU on purpose (sbatch passes the
    # environment on to the jobs).
    full_env.update({"HF_HUB_OFFLINE": "1", "EXPERTALIGN_ALLOW_NO_GPU": "1", **(env or {})})
    with tempfile.TemporaryFile(mode="w+") as out:
        proc = subprocess.Popen(
            [SNAKEMAKE, *args],
            cwd=cwd,
            env=full_env,
            text=True,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        out.seek(0)
        text = out.read()
    if timed_out:
        queue = _run(["squeue", "--states=all"]).stdout
        raise AssertionError(
            f"snakemake {' '.join(args)} timed out after {timeout} s\n"
            f"squeue:\n{queue}\n{text[-8000:]}"
        )
    return subprocess.CompletedProcess(proc.args, proc.returncode, text, "")


def escalating_profile_for_local_cluster(
    dst: Path,
    cluster: LocalSlurm,
    *,
    site: dict[str, str] | None = None,
    mem_cap: int | None = None,
    retries: int = 1,
    source: Path = SLURM_PROFILE,
    fast_polling: bool = True,
) -> Path:
    """Copy the real SLURM profile to ``dst`` as a site would edit it, keeping its retry
    escalation (``"N * attempt"`` resources, the YTE-rendered GPU-type expressions).

    ``site`` replaces values of the ``cluster-specific`` block in the text, where their YAML
    anchors are defined (so that the aliases and YTE ``__variables__`` that use them follow).
    Memory is shrunk to this one node: every ``mem_mb`` (an int, or the N of ``"N * attempt"``)
    to at most ``mem_cap`` (default ``min(4000, node memory / 4)``, so that attempt 2 fits as
    well); threads and ``cpus_per_task`` to half the node's CPUs (two jobs at once). ``retries``
    is the real profile's 1 unless given; ``fast_polling`` as in :func:`profile_for_local_cluster`.
    """
    import re

    text = (source / "config.yaml").read_text()
    for key, value in (site or {}).items():
        text, n = re.subn(
            rf"^(\s+{re.escape(key)}: &{re.escape(key)} )\S+$",
            lambda m, value=value: m.group(1) + (value if value else "''"),
            text,
            count=1,
            flags=re.M,
        )
        assert n == 1, f"cluster-specific value {key!r} not found in {source}/config.yaml"
    config = yaml.safe_load(text)
    # half the node's CPUs per job, so that two jobs run at once (a job spends much of its time
    # starting Snakemake and Python, one core's work): the tests wait on the scheduler less
    cpus = max(1, cluster.cpus // 2)
    cap = mem_cap if mem_cap is not None else max(256, min(4000, cluster.mem_mb // 4))
    for resources in [
        config.get("default-resources", {}),
        *config.get("set-resources", {}).values(),
    ]:
        mem = resources.get("mem_mb")
        if isinstance(mem, int):
            resources["mem_mb"] = min(mem, cap)
        elif isinstance(mem, str):
            match = re.fullmatch(r"\s*(\d+)\s*\*\s*attempt\s*", mem)
            assert match, f"mem_mb {mem!r}: not of the form 'N * attempt'"
            resources["mem_mb"] = f"{min(int(match.group(1)), cap)} * attempt"
        if isinstance(resources.get("cpus_per_task"), int):
            resources["cpus_per_task"] = min(resources["cpus_per_task"], cpus)
    for rule, threads in config.get("set-threads", {}).items():
        config["set-threads"][rule] = min(int(threads), cpus)
    config["retries"] = retries
    if fast_polling:
        config["slurm-init-seconds-before-status-checks"] = 2
        config["seconds-between-status-checks"] = 2
        config["latency-wait"] = 5
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dst
