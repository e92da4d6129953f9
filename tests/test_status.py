"""``expertalign status`` (expertalign.status) on fake results trees: the real path layout
(expertalign.paths, as the workflow's rules declare it) of the tiny config's campaign, with
Snakemake's incomplete markers and locks, and stand-ins for squeue and sacct. No workflow runs."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import time
from pathlib import Path

import pytest
import yaml
from workflow_helpers import REPO, TINY

from expertalign.cli import main as cli_main
from expertalign.config import load_config
from expertalign.plan import Campaign
from expertalign.status import (
    STATES,
    Job,
    campaign_status,
    expected_jobs,
    first_error_line,
    format_status,
    probes,
)

MODEL = "tiny-llama"
RANDOM = "tiny-llama-random"
# the rules of the expert jobs' inputs
UPSTREAM = {
    "prefetch",
    "generate_sentences",
    "collect_sentences",
    "sentences_from_batch",
    "negative_bank",
    "sentence_diversity",
    "units_table",
}
TRACEBACK = """\
2026-12-03 11:50:00,000 INFO expertalign: experts: 4 concepts, model tiny-llama (final)
Traceback (most recent call last):
  File "workflow/scripts/experts.py", line 30, in <module>
    main()
  File "workflow/scripts/experts.py", line 22, in main
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB
"""


@pytest.fixture(scope="module")
def campaign() -> Campaign:
    # the tiny config's paths (concepts, provided sentences) are relative to the repository
    with contextlib.chdir(REPO):
        config = load_config(TINY)
        campaign = Campaign({**config, "results": "results"})
        campaign.sentence_sets  # noqa: B018 - reads the provided files, here
        expected_jobs(campaign)  # the model shapes, cached
    return campaign


@pytest.fixture(scope="module")
def jobs(campaign) -> list[Job]:
    return expected_jobs(campaign)


def write(path: Path, text: str = "x", age: float = 0.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    if age:
        then = time.time() - age
        os.utime(path, (then, then))


def finish(workdir: Path, job: Job, seconds: float = 2.0) -> None:
    """What a finished job leaves: its outputs, log and benchmark (Snakemake's columns)."""
    for output in job.outputs:
        write(workdir / output)
    write(workdir / job.log, "INFO done\n", age=3600)
    write(
        workdir / job.benchmark,
        f"s\th:m:s\tmax_rss\tmax_vms\n{seconds}\t0:00:{int(seconds):02d}\t519.6\t2085.6\n",
    )


def mark_incomplete(workdir: Path, output: str, jobid: str | None = None) -> None:
    """Snakemake's marker of a started job's output (its path, url-safe base64, as the name)."""
    name = base64.urlsafe_b64encode(output.encode()).decode()
    write(workdir / ".snakemake" / "incomplete" / name, json.dumps({"external_jobid": jobid}))


def expert_job(jobs, source, model, shard) -> Job:
    wildcards = {"source": source, "model": model, "shard": shard}
    return next(
        j
        for j in jobs
        if j.rule.startswith("experts") and wildcards.items() <= dict(j.wildcards).items()
    )


def row(report, rule, model="", checkpoint=""):
    return next(
        r
        for r in report.rows
        if (r.rule, r.model, r.checkpoint) == (rule, model, checkpoint or r.checkpoint)
    )


def test_the_plan_has_every_rule_of_the_workflow(jobs):
    """Every rule of workflow/rules/*.smk has jobs, with the log and benchmark paths its rule
    declares (f-strings over {RESULTS} and wildcards; experts' come from expertalign.paths)."""
    text = "\n".join(p.read_text() for p in sorted((REPO / "workflow/rules").glob("*.smk")))
    blocks = re.split(r"^(?=rule \w+:|use rule )", text, flags=re.M)
    declared = {}
    for block in blocks:
        name = re.match(r"rule (\w+):|use rule \w+ as (\w+)", block)
        if name:
            declared[name.group(1) or name.group(2)] = block
    rules = {j.rule for j in jobs}
    # the tiny models fit the standard GPUs (no experts_large, causal_large); the pilot has no
    # pools of its own (pilot.pool_size: null)
    large = {"experts_large", "causal_large"}
    assert set(declared) - large - {"pilot_sentences_from_batch"} == rules
    for rule, block in declared.items():
        job = next((j for j in jobs if j.rule == rule), None)
        if job is None:
            continue
        for key, path in (("log", job.log), ("benchmark", job.benchmark)):
            found = re.search(rf'{key}:\s*\n\s*f"([^"]+)"', block)
            if not found:  # the experts rules: paths.expert_log / expert_benchmark
                continue
            expected = found.group(1).replace("{RESULTS}", "results")
            for name, value in job.wildcards:
                expected = expected.replace(f"{{{{{name}}}}}", value)
            assert path == expected, (rule, key)


def test_a_finished_run_is_all_done(campaign, jobs, tmp_path):
    for job in jobs:
        finish(tmp_path, job, seconds=2.0)
    report = campaign_status(campaign, workdir=str(tmp_path), slurm=False)
    assert report.totals["jobs"] == len(jobs) == report.totals["done"]
    assert report.totals["spent"] == pytest.approx(2.0 * len(jobs))
    assert all(r.remaining == 0 for r in report.rows)
    experts = row(report, "experts", MODEL)
    # 7 concepts in shards of 4, for each of the two sentence sources
    assert experts.counts == {**dict.fromkeys(STATES, 0), "done": 4}
    assert experts.spent == 8.0
    text = format_status(report)
    assert "SLURM: not available" in text
    assert "controller: none" in text
    assert "Failed jobs" not in text
    assert f"total: {len(jobs)} jobs ({len(jobs)} done); time spent" in text
    assert "nothing left to run" in text


def test_a_run_stopped_part_way(campaign, jobs, tmp_path):
    """Sentences, banks and units made; MODEL's experts 3 of 4 (the 4th started: an incomplete
    marker, and no controller holds the directory), RANDOM's none."""
    for job in jobs:
        if job.rule in UPSTREAM:
            finish(tmp_path, job, seconds=1.0)
    # 2 s per concept: shards of 4 and 3 concepts
    finish(tmp_path, expert_job(jobs, "generated", MODEL, "0000"), seconds=8.0)
    finish(tmp_path, expert_job(jobs, "generated", MODEL, "0001"), seconds=6.0)
    finish(tmp_path, expert_job(jobs, "brown", MODEL, "0000"), seconds=8.0)
    stopped = expert_job(jobs, "brown", MODEL, "0001")
    mark_incomplete(tmp_path, stopped.outputs[0])
    write(tmp_path / stopped.log, "INFO forward pass: 1200 of 5000 sentences\n", age=3600)

    report = campaign_status(campaign, workdir=str(tmp_path), slurm=False, estimate=False)
    experts = row(report, "experts", MODEL)
    assert (experts.counts["done"], experts.counts["incomplete"]) == (3, 1)
    assert experts.spent == 22.0
    assert experts.remaining == pytest.approx(3 * 2.0)  # the stopped shard: 3 concepts
    assert experts.basis == ""
    random = row(report, "experts", RANDOM)
    assert random.counts["todo"] == 4
    # no shard of RANDOM finished: MODEL's seconds per concept, 2 x 7 concepts x 2 sources
    assert (random.remaining, random.basis) == (pytest.approx(28.0), "other rows")
    assert row(report, "similarity", MODEL).counts["todo"] == 2
    assert row(report, "similarity", MODEL).remaining is None
    t = report.totals
    assert (t["running"], t["queued"], t["failed"], t["incomplete"]) == (0, 0, 0, 1)
    assert t["done"] + t["incomplete"] + t["todo"] == t["jobs"]
    assert [s.job for s in report.incomplete] == [stopped]
    text = format_status(report)
    assert "Incomplete jobs (1):" in text
    assert stopped.log in text
    assert "left about 34s of job time" in text

    # the paper's costs stand in for a model whose shards all wait only with estimate=True
    estimated = campaign_status(campaign, workdir=str(tmp_path), slurm=False)
    assert row(estimated, "experts", RANDOM).basis in {"other models", "other rows"}


def test_a_failed_job_is_listed_with_its_first_error_line(campaign, jobs, tmp_path):
    for job in jobs:
        if not job.rule.startswith("experts"):
            finish(tmp_path, job)
    failed = expert_job(jobs, "generated", MODEL, "0001")
    write(tmp_path / failed.log, TRACEBACK, age=3600)
    report = campaign_status(campaign, workdir=str(tmp_path), slurm=False)
    assert [s.job for s in report.failed] == [failed]
    (status,) = report.failed
    assert status.error == "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert (
        status.error_log
        == failed.log
        == ("results/logs/experts/generated/tiny-llama/final/shard-0001.log")
    )
    text = format_status(report)
    assert "Failed jobs (1):" in text
    assert "experts  source=generated model=tiny-llama revision=final shard=0001" in text
    assert f"log: {failed.log}" in text
    assert "error: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB" in text
    assert row(report, "experts", MODEL).counts["failed"] == 1


def test_first_error_line():
    chained = TRACEBACK + (
        "\nDuring handling of the above exception, another exception occurred:\n\n"
        + 'Traceback (most recent call last):\n  File "x.py", line 1, in <module>\n'
        + "ValueError: the second one\nINFO cleaning up\n"
    )
    assert first_error_line(chained) == "ValueError: the second one"
    assert first_error_line("loading\n/bin/bash: line 1:  4242 Killed  python x.py\n") == (
        "/bin/bash: line 1:  4242 Killed  python x.py"
    )
    slurm = "start\nslurmstepd: error: Detected 1 oom_kill event in StepId=12.batch.\n"
    assert (
        first_error_line(slurm)
        == "slurmstepd: error: Detected 1 oom_kill event in StepId=12.batch."
    )
    cancelled = (
        "slurmstepd: *** JOB 12 ON gpu01 CANCELLED AT 2026-12-03T12:00 DUE TO TIME LIMIT ***"
    )
    assert first_error_line(cancelled) == cancelled
    assert first_error_line("INFO 0 errors, mean_squared_error 0.1\nINFO done\n") is None


def test_slurm_queue_sacct_and_logs(campaign, jobs, tmp_path):
    """squeue (matched by the marker's SLURM job id, or by the plugin's comment) gives running
    and pending jobs; sacct and the SLURM logs give failed ones."""
    for job in jobs:
        if not job.rule.startswith("experts"):
            finish(tmp_path, job)
    running = expert_job(jobs, "generated", MODEL, "0000")
    mark_incomplete(tmp_path, running.outputs[0], jobid="101")
    pending = expert_job(jobs, "brown", MODEL, "0000")
    assert pending.slurm_comment == "rule_experts_wildcards_brown_tiny-llama_final_0000"
    oom = expert_job(jobs, "generated", MODEL, "0001")
    write(tmp_path / "logs/slurm/rule_experts/generated_tiny-llama_final_0001/103.log", "start\n")
    timeout = expert_job(jobs, "brown", MODEL, "0001")
    write(
        tmp_path / "logs/slurm/rule_experts/brown_tiny-llama_final_0001/104.log",
        "slurmstepd: *** JOB 104 ON gpu01 CANCELLED AT 2026-12-03T12:00 DUE TO TIME LIMIT ***\n",
    )
    write(tmp_path / ".snakemake/log/2026-12-03T114959.snakemake.log", "SLURM run ID: uuid-1\n")
    calls = []

    def runner(args):
        calls.append(args[0])
        if args[0] == "squeue":
            return (
                "101|uuid-1|RUNNING|rule_experts_wildcards_generated_tiny-llama_final_0000\n"
                f"102|uuid-1|PENDING|{pending.slurm_comment}\n"
                f"999|other-run|PENDING|{oom.slurm_comment}\n"
            )
        return "103|OUT_OF_MEMORY\n"

    report = campaign_status(campaign, workdir=str(tmp_path), slurm=True, runner=runner)
    state = {s.job: s for s in report.jobs}
    assert (state[running].state, state[running].slurm) == ("running", "101 RUNNING")
    assert (state[pending].state, state[pending].slurm) == ("queued", "102 PENDING")
    # job 999 belongs to another run: its comment matches, its name does not
    assert state[oom].state == "failed"
    assert state[oom].error == "SLURM job 103: OUT_OF_MEMORY"
    assert state[timeout].state == "failed"
    assert "DUE TO TIME LIMIT" in state[timeout].error
    assert state[timeout].error_log == "logs/slurm/rule_experts/brown_tiny-llama_final_0001/104.log"
    assert report.slurm == "SLURM: 1 running, 1 pending of this campaign"
    assert calls == ["squeue", "sacct"]
    text = format_status(report)
    assert "[SLURM 103 OUT_OF_MEMORY]" in text


def test_squeue_missing_says_so_once(campaign, tmp_path):
    def runner(args):
        raise FileNotFoundError(args[0])

    report = campaign_status(campaign, workdir=str(tmp_path), slurm=None, runner=runner)
    if report.slurm != "SLURM: not available":  # squeue on PATH: the stand-in fails
        assert report.slurm == "SLURM: squeue failed"
    assert format_status(report).count("SLURM") == 1
    assert report.totals["todo"] == report.totals["jobs"]


def test_a_running_controller(campaign, jobs, tmp_path, monkeypatch):
    """With a controller holding the lock: a marked job runs, and the outputs its lock names
    are queued; never taking or changing the lock."""
    for job in jobs:
        if not job.rule.startswith("experts"):
            finish(tmp_path, job)
    started = expert_job(jobs, "generated", MODEL, "0000")
    waiting = expert_job(jobs, "generated", MODEL, "0001")
    locks = tmp_path / ".snakemake" / "locks"
    write(locks / "0.input.lock", "results/units/tiny-llama.parquet\n", age=60)
    write(locks / "0.output.lock", f"{started.outputs[0]}\n{waiting.outputs[0]}\n", age=60)
    mark_incomplete(tmp_path, started.outputs[0])
    monkeypatch.setattr(probes, "snakemake_pids", lambda workdir: [4242])
    before = sorted((p.name, p.read_text()) for p in locks.iterdir())

    report = campaign_status(campaign, workdir=str(tmp_path), slurm=False)
    state = {s.job: s.state for s in report.jobs}
    assert (state[started], state[waiting]) == ("running", "queued")
    assert state[expert_job(jobs, "brown", MODEL, "0000")] == "todo"
    assert report.controller.startswith("running (snakemake pid 4242")
    assert sorted((p.name, p.read_text()) for p in locks.iterdir()) == before

    # the lock left by a controller that died: nothing runs, the started job is incomplete
    monkeypatch.setattr(probes, "snakemake_pids", lambda workdir: [])
    report = campaign_status(campaign, workdir=str(tmp_path), slurm=False)
    state = {s.job: s.state for s in report.jobs}
    assert (state[started], state[waiting]) == ("incomplete", "todo")
    assert "no snakemake process" in report.controller


def test_the_cli_prints_the_table_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """``expertalign status --no-slurm`` from the working directory: the table and the total
    line, and not a file created, changed or removed under it (no lock, no .snakemake)."""
    config = yaml.safe_load((REPO / TINY).read_text())
    # its paths are relative to the repository; the results go under tmp_path
    config["concepts"] = str(REPO / config["concepts"])
    config["data_dir"] = str(REPO / config["data_dir"])
    config["sentences"]["provided"] = str(REPO / config["sentences"]["provided"])
    config["spp"]["pairs"] = str(REPO / config["spp"]["pairs"])
    for model in config["models"]:
        model["source"] = str(REPO / model["source"])
    config["results"] = str(tmp_path / "results")
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    monkeypatch.chdir(tmp_path)

    def listing():
        return sorted(
            (str(p.relative_to(tmp_path)), p.stat().st_mtime_ns) for p in tmp_path.rglob("*")
        )

    before = listing()
    assert cli_main(["status", "--configfile", str(configfile), "--no-slurm"]) == 0
    out = capsys.readouterr().out
    assert "SLURM: not available" in out
    assert re.search(r"^total: \d+ jobs \(\d+ todo\); time spent", out, flags=re.M)
    assert listing() == before


def test_concepts_without_sentences_are_listed_with_reason_and_remedy(campaign, tmp_path):
    """A concept whose sentence file records that it cannot get sentences (the batch job went
    on without it) is listed once, with why and what to do."""
    from expertalign.sentences import write_failed_sentences

    concept = campaign.concept_ids[1]
    path = campaign.sentence_sets["generated"].outputs[concept]
    why = "NotEnoughSentencesError: found only 3 of 8 usable sentences after 4 rounds"
    write_failed_sentences(tmp_path / path, concept, why, "fp")
    report = campaign_status(campaign, workdir=str(tmp_path), slurm=False, estimate=False)
    assert report.failed_concepts == [("generated", concept, path, f"{concept}: {why}")]
    text = format_status(report)
    assert "Concepts without sentences (1):" in text
    assert f"delete {path} to try again" in text


def test_concepts_a_source_leaves_out_are_listed_apart_from_failures(tmp_path):
    """In a source with too_few: leave_out, a concept without sentences is no failure: status
    lists it under its own heading, without a remedy, and still lists a failure elsewhere."""
    from expertalign.sentences import write_failed_sentences

    with contextlib.chdir(REPO):
        config = load_config(TINY)
        config["sentences"]["sources"]["brown"]["too_few"] = "leave_out"
        campaign = Campaign({**config, "results": "results"})
        campaign.sentence_sets  # noqa: B018 - reads the provided files, here
    assert campaign.leaves_out("brown") and not campaign.leaves_out("generated")
    left, failed = campaign.concept_ids[0], campaign.concept_ids[1]
    for source, concept in (("brown", left), ("generated", failed)):
        path = campaign.sentence_sets[source].outputs[concept]
        write_failed_sentences(tmp_path / path, concept, "TooFewSentencesError: 3 of 8", "fp")
    report = campaign_status(campaign, workdir=str(tmp_path), slurm=False, estimate=False)
    text = format_status(report)
    _, _, rest = text.partition("Concepts without sentences (1):")
    assert f"{failed} (generated)" in rest.split("\n\n")[0]
    assert (
        f"Concepts left out of their source (too_few: leave_out) (1):\n  {left} (brown): " in text
    )
    assert f"{left} (brown)" not in rest.split("\n\n")[0]
    assert text.count("remedy:") == 1
