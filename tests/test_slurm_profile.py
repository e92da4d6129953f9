"""profiles/slurm against a real one-node SLURM cluster (tools/slurm/local-cluster.sh).

The profile is copied and only what this one small node needs is changed (memory, threads,
polling speed: see ``profile_for_local_cluster``); executor, plugin options, partitions, GPU
model and rule names are the real profile's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from slurm_cluster import (
    REPO,
    SLURM_PROFILE,
    SNAKEMAKE,
    JobRecorder,
    profile_for_local_cluster,
    run_snakemake,
)

from expertalign.preflight import job_resources

pytestmark = pytest.mark.slurm

TOY_SNAKEFILE = r"""
rule all:
    input:
        "out/cpu.txt",
        "out/gpu.txt",


# A CPU rule of the real workflow: default partition.
rule units_table:
    output:
        "out/cpu.txt",
    shell:
        "echo host=$(hostname) job=$SLURM_JOB_ID partition=$SLURM_JOB_PARTITION > {output}"


# A GPU rule of the real workflow: the profile gives it gpu=1, gpu_model and the GPU partition.
rule experts:
    output:
        "out/gpu.txt",
    shell:
        "(env | grep -E '^(CUDA_VISIBLE_DEVICES|SLURM_JOB_GPUS|SLURM_STEP_GPUS|SLURM_GPUS"
        "|SLURM_JOB_PARTITION|SLURM_JOB_ID)=' || true) | sort > {output}"
"""


def _logdir(profile: Path) -> str:
    return yaml.safe_load((profile / "config.yaml").read_text())["slurm-logdir"]


def test_profile_is_plain_and_names_the_workflow_rules():
    """The real profile parses, uses the SLURM executor and knows the workflow's rule names."""
    config = yaml.safe_load((SLURM_PROFILE / "config.yaml").read_text())
    assert config["executor"] == "slurm"
    assert config["slurm-status-command"] == "squeue"
    assert config["slurm-keep-successful-logs"] is True
    gpu_rules = {"generate_sentences", "experts", "pilot", "causal"}
    # embedding_baselines reduces the word vectors of the expert jobs: no model, no GPU
    cpu_rules = {"negative_bank", "units_table", "embedding_baselines", "similarity", "alignment"}
    resources = config["set-resources"]
    for rule in gpu_rules:
        assert resources[rule]["gpu"] == 1
        assert resources[rule]["slurm_partition"] == config["cluster-specific"]["gpu_partition"]
        # gpu_model on the first submission, large_gpu_model on the retry (a YTE-rendered
        # expression of `attempt`, evaluated as Snakemake does)
        site = config["cluster-specific"]
        assert job_resources(rule, {}, 1)[0]["gpu_model"] == site["gpu_model"]
        assert job_resources(rule, {}, 2)[0]["gpu_model"] == site["large_gpu_model"]
    for rule in cpu_rules:
        assert resources[rule]["slurm_partition"] == config["cluster-specific"]["cpu_partition"]
        assert "gpu" not in resources[rule]
    rules_in_workflow = set()
    for smk in (REPO / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        rules_in_workflow |= set(re.findall(r"^rule (\w+):", text, flags=re.M))
        rules_in_workflow |= set(re.findall(r"^use rule \w+ as (\w+)", text, flags=re.M))
    assert gpu_rules | cpu_rules <= rules_in_workflow, "rules not found in workflow/rules/*.smk"
    # the expert jobs of models beyond experts.standard_gpu_mem_mb go to the larger cards
    large = resources["experts_large"]
    assert large["gpu"] == 1
    site = config["cluster-specific"]
    assert job_resources("experts_large", {}, 1)[0]["gpu_model"] == site["large_gpu_model"]
    assert job_resources("experts_large", {}, 2)[0]["gpu_model"] == site["retry_large_gpu_model"]
    unknown = set(resources) - rules_in_workflow
    assert not unknown, f"set-resources for rules the workflow lacks: {unknown}"


def test_cpu_and_gpu_rule_through_slurm_profile(local_slurm, tmp_path):
    t0 = time.monotonic()
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(TOY_SNAKEFILE)
    profile = profile_for_local_cluster(tmp_path / "profile", local_slurm)

    result = run_snakemake(["--profile", str(profile)], cwd=workdir, timeout=300)
    assert result.returncode == 0, f"{result.stdout[-8000:]}\n{local_slurm.squeue()}"

    cpu = (workdir / "out/cpu.txt").read_text()
    assert "partition=cpu" in cpu, cpu
    gpu = (workdir / "out/gpu.txt").read_text()
    assert "SLURM_JOB_PARTITION=gpu" in gpu, gpu
    assert re.search(r"^(CUDA_VISIBLE_DEVICES|SLURM_JOB_GPUS|SLURM_STEP_GPUS)=\d", gpu, re.M), gpu

    # SLURM's own logs, where the profile says, kept after success.
    logdir = workdir / _logdir(profile)
    gpu_logs = list((logdir / "rule_experts").rglob("*.log"))
    cpu_logs = list((logdir / "rule_units_table").rglob("*.log"))
    assert gpu_logs and cpu_logs, sorted(p.relative_to(workdir) for p in workdir.rglob("*.log"))
    assert "rule experts" in gpu_logs[0].read_text()

    # The scheduler got the GPU request: one GPU of the profile's model, on the GPU partition.
    info = local_slurm.job_info(gpu_logs[0].stem)
    assert "Partition=gpu" in info, info
    assert f"gpu:{local_slurm.gpu_type}:1" in info, info
    # cpus_per_task follows the rule's threads (set-threads), as the profile says.
    threads = yaml.safe_load((profile / "config.yaml").read_text())["set-threads"]["experts"]
    assert f"CPUs/Task={threads}" in info, info
    print(f"[timing] toy CPU+GPU workflow through SLURM: {time.monotonic() - t0:.1f} s")


TINY_CONFIG = REPO / "tests" / "data" / "tiny_config.yaml"
SOURCE = "generated"  # the tiny config's first sentence source, the one run through SLURM


@pytest.fixture(scope="module")
def tiny_slurm_run(local_slurm, tiny_run, tmp_path_factory):
    """The real workflow on the tiny config up to its alignment tables, every job a SLURM job.

    Run from the repository root (the tiny config's paths are relative to it), with results
    and SLURM logs under a temporary folder. Sentence generation through the embedded model is
    tested locally (the session's ``tiny_run``); here every concept has provided sentences, the
    local run's own (its generated concept's too), so the SLURM run measures scheduling, not
    sampling, and must compute exactly what the local run computed. Its first sentence source
    only: a second source adds the same kinds of jobs again (the local run has both).
    """
    tmp_path = tmp_path_factory.mktemp("tiny-slurm")
    t0 = time.monotonic()
    profile = profile_for_local_cluster(tmp_path / "profile", local_slurm)
    results = tmp_path / "results"
    logs = tmp_path / "slurm_logs"
    sentences = tmp_path / "sentences"
    # the originals: a test of the tiny run may be editing its copies at this moment
    shutil.copytree(REPO / "tests" / "data" / "sentences", sentences)
    generated = pd.read_parquet(tiny_run.results / "sentences/generated/frost.parquet")
    assert (generated["prompt"] != "provided").all(), "the local run generates frost"
    (sentences / "frost.txt").write_text("\n".join(generated["text"]) + "\n", encoding="utf-8")
    config = yaml.safe_load(TINY_CONFIG.read_text(encoding="utf-8"))
    # the other sources off (null: the schema's way, since Snakemake merges a --configfile
    # into the Snakefile's config/config.yaml)
    sources = config["sentences"]["sources"]
    sources.update({name: None for name in sources if name != SOURCE})
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    args = [
        "--profile",
        str(profile),
        "--configfile",
        str(configfile),
        "--config",
        f"results={results}",
        f"sentences={{'provided': '{sentences}/{{concept}}.txt'}}",
        "--slurm-logdir",
        str(logs),
    ]
    # Up to the alignment tables (rules of every kind: local, CPU and GPU, from the bank to the
    # summaries); the reductions past them are CPU rules like these, run by the session's tiny
    # run, and their sbatch requests are tried by test_slurm_preflight.
    targets = [
        str(results / "tables" / name) for name in ("alignment.csv", "experts_vs_baselines.csv")
    ]
    with JobRecorder() as recorder:  # what the scheduler granted each job
        result = run_snakemake([*args, *targets], cwd=REPO, timeout=2400)
    assert result.returncode == 0, f"{result.stdout[-10000:]}\n{local_slurm.squeue()}"
    print(f"[timing] tiny workflow through SLURM: {time.monotonic() - t0:.1f} s")
    # The SLURM log of a job is <logdir>/rule_experts/<wildcards>/<job id>.log.
    expert_jobs = {
        path.stem: recorder.jobs.get(path.stem, "(never seen by scontrol)")
        for path in logs.rglob("*.log")
        if "rule_experts" in path.parts
    }
    return results, logs, args, expert_jobs


@pytest.mark.slow
def test_tiny_workflow_through_slurm(local_slurm, tiny_slurm_run):
    results, logs, _, expert_jobs = tiny_slurm_run
    table = pd.read_csv(results / "tables" / "alignment.csv")
    assert set(table["model"]) == {"tiny-llama", "tiny-llama-random"}
    assert table["rho"].dropna().between(-1, 1).all()
    # every expert job (2 models x 2 shards) ran on the GPU partition with one GPU of the
    # profile's model, and its SLURM log is kept where the profile says
    assert len(expert_jobs) == 4, sorted(p.relative_to(logs) for p in logs.rglob("*.log"))
    for job, info in expert_jobs.items():
        assert "Partition=gpu" in info, (job, info)
        assert f"gpu:{local_slurm.gpu_type}:1" in info, (job, info)


@pytest.mark.slow
def test_slurm_shards_equal_a_local_runs(tiny_slurm_run, tiny_run):
    """The same workflow with the same seeds and sentences, run without SLURM (the session's
    tiny run): the same negative bank and the same AP vectors in every shard of both models (the
    random-init model's weights come from its configured seed, whichever process draws them)."""
    import numpy as np

    from expertalign.storage import read_expertise

    results, _, _, _ = tiny_slurm_run
    local = tiny_run.results
    shards = sorted(p.relative_to(results) for p in (results / "experts").rglob("shard-*.arrow"))
    assert len(shards) == 4, shards
    for bank in (f"negatives/{SOURCE}/bank-tiny.parquet",):
        pd.testing.assert_frame_equal(
            pd.read_parquet(local / bank), pd.read_parquet(results / bank)
        )
    for shard in shards:
        slurm_concepts, slurm_ap = read_expertise([results / shard])
        local_concepts, local_ap = read_expertise([local / shard])
        assert local_concepts == slurm_concepts, shard
        np.testing.assert_allclose(local_ap, slurm_ap, rtol=0, atol=1e-6, err_msg=str(shard))


def _take_away_shard(results: Path, shard_id: str):
    """Remove one expert shard of the tiny SLURM run (generated, tiny-llama) and its job log:
    (the shard's path, its AP before, the log's path)."""
    from expertalign.storage import read_expertise

    final = Path("generated") / "tiny-llama" / "final"
    shard = results / "experts" / final / f"shard-{shard_id}.arrow"
    _, before = read_expertise([shard])
    shard.unlink()
    job_log = results / "logs" / "experts" / final / f"shard-{shard_id}.log"
    job_log.unlink()
    return shard, before, job_log


@pytest.mark.slow
def test_preempted_expert_job_leaves_nothing_finished_and_reruns(local_slurm, tiny_slurm_run):
    """scancel an expert job while it computes (as a pre-emption would): its shard file must not
    exist afterwards, Snakemake's message names the SLURM log, and a rerun completes it."""
    import numpy as np

    from expertalign.storage import read_expertise

    results, logs, args, _ = tiny_slurm_run
    shard, before, job_log = _take_away_shard(results, "0001")
    cancelled: list[str] = []

    def cancel_once_running() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not job_log.exists():
            time.sleep(0.2)
        jobs = subprocess.run(
            ["squeue", "-h", "-t", "RUNNING", "-o", "%i"], capture_output=True, text=True
        ).stdout.split()
        for job in jobs:
            subprocess.run(["scancel", job], check=True)
            cancelled.append(job)

    watcher = threading.Thread(target=cancel_once_running)
    watcher.start()
    killed = run_snakemake([*args, str(shard)], cwd=REPO, timeout=900)
    watcher.join()
    assert cancelled, f"the expert job never started:\n{killed.stdout[-5000:]}"
    assert killed.returncode != 0, killed.stdout[-5000:]
    assert not shard.exists()
    assert not list(shard.parent.glob("shard-0001*")), list(shard.parent.iterdir())
    # the failed job's SLURM log is named in Snakemake's output and is there to read
    named = re.findall(r"log: (\S+\.log)\)", killed.stdout)
    assert named and all(Path(p).exists() for p in named), killed.stdout[-5000:]

    rerun = run_snakemake([*args, str(shard)], cwd=REPO, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-8000:]
    _, after = read_expertise([shard])
    np.testing.assert_allclose(after, before, atol=1e-6)


@pytest.mark.slow
def test_the_readme_restart_after_the_controller_dies(local_slurm, tiny_slurm_run, tmp_path):
    """README "After the controller dies", step by step, on a real SLURM job: kill -9 the
    controller while its expert job runs; `expertalign status` reports the lock without its
    controller and counts the job still in SLURM; the job is awaited (squeue) before anything
    else starts; then `--unlock` and a restart: the orphan's shard is kept, equal to before, and
    no second job of that shard is submitted (the jobs scontrol showed)."""
    import os
    import signal

    import numpy as np

    from expertalign.storage import read_expertise

    results, _logs, args, _ = tiny_slurm_run
    shard, before, job_log = _take_away_shard(results, "0000")
    # the plugin's comment: rule_RULE_wildcards_ + the wildcard values joined by _
    comment = "rule_experts_wildcards_generated_tiny-llama_final_0000"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update({"HF_HUB_OFFLINE": "1", "EXPERTALIGN_ALLOW_NO_GPU": "1"})
    deadline = time.monotonic() + 900
    with JobRecorder(interval=1.0) as recorder:
        earlier = set(recorder.jobs)  # the fixture's own jobs, still known to scontrol
        controller = subprocess.Popen(
            [SNAKEMAKE, *args, str(shard)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        while not job_log.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        controller.send_signal(signal.SIGKILL)  # the controller only: its SLURM job runs on
        controller.wait()
        assert job_log.exists(), "the expert job never started"

        # 1. status: the controller is gone, its job is still in SLURM
        config = yaml.safe_load(Path(args[args.index("--configfile") + 1]).read_text())
        config["results"] = str(results)
        config["sentences"]["provided"] = args[args.index("--config") + 2].split("'")[3]
        configfile = tmp_path / "config.yaml"
        configfile.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        expertalign = str(Path(SNAKEMAKE).with_name("expertalign"))
        status = subprocess.run(
            [expertalign, "status", "--configfile", str(configfile)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert status.returncode == 0, status.stdout + status.stderr
        # other tests may run Snakemake in this directory; the dead one is never reported
        assert f"pid {controller.pid}" not in status.stdout, status.stdout
        in_slurm = subprocess.run(
            ["squeue", "-h", "-o", "%i %k"], capture_output=True, text=True, check=True
        ).stdout
        orphans = [line.split()[0] for line in in_slurm.splitlines() if line.endswith(comment)]
        assert orphans, f"the orphaned job is not in squeue: {in_slurm!r}"
        # status finds it among the user's SLURM jobs by the plugin's comment
        assert "SLURM: 1 running, 0 pending of this campaign" in status.stdout, status.stdout

        # 2. let it finish (no new controller meanwhile)
        while subprocess.run(
            ["squeue", "-h", "-j", ",".join(orphans)], capture_output=True, text=True
        ).stdout.strip():
            assert time.monotonic() < deadline, "the orphaned job did not finish"
            time.sleep(1)

        # 3. unlock, restart: the orphan's shard is kept (the job's own Snakemake recorded it
        # as finished), so nothing runs again
        unlocked = run_snakemake([*args, "--unlock"], cwd=REPO, timeout=300)
        assert unlocked.returncode == 0, unlocked.stdout[-5000:]
        restarted = run_snakemake([*args, str(shard)], cwd=REPO, timeout=900)
        assert restarted.returncode == 0, restarted.stdout[-8000:]
        assert "Nothing to be done" in restarted.stdout, restarted.stdout[-8000:]
    _, after = read_expertise([shard])
    np.testing.assert_allclose(after, before, atol=1e-6)
    spans = sorted(
        (fields["StartTime"], fields["EndTime"])
        for fields in (
            dict(item.split("=", 1) for item in line.split() if "=" in item)
            for job, line in recorder.jobs.items()
            if job not in earlier
        )
        if fields.get("Comment") == comment
    )
    assert len(spans) == 1, recorder.jobs  # the orphan only: no job of the shard ran twice
