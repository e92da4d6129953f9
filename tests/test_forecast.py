"""`expertalign plan`: the campaign's jobs as the workflow plans them, and its predicted cost from
the paper's per-concept figures or from a calibration run's measured benchmark files."""

from __future__ import annotations

import re

import pytest
from workflow_helpers import REPO, snakemake

from expertalign import paths
from expertalign.cli import main
from expertalign.config import load_config
from expertalign.forecast import calibration_targets, forecast, format_forecast
from expertalign.plan import Campaign
from expertalign.resources import model_shape, published_seconds_per_concept


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    config = load_config(REPO / "config/paper.yaml")
    campaign = Campaign({**config, "results": str(tmp_path_factory.mktemp("paper"))})
    return campaign, forecast(campaign)


def test_paper_plan_totals(paper):
    campaign, fc = paper
    totals = fc.totals
    # the dry run's jobs, less the `all` target; local rules submit nothing
    table = fc.table
    assert totals["jobs"] == int(table["jobs"].sum())
    local = table[table["submissions"] == 0]
    assert set(local["rule"]) >= {"prefetch", "sentences_from_batch", "alignment_summary"}
    assert totals["submissions"] == totals["jobs"] - int(local["jobs"].sum())
    # shards per model and local sentence moves keep the campaign under 1,000 submissions
    assert totals["submissions"] < 1000
    experts = table[table["rule"].str.startswith("experts")]
    assert int(experts["jobs"].sum()) == 8 * (4 + 13 + 63)
    # one generator load per batch of 16 (79 for 1,249 concepts, 6 for the 92 pilot pools)
    assert fc.generator_loads == 79 + 6
    # AP files: float32 per unit and concept, per run
    units_12b = model_shape("EleutherAI/pythia-12b").n_units
    experts_12b = table[(table["model"] == "pythia-12b") & (table["checkpoint"] == "step1")]
    assert experts_12b["disk_gb"].max() == pytest.approx(units_12b * 1249 * 4 / 1e9)
    # the baselines reduce the expert jobs' word vectors on the CPU
    assert set(experts_12b.loc[experts_12b["gpu"] != "", "rule"]) == {"experts_large"}


def test_paper_costs_follow_app_k(paper):
    """Pythia-12b's expert jobs cost the paper's 136 s per concept, scaled to 400 + 1,250
    sentences against its 400 + 1,000, plus loading 24 GB once per shard."""
    campaign, fc = paper
    row = fc.table[(fc.table["rule"] == "experts_large") & (fc.table["checkpoint"] == "step1")]
    row = row[row["model"] == "pythia-12b"].iloc[0]
    assert row["basis"] == "paper"
    n_parameters = model_shape("EleutherAI/pythia-12b").n_parameters
    compute = 1249 * published_seconds_per_concept(n_parameters) * 1650 / 1400
    load = 63 * n_parameters * 2 / 1e9  # 63 shards of 20 concepts
    assert row["gpu_hours"] == pytest.approx((compute + load) / 3600)
    assert published_seconds_per_concept(n_parameters) == pytest.approx(136, rel=0.02)
    text = format_forecast(fc)
    assert "generator loads 85" in text and "App. K" in text


def test_measured_costs_replace_the_paper_ones(tmp_path):
    """Seconds per concept are measured per model and sentence source; a random-init twin takes
    its trained model's cost, and a source measured for no model stays on the paper's."""
    config = load_config(REPO / "config/config.yaml")
    campaign = Campaign({**config, "results": str(tmp_path)})
    for source, seconds in [("generated", 64.0), ("brown", 128.0)]:
        bench = paths.expert_benchmark(tmp_path, source, "smollm2-135m", "final", "0000")
        (tmp_path / bench).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / bench).write_text(f"s\th:m:s\tmax_rss\n{seconds}\t0:01:04\t900\n")
    fc = forecast(campaign, measured=tmp_path)
    experts = fc.table[fc.table["rule"] == "experts"].set_index("model")
    assert fc.measured_models == ("smollm2-135m", "smollm2-135m-random")
    # 64 s and 128 s for the first shard's concepts, for every concept of the table
    n, first = len(campaign.concept_ids), len(campaign.shard_concepts("0000"))
    for model in ("smollm2-135m", "smollm2-135m-random"):
        assert experts.loc[model, "basis"] == "measured"
        assert experts.loc[model, "gpu_hours"] == pytest.approx(n * (64 + 128) / first / 3600)

    only_generated = tmp_path / "generated-only"
    bench = paths.expert_benchmark(only_generated, "generated", "smollm2-135m", "final", "0001")
    (only_generated / bench).parent.mkdir(parents=True, exist_ok=True)
    (only_generated / bench).write_text("s\tmax_rss\n32.0\t900\n")
    fc = forecast(campaign, measured=only_generated)
    experts = fc.table[fc.table["rule"] == "experts"].set_index("model")
    # Brown is not measured for any model: the model's own mean stands in for it
    second = len(campaign.shard_concepts("0001"))
    assert experts.loc["smollm2-135m", "gpu_hours"] == pytest.approx(n * 2 * 32 / second / 3600)


def test_calibration_targets_are_one_shard_per_trained_model(paper):
    campaign, _ = paper
    targets = calibration_targets(campaign)
    assert [paths.parse_run(t).model for t in targets] == ["pythia-70m", "pythia-1b", "pythia-12b"]
    assert {paths.parse_run(t).source for t in targets} == {"generated"}
    assert all(t.endswith("step143000/shard-0000.arrow") for t in targets)


def test_the_plan_command_prints_the_table_and_writes_it(tmp_path, capsys):
    out = tmp_path / "plan.csv"
    assert main(["plan", "--configfile", str(REPO / "tests/data/tiny_config.yaml"),
                 "--csv", str(out)]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "SLURM submissions" in printed and "GPU-hours predicted" in printed
    assert out.stat().st_size > 0


@pytest.mark.slow
def test_job_counts_are_the_workflow_dry_runs(tmp_path):
    """One plan, two readers: per rule, the jobs `expertalign plan` counts are the jobs a
    Snakemake dry run of the same config plans."""
    results = tmp_path / "results"
    plan = snakemake("-n", "--quiet", "rules", "--cores", "1", "--config", f"results={results}")
    counts = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", plan.stdout, re.M)}
    counts.pop("total")
    counts.pop("all")
    config = load_config(REPO / "config/config.yaml")
    table = forecast(Campaign({**config, "results": str(results)})).table
    assert table.groupby("rule")["jobs"].sum().to_dict() == counts


def test_the_campaign_summary_sets_used_against_predicted_and_counts_retries(tmp_path):
    """The cost_table job's summary: GPU-hours used per model from the expert benchmark files,
    against the plan's prediction, and the jobs SLURM ran twice (two logs in its folder)."""
    import pandas as pd

    from expertalign.jobs.analysis import cost_table

    benchmarks = []
    for model, shard, seconds in [
        ("m_a", "0000", 3600.0),
        ("m_a", "0001", 1800.0),
        ("b", "0000", 36.0),
    ]:
        path = tmp_path / paths.expert_benchmark("results", "gen", model, "final", shard)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"s\tmax_rss\n{seconds}\t100\n")
        benchmarks.append(str(path))
    # the executor's log folders: the model name holds an underscore, as wildcards may
    retried = tmp_path / "logs/slurm/rule_experts/gen_m_a_final_0001"
    retried.mkdir(parents=True)
    (retried / "11.log").write_text("oom\n")
    (retried / "12.log").write_text("ok\n")
    once = tmp_path / "logs/slurm/rule_experts/gen_b_final_0000"
    once.mkdir(parents=True)
    (once / "13.log").write_text("ok\n")
    cost_table(
        benchmarks,
        {"m_a": {"0000": 10, "0001": 5}, "b": {"0000": 4}},
        str(tmp_path / "cost.csv"),
        summary_out=str(tmp_path / "summary.csv"),
        predicted_hours={"m_a": 3.0, "b": 0.02},
        slurm_log_dirs=[str(tmp_path / "logs/slurm")],
    )
    summary = pd.read_csv(tmp_path / "summary.csv").set_index("model")
    assert summary.loc["m_a", "gpu_hours_used"] == pytest.approx(1.5)
    assert summary.loc["m_a", "used_over_predicted"] == pytest.approx(0.5)
    assert summary.loc["m_a", "expert_jobs"] == 2 and summary.loc["m_a", "concepts"] == 15
    assert summary.loc["m_a", "jobs_retried"] == 1 and summary.loc["b", "jobs_retried"] == 0
    assert summary.loc["b", "gpu_hours_used"] == pytest.approx(0.01)
    cost = pd.read_csv(tmp_path / "cost.csv").set_index("model")
    assert cost.loc["m_a", "seconds_per_concept"] == pytest.approx(5400 / 15)


def test_the_forward_floor_is_flops_over_an_a100(paper):
    """The floor: 2 x parameters FLOPs per token over every positive and each shard's bank rows,
    at 40 % of 312 TFLOP/s, per model over its 7 or 1 checkpoints."""
    campaign, fc = paper
    n_parameters = model_shape("EleutherAI/pythia-12b").n_parameters
    sentences = 1249 * 400 + 63 * 1250
    expected = 7 * 2 * n_parameters * sentences * 24 / (312e12 * 0.4) / 3600
    assert fc.floor_hours["pythia-12b"] == pytest.approx(expected)
    assert fc.floor_hours["pythia-12b-random"] == pytest.approx(expected / 7)
    assert "performance goal: under 40 GPU-hours" in format_forecast(fc)


def test_the_paper_causal_check_runs_in_parts_that_fit_a_day(paper):
    """config/paper.yaml's causal check (50 concepts at the spec's sizes) is cut into parts of 2
    concepts; each job's limit is 3x its predicted GPU time plus loading, which for
    Pythia-12b (on the large cards, like its expert jobs) stays under a day."""
    from expertalign.resources import causal_job_runtime_minutes, causal_job_seconds, causal_work

    campaign, fc = paper
    parts = campaign.causal_parts()
    assert len(parts) == 25 and {len(c) for c in parts.values()} == {2}
    assert sum(parts.values(), []) == campaign.causal_concepts()
    rows = fc.table[fc.table["rule"].isin(["causal", "causal_large"])].set_index("model")
    assert (rows["jobs"] == len(campaign.sources) * 25).all()
    assert rows.at["pythia-12b", "rule"] == "causal_large" == rows.at["pythia-12b-random", "rule"]
    assert rows.at["pythia-70m", "rule"] == "causal"
    shape = model_shape("EleutherAI/pythia-12b")
    work = causal_work(
        campaign.causal_settings(),
        n_part=2,
        n_concepts=50,
        n_positives=400,
        bank_rows=campaign.bank_rows(),
        n_units=shape.n_units,
        n_prompts=10,
    )
    seconds = causal_job_seconds(shape, work)
    limit = campaign.causal_job_resources("pythia-12b", 2)["runtime"]
    assert limit == causal_job_runtime_minutes(shape, work)
    assert 3 * seconds / 60 < limit <= 24 * 60
    load = shape.n_parameters * 2 / 1e9
    assert rows.at["pythia-12b", "gpu_hours"] == pytest.approx(25 * (seconds + load) / 3600)
