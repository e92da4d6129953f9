"""A rerun that fails leaves the previous outputs in place (expertalign.previous_results).

A small workflow in ``tmp_path`` whose hooks are the real workflow's one-line calls: a run
succeeds, a params change makes a job fail at run time, and the old files must be there byte for
byte, with Snakemake still planning the rerun; a controller killed with SIGKILL mid-job leaves
the old files to ``expertalign restore``. The last test fails a job of the real workflow through
its inputs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from expertalign.previous_results import PREVIOUS, record_path

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
EXPERTALIGN = str(Path(sys.executable).with_name("expertalign"))

# `bank` fails at run time when its size is above 10 (no load-time check catches it), `shard`
# when its tau is negative; `bank` waits for a "release" file when its size is 99, so that a
# test can kill the controller while the job runs (its old output already deleted).
TOY_SNAKEFILE = """
from expertalign import previous_results

configfile: "config.yaml"

rule all:
    input: "results/bank.txt", "results/shard.txt"

rule bank:
    output: "results/bank.txt"
    params: size=config["size"]
    shell:
        "if [ {params.size} = 99 ]; then touch started; "
        "while [ ! -e release ]; do sleep 0.1; done; exit 1; fi; "
        "test {params.size} -le 10 && seq {params.size} > {output}"

rule shard:
    input: "results/bank.txt"
    output: "results/shard.txt"
    params: tau=config["tau"]
    shell: "test {params.tau} -ge 0 && (cat {input}; echo tau={params.tau}) > {output}"

onstart:
    previous_results.keep_previous(workflow, "results")

onsuccess:
    previous_results.discard_previous("results")

onerror:
    previous_results.restore_previous("results")
"""


def toy(root: Path, **config) -> None:
    (root / "Snakefile").write_text(TOY_SNAKEFILE, encoding="utf-8")
    (root / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


def run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SNAKEMAKE, "--cores", "1", "--directory", str(root), *args],
        cwd=root,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=300,
    )


def contents(root: Path) -> dict[str, bytes]:
    return {name: (root / "results" / name).read_bytes() for name in ("bank.txt", "shard.txt")}


@pytest.fixture()
def done(tmp_path: Path) -> Path:
    """The toy workflow, run once (size 5, tau 1)."""
    toy(tmp_path, size=5, tau=1)
    first = run(tmp_path)
    assert first.returncode == 0, first.stdout
    assert contents(tmp_path)["bank.txt"] == b"1\n2\n3\n4\n5\n"
    assert not (tmp_path / "results" / PREVIOUS).exists()  # nothing existed to keep
    return tmp_path


def test_failed_rerun_leaves_the_old_outputs_and_still_plans_the_rerun(done):
    before = contents(done)
    bank = done / "results/bank.txt"
    mtime = bank.stat().st_mtime_ns
    toy(done, size=50, tau=1)  # bank's params changed: Snakemake deletes it, the job fails
    failed = run(done)
    assert failed.returncode != 0
    assert "Error in rule bank" in failed.stdout
    assert "kept in" in failed.stdout
    assert f"restored the previous {bank}" in failed.stdout
    assert contents(done) == before
    assert bank.stat().st_mtime_ns == mtime
    # nothing was replaced, so nothing is left in .previous
    assert not (done / "results" / PREVIOUS).exists()
    # Snakemake wrote a record with the new params for the failed job; the old one is back, so
    # the restored file is not taken for the new result ...
    plan = run(done, "-n")
    assert plan.returncode == 0, plan.stdout
    assert "rule bank:" in plan.stdout
    assert "params have changed since last execution" in plan.stdout
    # ... and under the old config the old result is up to date, as before the failed run.
    toy(done, size=5, tau=1)
    assert "Nothing to be done" in run(done, "-n").stdout


def test_replaced_outputs_stay_kept_when_a_later_job_fails(done):
    before = contents(done)
    toy(done, size=6, tau=-1)  # bank reruns fine, then shard fails
    failed = run(done)
    assert failed.returncode != 0
    assert "Error in rule shard" in failed.stdout
    shard = done / "results/shard.txt"
    assert f"restored the previous {shard}" in failed.stdout
    assert shard.read_bytes() == before["shard.txt"]
    assert (done / "results/bank.txt").read_bytes() == b"1\n2\n3\n4\n5\n6\n"  # the new bank
    # the old bank, replaced by the new one, stays kept (and only it)
    (folder,) = (done / "results" / PREVIOUS).iterdir()
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["state"] == "kept"
    assert [e["rule"] for e in manifest["files"]] == ["bank"]
    assert (folder / manifest["files"][0]["saved"]).read_bytes() == before["bank.txt"]
    # the restored shard is older than the new bank and its params differ: it reruns
    plan = run(done, "-n")
    assert "rule shard:" in plan.stdout and "rule bank:" not in plan.stdout


def test_restore_command_after_the_controller_was_killed(done):
    before = contents(done)
    bank = done / "results/bank.txt"
    toy(done, size=99, tau=1)
    controller = subprocess.Popen(
        [SNAKEMAKE, "--cores", "1", "--directory", str(done)],
        cwd=done,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (done / "started").exists():
            assert controller.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        assert not bank.exists()  # Snakemake deleted it before the job ran
        os.killpg(controller.pid, signal.SIGKILL)  # no onerror hook now
        controller.wait(timeout=30)
    finally:
        (done / "release").touch()  # a job shell that outlived the kill exits
        if controller.poll() is None:
            os.killpg(controller.pid, signal.SIGKILL)
    assert not bank.exists()
    (folder,) = (done / "results" / PREVIOUS).iterdir()
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["state"] == "running"

    def restore() -> subprocess.CompletedProcess:
        return subprocess.run(
            [EXPERTALIGN, "restore", str(done / "results")],
            text=True,
            capture_output=True,
            timeout=120,
        )

    locked = restore()  # the killed run's locks are still there
    assert locked.returncode == 1
    assert "--unlock" in locked.stderr
    assert not bank.exists()
    assert run(done, "--unlock").returncode == 0
    restored = restore()
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout.splitlines() == [f"restored the previous {bank}"]
    assert contents(done) == before
    assert not (done / "results" / PREVIOUS).exists()
    # no "incomplete" error, no mistaken up-to-date: the params trigger still reruns bank
    plan = run(done, "-n")
    assert plan.returncode == 0, plan.stdout
    assert "params have changed since last execution" in plan.stdout
    toy(done, size=5, tau=1)
    assert "Nothing to be done" in run(done, "-n").stdout


def test_record_path_is_snakemakes(tmp_path):
    from snakemake.persistence.file import FilePersistence

    folder = tmp_path / ".snakemake"
    (folder / "metadata").mkdir(parents=True, exist_ok=True)
    fake = SimpleNamespace(_fetch_max_len=lambda subject: os.pathconf(subject, "PC_NAME_MAX"))
    for key in ("results/bank.txt", "/abs/" + "long-name/" * 60 + "x.parquet"):
        theirs = FilePersistence._record_path(fake, str(folder / "metadata"), key)
        assert record_path(folder, "metadata", key) == Path(theirs)


@pytest.mark.slow
def test_real_workflow_failed_bank_rerun_keeps_the_old_bank(tiny_run, tmp_path):
    """A sentence file that cannot be read (a run-time failure no load check sees) makes the
    negative bank rerun and fail: the old bank is back byte for byte and still planned."""
    from workflow_helpers import copy_of_run

    run_ = copy_of_run(tiny_run, tmp_path / "run")
    config = run_.config
    source = next(iter(config["sentences"]["sources"] or ["generated"]))
    bank = Path(config["results"]) / "negatives" / source / "bank-tiny.parquet"
    before = bank.read_bytes()
    for sentences in (Path(config["results"]) / "sentences" / source).glob("*.parquet"):
        sentences.write_bytes(b"not parquet")
    failed = run_.snakemake("--cores", "2", str(bank), check=False)
    assert failed.returncode != 0
    assert "Error in rule negative_bank" in failed.stdout
    assert f"restored the previous {bank}" in failed.stdout
    assert bank.read_bytes() == before
    plan = run_.snakemake("-n", str(bank))
    assert "negative_bank" in plan.stdout
