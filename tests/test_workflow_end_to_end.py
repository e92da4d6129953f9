"""The Snakemake workflow run end to end on the tiny config (the session's run, ``tiny_run``)."""

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
from prerequisites import require
from tiny_models import TINY_LLAMA
from workflow_helpers import (
    REPO,
    SOURCES,
    _assert_alignment_table_is,
    _recomputed_alignment,
    copy_of_run,
)


@pytest.mark.slow
def test_tiny_workflow_end_to_end(tiny_run):
    results = tiny_run.results
    table = pd.read_csv(results / "tables/alignment.csv")
    assert set(table.columns) >= {
        "judgment",
        "model",
        "checkpoint",
        "measure",
        "tau",
        "rho",
        "ci_low",
        "ci_high",
        "p_value",
        "n_pairs",
    }
    assert set(table["model"]) == {"tiny-llama", "tiny-llama-random"}
    jaccard = table[table["measure"] == "jaccard"]
    assert sorted(jaccard["tau"].unique()) == [0.5, 0.7, 0.9]
    assert (table["n_pairs"] == 15).all()  # the 7 weather words share 15 MEN pairs
    finite = table.dropna(subset=["rho"])
    # ρ is undefined only where the expert overlap is constant over the 15 pairs: the tiny
    # random models' expert sets above τ 0.5 are small and rarely overlap (at 78ab722 on
    # 2026-12-04: 1 of 21 pairs at τ 0.7, none at 0.9, for the trained model's generated
    # source). Every baseline and every τ 0.5 row has its ρ.
    undefined = table[table["rho"].isna()]
    assert ((undefined["measure"] == "jaccard") & (undefined["tau"] > 0.5)).all(), undefined
    assert len(undefined) < len(jaccard[jaccard["tau"] > 0.5])
    assert finite["rho"].between(-1, 1).all()
    assert (finite["ci_low"] <= finite["rho"]).all() and (finite["rho"] <= finite["ci_high"]).all()
    assert (results / "figures/alignment.png").stat().st_size > 10_000
    frost = pd.read_parquet(results / "sentences/generated/frost.parquet")
    assert len(frost) == 8 and frost["text"].str.contains("frost", case=False).all()
    assert (frost["source"] != "provided").all()
    sun = pd.read_parquet(results / "sentences/generated/sun.parquet")
    assert (sun["prompt"] == "provided").all()
    logs = list((results / "logs").rglob("*.log"))
    benchmarks = list((results / "benchmarks").rglob("*.tsv"))
    assert logs and benchmarks


@pytest.mark.slow
def test_the_random_init_twin_is_another_model(tiny_run):
    """The random-init model draws fresh weights: its AP vectors are not the model's (the tiny
    config's model is itself random, saved with another seed than its twin's)."""
    import numpy as np

    from expertalign.storage import read_expertise

    shards = [
        tiny_run.results / f"experts/generated/{model}/final/shard-0000.arrow"
        for model in ("tiny-llama", "tiny-llama-random")
    ]
    (concepts, trained), (twin_concepts, random_init) = map(read_expertise, ([p] for p in shards))
    assert concepts == twin_concepts
    assert np.abs(trained - random_init).max() > 0.1


@pytest.mark.slow
def test_report_holds_every_table_and_figure(tiny_run):
    results = tiny_run.results
    report = results / "report.html"
    tiny_run.snakemake("--report", str(report))
    html = report.read_text(encoding="utf-8", errors="replace")
    shown = sorted(results.glob("tables/*.csv")) + sorted(results.glob("figures/**/*.png"))
    assert len(shown) >= 12
    missing = [str(p.relative_to(results)) for p in shown if p.name not in html]
    assert not missing, f"not in the report: {missing}"
    require(
        shutil.which("chromium") is not None, "chromium (the report was built but not rendered)"
    )
    render = subprocess.run(
        ["bash", "tools/render_report.sh", str(results), "--configfile", str(tiny_run.configfile)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert render.returncode == 0, render.stdout[-2000:] + render.stderr[-2000:]
    assert (results / "report.png").stat().st_size > 20_000  # a rendered page, not a blank one


@pytest.mark.slow
def test_second_run_does_nothing(tiny_run):
    again = tiny_run.snakemake("--cores", "2")
    assert "Nothing to be done" in again.stdout, again.stdout[-3000:]


@pytest.mark.slow
def test_appending_a_concept_reruns_only_its_sentences_its_shard_and_reductions(tiny_run, tmp_path):
    table = tmp_path / "concepts.tsv"
    shutil.copy(REPO / "tests/data/tiny_concepts.tsv", table)
    with table.open("a") as handle:
        handle.write("frozen\tfrozen\tadjective\tturned into ice\t\t\n")
    plan = tiny_run.snakemake("-n", "--config", f"concepts={table}", "--quiet", "rules")
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", plan.stdout, flags=re.M))
    # one sentence job per source, each for the new concept only (provided sentences and the
    # corpus need no GPU: collect_sentences)
    assert counts.get("collect_sentences") == str(len(SOURCES))
    assert "generate_sentences" not in counts
    assert counts.get("sentences_from_batch") == str(len(SOURCES))
    # 8 concepts in shards of 4: shard 0001 gains the new concept, shard 0000 is untouched
    assert counts.get("experts") == str(2 * len(SOURCES))  # shard 0001 of each model, source
    assert "negative_bank" not in counts
    detail = tiny_run.snakemake("-n", "--config", f"concepts={table}")
    outputs = [line for line in detail.stdout.splitlines() if line.strip().startswith("output:")]
    assert not any("shard-0000.arrow" in line for line in outputs), outputs
    assert sum("shard-0001.arrow" in line for line in outputs) == 2 * len(SOURCES)


@pytest.mark.slow
def test_cli_concept_reproduces_the_workflows_expert_job(tiny_run, tmp_path):
    """`expertalign experts --concept` takes the workflow's sentences and negatives for a concept,
    so its AP vector is the expert job's (up to float rounding of a different batch layout)."""
    import numpy as np

    from expertalign.storage import read_expertise

    results = tiny_run.results
    config = tiny_run.configfile
    out = tmp_path / "sun.arrow"
    cli = str(Path(sys.executable).with_name("expertalign"))
    run = subprocess.run(
        [
            cli,
            "experts",
            "--model",
            TINY_LLAMA,
            "--concept",
            "sun",
            "--configfile",
            str(config),
            "--output",
            str(out),
            "--tau",
            "0.5",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    concepts, ours = read_expertise([out])
    assert concepts == ["sun"]
    shard, workflow = read_expertise(
        [results / "experts/generated/tiny-llama/final/shard-0000.arrow"]
    )
    expected = workflow[shard.index("sun")]
    # Both runs see the same sentences; the batches differ, so a unit's responses may differ in
    # float rounding. That can only swap two near-equal sentences in a unit's ranking: a swap of
    # a positive with the negative next to it moves that positive's precision, and so the AP, by
    # at most 1 / (2 n_positives). Anything larger is a different computation.
    n_positives = len(pd.read_parquet(results / "sentences/generated/sun.parquet"))
    difference = np.abs(ours[0] - expected)
    assert difference.max() <= 1 / (2 * n_positives) + 1e-6, difference.max()
    assert np.mean(difference > 1e-6) < 0.001, np.mean(difference > 1e-6)
    assert f'"experts@0.5": {int((ours[0] > 0.5).sum())}' in run.stdout

    missing = subprocess.run(
        [cli, "experts", "--model", TINY_LLAMA, "--concept", "hail", "--configfile", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert missing.returncode != 0
    assert "hail.parquet does not exist" in missing.stderr


# ------------------------------------------------------------------ reported numbers, recomputed


@pytest.mark.slow
def test_reported_alignment_recomputed_from_the_shards(tiny_run):
    """Every row of tables/alignment.csv (ρ, CI, p, n for each measure and model), rebuilt here
    from the expert shards, the baselines and MEN without the package's alignment code."""
    results = tiny_run.results
    expected = _recomputed_alignment(results, REPO / "tests/data/tiny_concepts.tsv")
    assert (expected["n_pairs"] == 15).all()
    _assert_alignment_table_is(results, expected)


def _assert_spp_overlaps_are_jaccards(results: Path) -> None:
    """tables/spp_overlap.csv: one row per pair of the tiny pair file for the trained model (the
    SPP analysis leaves random-init models out), its overlap the Jaccard of the two concepts'
    expert sets at spp.tau, computed here from the shards with Python sets."""
    import numpy as np

    from expertalign.storage import read_expertise

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    tau = schema["properties"]["spp"]["properties"]["tau"]["default"]
    pairs = pd.read_csv(REPO / "tests/data/tiny_spp_pairs.tsv", sep="\t")
    overlap = pd.read_csv(results / "tables/spp_overlap.csv")
    assert set(overlap["model"]) == {"tiny-llama"}
    assert overlap[["word1", "word2", "level"]].values.tolist() == (
        pairs[["word1", "word2", "level"]].values.tolist()
    )
    shards = sorted((results / "experts/generated/tiny-llama/final").glob("shard-*.arrow"))
    concepts, ap = read_expertise(shards)
    sets = {c: set(np.flatnonzero(ap[i] > tau)) for i, c in enumerate(concepts)}
    for row in overlap.itertuples():
        a, b = sets[row.word1], sets[row.word2]
        assert row.overlap == pytest.approx(len(a & b) / len(a | b) if a | b else 0.0), row
    model = pd.read_csv(results / "tables/spp_mixed_model.csv")
    assert {"weak - none", "strong - weak"} <= set(model["term"])
    assert np.isfinite(model["estimate"]).all() and (model["n_obs"] == len(pairs)).all()


@pytest.mark.slow
def test_spp_analysis_runs_on_the_tiny_run(tiny_run):
    results = tiny_run.results
    _assert_spp_overlaps_are_jaccards(results)


@pytest.mark.slow
def test_appending_a_concept_and_running_reruns_only_what_it_must(tiny_run, tmp_path):
    """Runs for real what the dry-run test above plans: append a concept and run the workflow
    (on a copy of the session's run, which other tests read as it was)."""
    import numpy as np

    run = copy_of_run(tiny_run, tmp_path / "run")
    results = run.results
    table = tmp_path / "concepts.tsv"
    shutil.copy(REPO / "tests/data/tiny_concepts.tsv", table)
    with table.open("a") as handle:  # provided sentences: tests/data/sentences/frozen.txt
        handle.write("frozen\tfrozen\tadjective\tturned into ice\t\t\n")
    models = ("tiny-llama", "tiny-llama-random")
    untouched = [
        results / f"experts/{source}/{m}/final/shard-0000.arrow"
        for source in SOURCES
        for m in models
    ]
    untouched += [results / f"negatives/{source}/bank-tiny.parquet" for source in SOURCES]
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in untouched}
    rerun = [
        results / f"similarity/{source}/{m}/final/pairs.parquet"
        for source in SOURCES
        for m in models
    ]
    rerun += [
        results / f"alignment/{source}/men/{m}/final.parquet" for source in SOURCES for m in models
    ]
    rerun.append(results / "tables/alignment.csv")
    old_mtimes = {p: p.stat().st_mtime_ns for p in rerun}

    # up to the alignment table: what this test checks (the dry run above plans every rule)
    appended = run.snakemake(
        "--config",
        f"concepts={table}",
        "--cores",
        "2",
        str(results / "tables/alignment.csv"),
        timeout=1200,
    )
    for path, (content, mtime) in before.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was rewritten:\n{appended.stdout[-3000:]}"
        assert path.read_bytes() == content, path
    for path, mtime in old_mtimes.items():
        assert path.stat().st_mtime_ns > mtime, f"{path} was not rerun"
    from expertalign.storage import read_expertise

    for model in models:
        concepts, ap = read_expertise(
            [results / f"experts/generated/{model}/final/shard-0001.arrow"]
        )
        assert concepts == ["cold", "smoke", "frost", "frozen"]
        assert np.isfinite(ap).all()
        pairs = pd.read_parquet(results / f"similarity/generated/{model}/final/pairs.parquet")
        assert "frozen" in set(pairs["concept_b"])
        assert len(pairs[pairs["measure"] == "cosine_ap"]) == 8 * 7 // 2
    frozen = pd.read_parquet(results / "sentences/generated/frozen.parquet")
    assert (frozen["prompt"] == "provided").all() and len(frozen) == 8
    # the tables hold the new concept: MEN's "cold frozen" is a 16th judged pair, and every
    # reported number is again what the shards give
    expected = _recomputed_alignment(results, table)
    assert (expected["n_pairs"] == 16).all()
    _assert_alignment_table_is(results, expected)
