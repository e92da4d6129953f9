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


def planned_batches(results, rule: str = "generate_sentences") -> set[tuple[str, str]]:
    """(sentence set, batch) of every ``rule`` job a dry run plans."""
    plan = snakemake("-n", "--cores", "1", "--config", f"results={results}")
    jobs = re.findall(rf"rule {rule}:.*?wildcards: ([^\n]+)", plan.stdout, re.S)
    found = set()
    for wildcards in jobs:
        values = dict(item.split("=") for item in wildcards.split(", "))
        found.add((values["sentence_set"], values["batch"]))
    return found


def test_a_queued_batch_keeps_its_name_after_others_finish(tmp_path):
    results = tmp_path / "results"
    config = load_config(REPO / "config/config.yaml")
    campaign = Campaign({**config, "results": str(results)})
    ids = campaign.concept_ids
    per = config["sentences"]["concepts_per_job"]
    write_sentences(campaign, "brown", ids)
    # two whole batches and 4 concepts of the third still to generate
    write_sentences(campaign, "generated", ids[2 * per + 4 :])
    before = planned_batches(results)
    assert {b for s, b in before if s == "generated"} == {"gpu-000", "gpu-001", "gpu-002"}, before

    write_sentences(campaign, "generated", ids[:per])  # batch gpu-000 finished
    after = planned_batches(results)
    assert {b for s, b in after if s == "generated"} == {"gpu-001", "gpu-002"}, after
    # the other sets' batches (the pilot's pools) are planned as before
    assert {x for x in after if x[0] != "generated"} == {x for x in before if x[0] != "generated"}

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
