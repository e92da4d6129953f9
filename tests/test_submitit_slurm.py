"""submitit against the real one-node SLURM cluster (tools/slurm/local-cluster.sh).

Settings submitit needs here:
- ``slurm_partition``: ``cpu`` (default partition) or ``gpu``; GPUs with ``gpus_per_node=1``
  (or ``slurm_gres="gpu:<type>:1"`` for a given model).
- ``timeout_min`` and ``mem_gb`` that fit the node (sbatch refuses larger requests).
- nothing for Python: submitit runs ``sys.executable`` (this venv's python) on the node, which
  sees the same file system; no ``slurm_setup`` or ``python=`` is needed on one node.
- the function must be importable on the node or pickled by value: a function defined in a
  test module is not importable there (``tests/`` is not on the job's sys.path), hence
  ``cloudpickle.register_pickle_by_value`` below. Functions of the installed ``expertalign``
  package need nothing.
- no accounting: submitit polls ``sacct``, which fails here ("accounting storage is disabled");
  submitit logs a warning and still finds the result through its result pickle. A job that
  dies without writing one would wait forever, hence ``_wait`` with squeue below.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest
import submitit  # a dependency of expertalign (pyproject.toml): never skipped for lack of it

pytestmark = pytest.mark.slurm

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def where_am_i(x: int) -> dict:
    return {
        "square": x * x,
        "host": socket.gethostname(),
        "job_id": os.environ.get("SLURM_JOB_ID"),
        "partition": os.environ.get("SLURM_JOB_PARTITION"),
        "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "python": sys.executable,
    }


def _squeue_state(job_id: str) -> str:
    out = subprocess.run(
        ["squeue", "--states=all", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True
    ).stdout.strip()
    return out or "UNKNOWN"


def _wait(job, timeout: float = 180):
    """job.result(), but fail instead of hanging when the job ends without a result."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job.paths.result_pickle.exists():
            return job.result()
        state = _squeue_state(job.job_id)
        if state in {"FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL"}:
            break
        if state == "COMPLETED":
            time.sleep(2)  # let the result pickle appear
            if job.paths.result_pickle.exists():
                return job.result()
            break
        time.sleep(1)
    stderr = job.paths.stderr.read_text() if job.paths.stderr.exists() else "(no stderr)"
    subprocess.run(["scancel", job.job_id], capture_output=True)
    raise AssertionError(
        f"submitit job {job.job_id} ended as {_squeue_state(job.job_id)} "
        f"without a result:\n{stderr[-5000:]}"
    )


def test_submitit_cpu_job(local_slurm, tmp_path):
    t0 = time.monotonic()
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit")
    assert executor.cluster == "slurm"
    executor.update_parameters(
        slurm_partition="cpu",
        timeout_min=5,
        mem_gb=1,
        cpus_per_task=1,
        name="expertalign-submitit-cpu",
    )
    job = executor.submit(where_am_i, 7)
    out = _wait(job)
    assert out["square"] == 49
    assert out["job_id"] == str(job.job_id)
    assert out["partition"] == "cpu"
    assert out["python"] == sys.executable
    print(f"[timing] submitit CPU job: {time.monotonic() - t0:.1f} s")


def test_submitit_gpu_job(local_slurm, tmp_path):
    t0 = time.monotonic()
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit")
    executor.update_parameters(
        slurm_partition="gpu",
        gpus_per_node=1,
        timeout_min=5,
        mem_gb=1,
        cpus_per_task=1,
        name="expertalign-submitit-gpu",
    )
    job = executor.submit(where_am_i, 3)
    out = _wait(job)
    assert out["square"] == 9
    assert out["partition"] == "gpu"
    assert out["cuda"] is not None and out["cuda"].split(",")[0].isdigit(), out
    print(f"[timing] submitit GPU job: {time.monotonic() - t0:.1f} s")


def test_expertalign_experts_of_one_concept_through_submitit(local_slurm, tmp_path):
    """The package's own API: one concept's AP vector computed in a SLURM job (GPU partition)."""
    import numpy as np
    from tiny_models import tiny_model, word_tokenizer

    from expertalign.submit import ExpertsRequest, compute_experts, run_experts

    model_dir = tmp_path / "tiny-neox"
    tiny_model("gpt_neox").save_pretrained(model_dir)
    word_tokenizer().save_pretrained(model_dir)
    request = ExpertsRequest(
        model=str(model_dir),
        positives=["the cat sat on the mat", "a cat was purring", "the cat and the dog"],
        negatives=[
            "the red car drove fast",
            "she drove on the road",
            "blue chair",
            "the table is green",
            "they were at the postman",
        ],
    )
    result = run_experts(
        request,
        slurm={"slurm_partition": "gpu", "gpus_per_node": 1, "timeout_min": 5, "mem_gb": 1},
        folder=tmp_path / "submitit",
    )
    local = compute_experts(request)
    np.testing.assert_array_equal(result.ap, local.ap)
    assert len(result.units) == result.ap.size
    assert result.experts(0.5).size == int((local.ap > 0.5).sum())


def test_cli_experts_of_a_workflow_concept_on_the_gpu_partition(local_slurm, tmp_path):
    """`expertalign experts --concept … --slurm`: sentences and negatives from a results folder,
    computed in a SLURM job on a (fake) GPU, equal to the same request computed here."""
    import json

    import numpy as np
    import pandas as pd
    import yaml
    from tiny_models import tiny_model, word_tokenizer

    from expertalign.negatives import concept_negatives
    from expertalign.storage import read_expertise
    from expertalign.submit import ExpertsRequest, compute_experts

    model_dir = tmp_path / "tiny-neox"
    tiny_model("gpt_neox").save_pretrained(model_dir)
    word_tokenizer().save_pretrained(model_dir)
    results = tmp_path / "results"
    (results / "sentences/generated").mkdir(parents=True)
    (results / "negatives/generated").mkdir(parents=True)
    cat = ["the cat sat on the mat", "a cat was purring", "the cat and the dog"]
    pd.DataFrame(
        {"sentence_id": [f"cat:{i}" for i in range(3)], "concept": "cat", "text": cat}
    ).to_parquet(results / "sentences/generated/cat.parquet")
    bank_texts = [
        "the red car drove fast",
        "a cat sat",
        "she drove on the road",
        "blue chair",
        "the table is green",
        "they were at the postman",
        "the dog barked loudly",
    ]
    bank = pd.DataFrame(
        {
            "sentence_id": [f"s{i}" for i in range(7)],
            "concept": ["car", "cat", "road", "chair", "table", "postman", "dog"],
            "text": bank_texts,
            "bank_rank": [3, 0, 6, 1, 5, 2, 4],
        }
    )
    bank.to_parquet(results / "negatives/generated/bank-v1.parquet")
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "results": str(results),
                "models": [{"name": "tiny", "source": str(model_dir)}],
                "negatives": {"bank_source_concepts": 7, "bank_size": 7, "n_negatives": 5},
            }
        )
    )
    out = tmp_path / "cat.arrow"
    cli = str(Path(sys.executable).with_name("expertalign"))
    run = subprocess.run(
        [
            cli,
            "experts",
            "--model",
            str(model_dir),
            "--concept",
            "cat",
            "--configfile",
            str(config),
            "--slurm",
            "--partition",
            "gpu",
            "--gpus",
            "1",
            "--timeout-min",
            "5",
            "--submitit-folder",
            str(tmp_path / "submitit"),
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    # the negatives the workflow's expert job would pick: its config extends config/config.yaml
    from expertalign.config import load_config

    rule = load_config(config)["negatives"]
    rows = concept_negatives(bank, "cat", 5, mode=rule["mode"], seed=rule["seed"])
    negatives = bank["text"].iloc[rows].tolist()
    assert "a cat sat" not in negatives and len(negatives) == 5
    local = compute_experts(
        ExpertsRequest(model=str(model_dir), positives=cat, negatives=negatives)
    )
    concepts, ap = read_expertise([out])
    assert concepts == ["cat"]
    np.testing.assert_array_equal(ap[0], local.ap)
    assert summary["experts@0.5"] == int((local.ap > 0.5).sum())
    assert summary["n_units"] == local.ap.size
    # the job ran through SLURM: submitit left its logs with a SLURM job id in the name
    assert list((tmp_path / "submitit").glob("*_0_log.out"))
