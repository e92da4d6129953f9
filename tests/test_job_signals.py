"""A job stopped by SIGTERM (SLURM's time limit or ``scancel``, Snakemake stopping it) or SIGHUP
leaves no temporary file or folder beside its outputs: ``start_job`` turns the signal into an
exception, the atomic blocks unwind, and the job exits with 128 + the signal's number.

Each test runs a real child process, signals it while it is inside an atomic block, and looks at
what is left on disk."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# argv: log, target, "path" or "dir", "1" to call start_job first
CHILD = textwrap.dedent(
    """
    import signal, sys, time
    from expertalign.atomic import atomic_dir, atomic_path
    from expertalign.jobs.runtime import start_job

    log, target, kind, install = sys.argv[1:5]
    for signum in (signal.SIGTERM, signal.SIGHUP):  # as in a plain shell, however pytest runs
        signal.signal(signum, signal.SIG_DFL)
    if install == "1":
        start_job(log)
    if kind == "path":
        with atomic_path(target) as tmp:
            tmp.write_text("half a table")
            print("inside", flush=True)
            time.sleep(120)
    else:
        with atomic_dir(target) as staging:
            (staging / "config.json").write_text("{")
            (staging / "weights").mkdir()
            (staging / "weights" / "part-1.bin").write_bytes(b"x" * 1000)
            print("inside", flush=True)
            time.sleep(120)
    print("finished", flush=True)
    """
)


def _signal_inside_block(
    tmp_path: Path, kind: str, signals: tuple[int, ...], install: bool = True
) -> tuple[int, str]:
    """Start the child, wait until it is inside the block, send ``signals``; its exit status and
    log."""
    log = tmp_path / "logs" / "job.log"
    target = tmp_path / "out" / ("out.txt" if kind == "path" else "model")
    cmd = [sys.executable, "-c", CHILD, str(log), str(target), kind, "1" if install else "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        if line != "inside\n":
            proc.kill()
            out, err = proc.communicate()
            log_text = log.read_text() if log.exists() else ""
            pytest.fail(f"the child did not reach the block: {line + out!r}\n{err}\n{log_text}")
        for signum in signals:
            proc.send_signal(signum)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    return proc.returncode, log.read_text() if log.exists() else ""


def _left_in(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` (hidden ones included), with file contents."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize(
    ("signum", "existing"),
    [(signal.SIGTERM, False), (signal.SIGTERM, True), (signal.SIGHUP, False)],
    ids=["sigterm-new", "sigterm-over-old", "sighup-new"],
)
def test_a_signalled_job_leaves_no_temporary_file(tmp_path, signum, existing):
    out = tmp_path / "out"
    out.mkdir()
    if existing:
        (out / "out.txt").write_bytes(b"the old table\n")
    before = _left_in(out)

    status, log = _signal_inside_block(tmp_path, "path", (signum,))

    assert status == 128 + signum, log
    assert _left_in(out) == before  # no .out.txt.*.tmp; the old file untouched, or none
    assert f"terminated by {signal.Signals(signum).name}" in log


@pytest.mark.parametrize("existing", [False, True], ids=["new", "over-old"])
def test_a_signalled_job_leaves_no_staging_folder(tmp_path, existing):
    out = tmp_path / "out"
    out.mkdir()
    if existing:
        (out / "model").mkdir()
        (out / "model" / "config.json").write_text('{"old": true}')
    before = _left_in(out)

    status, log = _signal_inside_block(tmp_path, "dir", (signal.SIGTERM,))

    assert status == 128 + signal.SIGTERM, log
    assert _left_in(out) == before  # no .model-* folder; the old model untouched, or none
    assert "terminated by SIGTERM" in log


def test_a_second_sigterm_does_not_cut_the_cleanup_short(tmp_path):
    """SLURM signals every process of a step, and Snakemake may signal its child as well."""
    (tmp_path / "out").mkdir()
    status, log = _signal_inside_block(tmp_path, "path", (signal.SIGTERM, signal.SIGTERM))
    assert status == 128 + signal.SIGTERM, log
    assert _left_in(tmp_path / "out") == {}


def test_without_start_job_a_sigterm_leaves_the_temporary_file(tmp_path):
    """Why start_job installs a handler: Python's default SIGTERM kills without unwinding."""
    status, _ = _signal_inside_block(tmp_path, "path", (signal.SIGTERM,), install=False)
    assert status == -signal.SIGTERM
    left = list((tmp_path / "out").iterdir())
    assert [p.name.startswith(".out.txt.") and p.name.endswith(".tmp") for p in left] == [True]


def test_an_ignored_sighup_stays_ignored_and_other_threads_change_nothing(tmp_path):
    code = textwrap.dedent(
        """
        import signal, sys, threading
        from expertalign.jobs.runtime import start_job, unwind_on_signals

        signal.signal(signal.SIGHUP, signal.SIG_IGN)            # as under nohup
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        from_thread = []
        thread = threading.Thread(target=lambda: from_thread.append(unwind_on_signals()))
        thread.start()
        thread.join()
        start_job(sys.argv[1])
        print(from_thread[0], [s.name for s in unwind_on_signals()],
              signal.getsignal(signal.SIGHUP) is signal.SIG_IGN)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "job.log")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr + (tmp_path / "job.log").read_text()
    assert result.stdout.split() == ["[]", "['SIGTERM']", "True"]
