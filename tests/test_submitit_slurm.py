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

import cloudpickle
import pytest

from slurm_cluster import local_slurm  # noqa: F401

submitit = pytest.importorskip("submitit")

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
    out = subprocess.run(["squeue", "--states=all", "-h", "-j", job_id, "-o", "%T"],
                         capture_output=True, text=True).stdout.strip()
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
    raise AssertionError(f"submitit job {job.job_id} ended as {_squeue_state(job.job_id)} "
                         f"without a result:\n{stderr[-5000:]}")


def test_submitit_cpu_job(local_slurm, tmp_path):
    t0 = time.monotonic()
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit")
    assert executor.cluster == "slurm"
    executor.update_parameters(slurm_partition="cpu", timeout_min=5, mem_gb=1, cpus_per_task=1,
                               name="expertalign-submitit-cpu")
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
    executor.update_parameters(slurm_partition="gpu", gpus_per_node=1, timeout_min=5, mem_gb=1,
                               cpus_per_task=1, name="expertalign-submitit-gpu")
    job = executor.submit(where_am_i, 3)
    out = _wait(job)
    assert out["square"] == 9
    assert out["partition"] == "gpu"
    assert out["cuda"] is not None and out["cuda"].split(",")[0].isdigit(), out
    print(f"[timing] submitit GPU job: {time.monotonic() - t0:.1f} s")


def test_expertalign_experts_of_one_concept_through_submitit(local_slurm, tmp_path):
    """The package's own API: one concept's AP vector computed in a SLURM job (GPU partition)."""
    import numpy as np

    from expertalign.submit import ExpertsRequest, compute_experts, run_experts
    from tiny_models import tiny_model, word_tokenizer

    model_dir = tmp_path / "tiny-neox"
    tiny_model("gpt_neox").save_pretrained(model_dir)
    word_tokenizer().save_pretrained(model_dir)
    request = ExpertsRequest(
        model=str(model_dir),
        positives=["the cat sat on the mat", "a cat was purring", "the cat and the dog"],
        negatives=["the red car drove fast", "she drove on the road", "blue chair",
                   "the table is green", "they were at the postman"],
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
