"""The Snakemake workflow: lint, format, dry runs, config errors, and a tiny real end-to-end run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from workflow_helpers import REPO, snakemake

TINY = "tests/data/tiny_config.yaml"


def test_lint_is_clean():
    result = snakemake("--lint", "--configfile", TINY, check=False)
    assert result.returncode == 0, result.stdout
    assert "Lints for" not in result.stdout, result.stdout


def test_snakefmt_is_clean():
    snakefmt = str(Path(sys.executable).with_name("snakefmt"))
    result = subprocess.run([snakefmt, "--check", "."], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_default_config_dry_run_plans_every_rule(tmp_path):
    result = snakemake("-n", "--config", f"results={tmp_path}/results", "--quiet", "rules")
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M))
    concepts = pd.read_csv(REPO / "config/concepts.tsv", sep="\t")
    assert int(counts["generate_sentences"]) == len(concepts)
    assert int(counts["negative_bank"]) == 1
    shard_size = yaml.safe_load((REPO / "config/config.yaml").read_text())["experts"]["shard_size"]
    shards = -(-len(concepts) // shard_size)
    assert int(counts["experts"]) == 2 * shards
    assert int(counts["similarity"]) == 2
    assert int(counts["alignment"]) == 2
    # the embedded model, its random-init twin and the generator share one conversion
    assert int(counts["prefetch"]) == 1


def test_unknown_config_key_is_named(tmp_path):
    override = tmp_path / "override.yaml"
    override.write_text("colour: blue\n")
    result = snakemake("-n", "--configfile", TINY, str(override), check=False)
    assert result.returncode != 0
    assert "colour" in result.stdout and "Additional properties" in result.stdout


def test_ratio_far_from_the_papers_is_refused(tmp_path):
    override = tmp_path / "override.yaml"
    override.write_text("sentences:\n  n_positives: 2\n")
    result = snakemake("-n", "--configfile", TINY, str(override), check=False)
    assert result.returncode != 0
    assert "400:1000" in result.stdout


def test_malformed_concept_row_names_row_and_column(tmp_path):
    table = tmp_path / "concepts.tsv"
    lines = (REPO / "tests/data/tiny_concepts.tsv").read_text().splitlines()
    lines[3] = lines[3].replace("\tnoun\t", "\tthing\t")
    table.write_text("\n".join(lines) + "\n")
    result = snakemake("-n", "--configfile", TINY, "--config", f"concepts={table}", check=False)
    assert result.returncode != 0
    assert "line 4" in result.stdout and "pos" in result.stdout, result.stdout[-3000:]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    results = tmp_path_factory.mktemp("tiny") / "results"
    first = snakemake("--configfile", TINY, "--config", f"results={results}", "--cores", "2",
                      timeout=1500)
    return results, first


@pytest.mark.slow
def test_tiny_workflow_end_to_end(tiny_run):
    results, _ = tiny_run
    table = pd.read_csv(results / "tables/alignment.csv")
    assert set(table.columns) >= {"judgment", "model", "checkpoint", "measure", "tau", "rho",
                                  "ci_low", "ci_high", "p_value", "n_pairs"}
    assert set(table["model"]) == {"tiny-smollm2", "tiny-smollm2-random"}
    jaccard = table[table["measure"] == "jaccard"]
    assert sorted(jaccard["tau"].unique()) == [0.5, 0.7, 0.9]
    assert (table["n_pairs"] == 15).all()  # the 7 weather words share 15 MEN pairs
    finite = table.dropna(subset=["rho"])
    assert len(finite) >= len(table) - 2  # a random model can have empty sets at tau 0.9
    assert finite["rho"].between(-1, 1).all()
    assert (finite["ci_low"] <= finite["rho"]).all() and (finite["rho"] <= finite["ci_high"]).all()
    assert (results / "figures/alignment.png").stat().st_size > 10_000
    frost = pd.read_parquet(results / "sentences/frost.parquet")
    assert len(frost) == 8 and frost["text"].str.contains("frost", case=False).all()
    assert (frost["source"] != "provided").all()
    sun = pd.read_parquet(results / "sentences/sun.parquet")
    assert (sun["prompt"] == "provided").all()
    logs = list((results / "logs").rglob("*.log"))
    benchmarks = list((results / "benchmarks").rglob("*.tsv"))
    assert logs and benchmarks


@pytest.mark.slow
def test_report_holds_every_table_and_figure(tiny_run):
    results, _ = tiny_run
    report = results / "report.html"
    snakemake("--configfile", TINY, "--config", f"results={results}", "--report", str(report))
    html = report.read_text(encoding="utf-8", errors="replace")
    shown = sorted(results.glob("tables/*.csv")) + sorted(results.glob("figures/**/*.png"))
    assert len(shown) >= 12
    missing = [str(p.relative_to(results)) for p in shown if p.name not in html]
    assert not missing, f"not in the report: {missing}"
    if shutil.which("chromium") is None:
        pytest.skip("chromium not installed: the report was built but not rendered")
    render = subprocess.run(["bash", "tools/render_report.sh", str(results), "--configfile", TINY],
                            cwd=REPO, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert render.returncode == 0, render.stdout[-2000:] + render.stderr[-2000:]
    assert (results / "report.png").stat().st_size > 20_000  # a rendered page, not a blank one


@pytest.mark.slow
def test_second_run_does_nothing(tiny_run):
    results, _ = tiny_run
    again = snakemake("--configfile", TINY, "--config", f"results={results}", "--cores", "2")
    assert "Nothing to be done" in again.stdout, again.stdout[-3000:]


@pytest.mark.slow
def test_appending_a_concept_reruns_only_its_sentences_its_shard_and_reductions(tiny_run,
                                                                                 tmp_path):
    results, _ = tiny_run
    table = tmp_path / "concepts.tsv"
    shutil.copy(REPO / "tests/data/tiny_concepts.tsv", table)
    with table.open("a") as handle:
        handle.write("frozen\tfrozen\tadjective\tturned into ice\t\t\n")
    plan = snakemake("-n", "--configfile", TINY, "--config", f"results={results}",
                     f"concepts={table}", "--quiet", "rules")
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", plan.stdout, flags=re.M))
    assert counts.get("generate_sentences") == "1"
    # 8 concepts in shards of 4: shard 0001 gains the new concept, shard 0000 is untouched
    assert counts.get("experts") == "2"  # shard 0001 for each of the two models
    assert "negative_bank" not in counts
    detail = snakemake("-n", "--configfile", TINY, "--config", f"results={results}",
                       f"concepts={table}")
    outputs = [line for line in detail.stdout.splitlines() if line.strip().startswith("output:")]
    assert not any("shard-0000.arrow" in line for line in outputs), outputs
    assert sum("shard-0001.arrow" in line for line in outputs) == 2


@pytest.mark.slow
def test_cli_concept_reproduces_the_workflows_expert_job(tiny_run, tmp_path):
    """`expertalign experts --concept` takes the workflow's sentences and negatives for a concept,
    so its AP vector is the expert job's (up to float rounding of a different batch layout)."""
    import numpy as np

    from expertalign.storage import read_expertise

    results, _ = tiny_run
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({**yaml.safe_load((REPO / TINY).read_text()),
                                      "results": str(results)}))
    out = tmp_path / "sun.arrow"
    cli = str(Path(sys.executable).with_name("expertalign"))
    run = subprocess.run([cli, "experts", "--model", "embedded", "--concept", "sun",
                          "--configfile", str(config), "--output", str(out), "--tau", "0.5"],
                         cwd=REPO, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    concepts, ours = read_expertise([out])
    assert concepts == ["sun"]
    shard, workflow = read_expertise([results / "experts/tiny-smollm2/final/shard-0000.arrow"])
    expected = workflow[shard.index("sun")]
    assert np.mean(np.abs(ours[0] - expected) > 1e-6) < 0.01
    assert f'"experts@0.5": {int((ours[0] > 0.5).sum())}' in run.stdout

    missing = subprocess.run([cli, "experts", "--model", "embedded", "--concept", "hail",
                              "--configfile", str(config)],
                             cwd=REPO, capture_output=True, text=True, timeout=600)
    assert missing.returncode != 0
    assert "hail.parquet does not exist" in missing.stderr
