"""The Snakemake workflow without running it: lint, snakefmt, dry runs and config errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml
from workflow_helpers import REPO, TINY, snakemake


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
    config = yaml.safe_load((REPO / "config/config.yaml").read_text())
    sources = len(config["sentences"]["sources"])
    per_job = config["sentences"]["concepts_per_job"]
    pilot_pools = 1  # the pilot's own pools: one job for its few concepts
    # one generator load per batch; the Brown source's batches run on the CPU
    assert int(counts["generate_sentences"]) == -(-len(concepts) // per_job) + pilot_pools
    assert int(counts["collect_sentences"]) == (sources - 1) * -(-len(concepts) // per_job)
    assert int(counts["sentences_from_batch"]) == sources * len(concepts)
    assert int(counts["negative_bank"]) == sources
    shards = -(-len(concepts) // config["experts"]["shard_size"])
    assert int(counts["experts"]) == sources * 2 * shards
    assert int(counts["similarity"]) == sources * 2
    assert int(counts["alignment"]) == sources * 2
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
