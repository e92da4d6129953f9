"""A queued sentence job still finds its batch when it starts: the replay of what a SLURM job
runs (``--target-jobs ... --mode remote``) after other batches finished, with the real workflow
and the default config (dry runs over sentence files written as finished jobs leave them)."""

from __future__ import annotations

import re

import pytest
from test_plan import write_sentences
from workflow_helpers import REPO, snakemake

from expertalign.config import load_config
from expertalign.plan import Campaign

pytestmark = pytest.mark.slow


def planned_batches(results, rule: str = "generate_sentences") -> dict[str, str]:
    """batch wildcard -> sentence set of every ``rule`` job a dry run plans."""
    plan = snakemake("-n", "--cores", "1", "--config", f"results={results}")
    jobs = re.findall(rf"rule {rule}:.*?wildcards: ([^\n]+)", plan.stdout, re.S)
    found = {}
    for wildcards in jobs:
        values = dict(item.split("=") for item in wildcards.split(", "))
        found[values["batch"]] = values["sentence_set"]
    return found


def test_a_queued_batch_keeps_its_name_after_others_finish(tmp_path):
    results = tmp_path / "results"
    config = load_config(REPO / "config/config.yaml")
    campaign = Campaign({**config, "results": str(results)})
    ids = campaign.concept_ids
    write_sentences(campaign, "brown", ids)
    write_sentences(campaign, "generated", ids[40:])  # 40 concepts still to generate
    before = planned_batches(results)
    assert {b: s for b, s in before.items() if s == "generated"} == {
        "gpu-000": "generated",
        "gpu-001": "generated",
        "gpu-002": "generated",
    }, before

    write_sentences(campaign, "generated", ids[:16])  # batch gpu-000 finished
    after = planned_batches(results)
    assert {b for b, s in after.items() if s == "generated"} == {"gpu-001", "gpu-002"}, after

    # what the still-queued job of gpu-002 runs when it starts on its node
    replay = snakemake(
        "--target-jobs",
        "generate_sentences:sentence_set=generated,batch=gpu-002",
        "--mode",
        "remote",
        "-n",
        "--cores",
        "1",
        "--config",
        f"results={results}",
    )
    assert "wildcards: sentence_set=generated, batch=gpu-002" in replay.stdout, replay.stdout
