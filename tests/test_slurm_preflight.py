"""Retries that escalate, and the pre-flight of a site (issue 19).

profiles/slurm asks on a job's retry (attempt 2) for twice the memory and time limit of every
rule and, for GPU rules, the next GPU tier; ``expertalign.preflight`` builds each distinct
request of a campaign into the sbatch options the executor plugin would submit and asks
``sbatch --test-only`` whether the site can run it. The first tests read the real profile as
Snakemake does (no cluster); those marked ``slurm`` run against the local one-node cluster
(``local_slurm``: partitions cpu and gpu, two fake GPUs of type a100).
"""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path

import pytest
import yaml
from slurm_cluster import (
    REPO,
    SLURM_PROFILE,
    JobRecorder,
    escalating_profile_for_local_cluster,
    run_snakemake,
)

from expertalign.preflight import (
    Request,
    distinct_requests,
    job_resources,
    main_preflight,
    preflight,
    resource_options,
    sbatch_options,
    slurm_minutes,
)

PROFILE = SLURM_PROFILE / "config.yaml"
SITE = yaml.safe_load(PROFILE.read_text())["cluster-specific"]
SET_RESOURCES = yaml.safe_load(PROFILE.read_text())["set-resources"]
GPU_RULES = {"generate_sentences", "experts", "pilot", "causal"}
EXPERTS = {"mem_mb": 2000, "gpu_mem_mb": 9000, "runtime": 30}  # an expert job's own sizes


def _expert_resources(attempt: int) -> dict[str, int]:
    """What the `experts` rule gives at ``attempt`` (workflow/rules/common.smk multiplies)."""
    return {k: v * attempt for k, v in EXPERTS.items()}


# --------------------------------------------------------------------------- the profile


def test_every_rule_asks_for_more_on_its_retry():
    """Evaluated as Snakemake evaluates the profile: each rule under set-resources, and one
    on default-resources, doubles memory and time on attempt 2; GPU rules move from gpu_model
    to large_gpu_model, experts_large and causal_large from large_gpu_model to
    retry_large_gpu_model."""
    sized = ("experts", "experts_large", "causal", "causal_large")
    rules = [r for r in SET_RESOURCES if r not in sized]
    for rule in [*rules, "collect_sentences"]:
        first, _ = job_resources(rule, {}, 1)
        retry, _ = job_resources(rule, {}, 2)
        assert retry["mem_mb"] == 2 * first["mem_mb"], (rule, first, retry)
        assert retry["runtime"] == 2 * first["runtime"], (rule, first, retry)
        if rule in GPU_RULES:
            assert (first["gpu"], first["gpu_model"]) == (1, SITE["gpu_model"]), rule
            assert (retry["gpu"], retry["gpu_model"]) == (1, SITE["large_gpu_model"]), rule
            assert first["slurm_partition"] == retry["slurm_partition"] == SITE["gpu_partition"]
        else:
            assert "gpu" not in retry and "gpu_model" not in retry, (rule, retry)
            assert first["slurm_partition"] == retry["slurm_partition"] == SITE["cpu_partition"]
    # the expert and causal rules size memory and time themselves (and double them): the
    # profile keeps them
    for rule, tiers in [
        ("experts", ("gpu_model", "large_gpu_model")),
        ("experts_large", ("large_gpu_model", "retry_large_gpu_model")),
        ("causal", ("gpu_model", "large_gpu_model")),
        ("causal_large", ("large_gpu_model", "retry_large_gpu_model")),
    ]:
        for attempt, tier in zip((1, 2), tiers, strict=True):
            values, threads = job_resources(rule, _expert_resources(attempt), attempt)
            assert {k: values[k] for k in EXPERTS} == _expert_resources(attempt)
            assert values["gpu_model"] == SITE[tier], (rule, attempt, values)
            assert values["cpus_per_task"] == threads == 8  # set-threads
    # Snakemake's order: default-resources < the rule's own < set-resources
    own, _ = job_resources("collect_sentences", {"mem_mb": 123}, 1)
    overridden, _ = job_resources("negative_bank", {"mem_mb": 123}, 1)
    assert own["mem_mb"] == 123 and overridden["mem_mb"] == 16000


def test_sbatch_options_are_the_plugins():
    """The options come from the plugin's get_submit_command and set_gres_string."""
    first, _ = sbatch_options("experts", _expert_resources(1), 1)
    retry, _ = sbatch_options("experts", _expert_resources(2), 2)
    assert resource_options(first) == shlex.split(
        f"-p {SITE['gpu_partition']} -t 30 --mem 2000 --cpus-per-task=8 "
        f"--gpus={SITE['gpu_model']}:1"
    )
    assert resource_options(retry) == shlex.split(
        f"-p {SITE['gpu_partition']} -t 60 --mem 4000 --cpus-per-task=8 "
        f"--gpus={SITE['large_gpu_model']}:1"
    )
    cpu, _ = sbatch_options("development", {}, 2)
    assert resource_options(cpu) == shlex.split(
        f"-p {SITE['cpu_partition']} -t 960 --mem 32000 --ntasks=1 --cpus-per-task=1"
    )


def test_sbatch_options_of_a_gres_site_with_constraint_qos_and_account(tmp_path):
    """A site block that asks with --gres, a constraint, a QoS and an account."""
    (tmp_path / "config.yaml").write_text(
        """
executor: slurm
slurm-qos: long
default-resources:
  slurm_partition: cpu
  slurm_account: proj1
  mem_mb: "1000 * attempt"
  runtime: "10 * attempt"
  cpus_per_task: threads
set-threads:
  pilot: 4
set-resources:
  pilot:
    slurm_partition: gpu
    gres: "'gpu:a100:1' if attempt == 1 else 'gpu:h100:1'"
    constraint: "'a100|h100'"
    qos: "'normal'"
"""
    )
    options, values = sbatch_options("pilot", {}, 2, profile=tmp_path)
    assert values["gres"] == "gpu:h100:1" and values["mem_mb"] == 2000
    kept = resource_options(options)
    assert kept[:2] == ["-A", "proj1"] and kept[2:4] == ["-p", "gpu"], kept
    for expected in ("-C", "a100|h100", "--qos=normal", "--qos=long", "--gres=gpu:h100:1"):
        assert expected in kept, kept
    assert "--cpus-per-task=4" in kept and "--mem" in kept and "2000" in kept


def test_distinct_requests_of_the_paper_config(monkeypatch):
    from expertalign.config import load_config
    from expertalign.plan import Campaign

    monkeypatch.chdir(REPO)
    campaign = Campaign(load_config("config/paper.yaml"))
    requests = distinct_requests(campaign)
    rules = {(r.rule, r.attempt) for r in requests}
    for rule in [*SET_RESOURCES, "collect_sentences"]:
        assert (rule, 1) in rules and (rule, 2) in rules, rule
    experts = [r for r in requests if r.rule in ("experts", "experts_large")]
    # Pythia-12b (and its random twin) beyond experts.standard_gpu_mem_mb: experts_large
    for request in experts:
        assert ("pythia-12b" in request.label) == (request.rule == "experts_large"), request
        assert request.resources["gpu_mem_mb"] > 0 and request.threads == 2
    # a model's full shards and its smaller last shard; the random twin shares the request
    labels = [r.label for r in experts if r.attempt == 1]
    assert len(labels) == 6 and all("-random (" in label for label in labels), labels
    # the retry: the rule's sizes doubled, and the next GPU tier
    first = {r.label: r for r in experts if r.attempt == 1}
    for request in (r for r in experts if r.attempt == 2):
        base = first[request.label]
        assert request.resources == {k: 2 * v for k, v in base.resources.items()}
        tiers = {
            "experts": ("gpu_model", "large_gpu_model"),
            "experts_large": ("large_gpu_model", "retry_large_gpu_model"),
        }[request.rule]
        for req, tier in zip((base, request), tiers, strict=True):
            values, _ = job_resources(req.rule, req.resources, req.attempt)
            assert values["gpu_model"] == SITE[tier], (req, values)


def test_preflight_without_sbatch_says_where_to_run_it():
    [result] = preflight([("similarity", {})], sbatch="no-such-sbatch")
    assert not result.ok and "login node" in result.message
    assert "--mem" in result.options


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("infinite", None),
        ("UNLIMITED", None),
        ("2-00:00:00", 2880),
        ("1-12:00", 2160),
        ("12:00:00", 720),
        ("30:00", 30),
        ("30:01", 31),
        ("45", 45),
        ("n/a", None),
    ],
)
def test_slurm_time_limits(text, minutes):
    assert slurm_minutes(text) == minutes


def test_hint_names_what_the_site_lacks():
    from expertalign.preflight import _hint, _Partition

    site = {
        "gpu": _Partition("gpu", {"a100"}, {"gpu:a100:4"}, 512000, 64, {"a100", "ib"}, 2880),
        "cpu": _Partition("cpu", set(), set(), 256000, 128, set(), None),
    }
    request = {"slurm_partition": "gpu", "gpu": 1, "gpu_model": "h100", "mem_mb": 600000}
    hint = _hint({**request, "runtime": 4000, "constraint": "a100|nvlink"}, site)
    assert "no GPU of type 'h100' (its GPUs: a100)" in hint, hint
    assert "--mem 600000 MB is more than the largest node of partition 'gpu' has" in hint
    assert "-t 4000 min is more than partition 'gpu' allows (2880 min)" in hint
    assert "feature(s) nvlink" in hint and "a100," not in hint.split("feature(s)")[1][:8]
    assert _hint({"slurm_partition": "gpu", "gres": "gpu:a100:1", "runtime": 60}, site) == ""
    assert "no partition 'big'" in _hint({"slurm_partition": "big"}, site)
    assert _hint({"slurm_partition": "cpu", "gpu": 1}, site) == "partition 'cpu' has no GPUs"
    assert _hint({"slurm_partition": "cpu", "runtime": 10**6, "cpus_per_task": 8}, site) == ""


# --------------------------------------------------------------------------- local cluster


ESCALATING_SNAKEFILE = r"""
rule all:
    input:
        "out/pilot.txt",
        "out/similarity.txt",


# 300 MB besides the job's Snakemake processes (about 200 MB, counted too): killed at 350 MB
# (attempt 1), done at 700 MB (attempt 2).
HUNGRY = (
    "python3 -c \"import time; x = bytearray(300 * 2**20); x[::4096] = b'x' * len(x[::4096]);"
    " time.sleep(6)\""
)


# a GPU rule of the profile
rule pilot:
    output:
        "out/pilot.txt",
    shell:
        HUNGRY + " && echo mem_mb={resources.mem_mb} runtime={resources.runtime}"
        " gpu_model={resources.gpu_model} > {output}"


# a CPU rule of the profile
rule similarity:
    output:
        "out/similarity.txt",
    shell:
        HUNGRY + " && echo mem_mb={resources.mem_mb} runtime={resources.runtime} > {output}"
"""


def _plugin_calls(log: str) -> dict[tuple[str, str], list[str]]:
    """(rule, attempt) -> the sbatch options of the plugin's call (``--verbose`` logs it)."""
    calls = {}
    for line in log.splitlines():
        if not line.startswith("sbatch call: "):
            continue
        argv = shlex.split(line.removeprefix("sbatch call: "))
        rule = argv[argv.index("--comment") + 1].removeprefix("rule_")
        attempt = re.search(r"--attempt (\d+)", line).group(1)
        calls[(rule, attempt)] = argv[1:]
    return calls


@pytest.mark.slurm
def test_retry_escalates_memory_time_and_gpu_type_through_slurm(local_slurm, tmp_path):
    """A CPU and a GPU rule that exceed their memory on attempt 1 pass on attempt 2 with the
    profile's escalation: twice the memory and time, and the next GPU tier. The local cluster
    has one GPU type (a100), so its copy of the profile names "any GPU" as gpu_model (empty:
    --gpus=1) and a100 as large_gpu_model: the retry must ask for --gpus=a100:1."""
    t0 = time.monotonic()
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(ESCALATING_SNAKEFILE)
    profile = escalating_profile_for_local_cluster(
        tmp_path / "profile",
        local_slurm,
        site={"gpu_model": "", "large_gpu_model": local_slurm.gpu_type},
        mem_cap=350,
    )
    with JobRecorder() as recorder:
        result = run_snakemake(["--profile", str(profile), "--verbose"], cwd=workdir, timeout=600)
    assert result.returncode == 0, f"{result.stdout[-8000:]}\n{local_slurm.squeue()}"
    out = result.stdout
    assert out.count("Trying to restart job") == 2, out[-5000:]
    assert (workdir / "out/pilot.txt").read_text().split() == [
        "mem_mb=700",
        "runtime=480",
        f"gpu_model={local_slurm.gpu_type}",
    ]
    assert (workdir / "out/similarity.txt").read_text().split() == ["mem_mb=700", "runtime=480"]

    # What the scheduler got (scontrol, recorded while the jobs were known): attempt 1 killed
    # for memory, attempt 2 with twice the memory and time and, on the GPU, the named type.
    for rule, gpus in [("pilot", ("gres:gpu:1", f"gres:gpu:{local_slurm.gpu_type}:1"))]:
        logs = sorted(
            (workdir / "logs/slurm" / f"rule_{rule}").rglob("*.log"), key=lambda p: int(p.stem)
        )
        assert len(logs) == 2, logs
        assert "exceeded memory limit" in logs[0].read_text().lower(), logs[0].read_text()
        first, retry = (recorder.jobs[p.stem] for p in logs)
        assert "MinMemoryNode=350M" in first and "TimeLimit=04:00:00" in first, first
        assert "MinMemoryNode=700M" in retry and "TimeLimit=08:00:00" in retry, retry
        assert f"TresPerJob={gpus[0]}" in first and f"TresPerJob={gpus[1]}" in retry
    sim_logs = sorted(
        (workdir / "logs/slurm/rule_similarity").rglob("*.log"), key=lambda p: int(p.stem)
    )
    first, retry = (recorder.jobs[p.stem] for p in sim_logs)
    assert "MinMemoryNode=350M" in first and "MinMemoryNode=700M" in retry
    assert "TimeLimit=04:00:00" in first and "TimeLimit=08:00:00" in retry
    assert "Partition=cpu" in retry and "TresPerJob" not in retry

    # The plugin's own sbatch lines equal what the pre-flight builds for the same requests.
    calls = _plugin_calls(out)
    assert set(calls) == {(r, a) for r in ("pilot", "similarity") for a in ("1", "2")}, calls
    for (rule, attempt), argv in calls.items():
        ours, _ = sbatch_options(rule, {}, int(attempt), profile=profile)
        assert resource_options(argv) == resource_options(ours), (rule, attempt)
    print(f"[timing] escalating retries through SLURM: {time.monotonic() - t0:.1f} s")


@pytest.mark.slurm
def test_preflight_against_the_local_cluster(local_slurm, tmp_path):
    """What the cluster has passes; a GPU type, a partition and a memory size it lacks fail
    with sbatch's message, and the hint names what is missing."""
    # the real GPU names (a100 for attempt 1, a100_80gb on the retry), memory and threads
    # shrunk to the node
    profile = escalating_profile_for_local_cluster(tmp_path / "site", local_slurm)
    requests = [
        Request("similarity", {}, 1),
        Request("similarity", {}, 2),
        Request("pilot", {}, 1, label="a GPU of the node's type"),
        Request("experts", _expert_resources(2), 2, label="retry on large_gpu_model"),
        Request("collect_sentences", {"mem_mb": 4 * local_slurm.mem_mb}, label="too much memory"),
    ]
    t0 = time.monotonic()
    results = preflight(requests, profile=profile)
    elapsed = time.monotonic() - t0
    ok = {r.request.label or f"{r.request.rule} {r.request.attempt}": r for r in results}
    for name in ("similarity 1", "similarity 2", "a GPU of the node's type"):
        assert ok[name].ok, (name, ok[name].message, ok[name].command)
        assert "to start at" in ok[name].message, ok[name].message
    gpu = ok["retry on large_gpu_model"]
    assert not gpu.ok and f"--gpus={SITE['large_gpu_model']}:1" in gpu.command
    assert "Requested node configuration is not available" in gpu.message, gpu.message
    assert f"no GPU of type '{SITE['large_gpu_model']}'" in gpu.hint, gpu.hint
    mem = ok["too much memory"]
    assert not mem.ok and "Requested node configuration is not available" in mem.message
    assert f"--mem {4 * local_slurm.mem_mb} MB is more than" in mem.hint, mem.hint

    # a partition the site lacks
    other = escalating_profile_for_local_cluster(
        tmp_path / "other", local_slurm, site={"cpu_partition": "bigmem"}
    )
    [part] = preflight([("similarity", {})], profile=other)
    assert not part.ok and "Invalid partition name specified" in part.message, part.message
    assert "no partition 'bigmem'" in part.hint, part.hint
    print(f"[timing] pre-flight of {len(requests)} requests: {elapsed:.1f} s")


@pytest.mark.slurm
def test_main_preflight_of_the_tiny_config(local_slurm, tmp_path, monkeypatch):
    """``expertalign preflight``: every request of the tiny config at attempts 1 and 2."""
    monkeypatch.chdir(REPO)
    config = "tests/data/tiny_config.yaml"
    # the site as it is: one GPU type, so the retry tier is that type too
    fits = escalating_profile_for_local_cluster(
        tmp_path / "fits",
        local_slurm,
        site={
            "large_gpu_model": local_slurm.gpu_type,
            "retry_large_gpu_model": local_slurm.gpu_type,
        },
    )
    text, ok = main_preflight(config, fits)
    assert ok, text
    assert text.count("\nOK ") == text.count("\n") - 1, text
    assert "attempt 2" in text and "experts attempt 1" in text, text
    # the real profile's retry tier (a100_80gb) is not on this cluster
    real_names = escalating_profile_for_local_cluster(tmp_path / "real", local_slurm)
    text, ok = main_preflight(config, real_names)
    assert not ok
    failed = [line for line in text.splitlines() if line.startswith("FAILED")]
    assert failed and all("attempt 2" in line for line in failed), text
    assert f"no GPU of type '{SITE['large_gpu_model']}'" in text, text


def test_profile_paths_may_be_a_directory_or_the_file():
    a, _ = sbatch_options("alignment", {}, 1, profile=SLURM_PROFILE)
    b, _ = sbatch_options("alignment", {}, 1, profile=Path(PROFILE))
    assert a == b
