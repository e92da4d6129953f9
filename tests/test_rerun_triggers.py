"""What a config change or an edited input reruns, planned by dry runs against the session's
finished tiny run (``tiny_run``).

GPU work must rerun only when its result would change: tau reaches only the reductions, a job
sees only its own checkpoint, speed settings rerun nothing, and an edited input file reruns
exactly what reads it.
"""

from __future__ import annotations

import re

import pytest
import yaml
from workflow_helpers import REPO, snakemake

TINY = REPO / "tests/data/tiny_config.yaml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tiny_run):
    """The session's finished tiny run (its provided sentence files are copies a test may edit
    and must restore) and its config; the pilot too: a speed setting or reordered keys must not
    rerun it either."""
    return tiny_run.root, tiny_run.config


def planned(root, config, *extra: str) -> dict[str, int]:
    """Job counts per rule of a dry run with ``config`` (written next to the run)."""
    path = root / "changed.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # key order as given
    plan = snakemake("-n", "--configfile", str(path), "--quiet", "rules", *extra)
    if "Nothing to be done" in plan.stdout:
        return {}
    counts = {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", plan.stdout, re.M)}
    counts.pop("total", None)
    counts.pop("all", None)
    return counts


def changed(config, section: str, **values):
    return {**config, section: {**config[section], **values}}


def test_unchanged_config_plans_nothing(finished):
    root, config = finished
    assert planned(root, config) == {}


def test_changing_taus_reruns_only_the_reductions(finished):
    root, config = finished
    counts = planned(root, changed(config, "experts", taus=[0.5, 0.8]))
    assert counts, "changing taus must rerun the reductions"
    for gpu_rule in ("experts", "generate_sentences", "embedding_baselines", "units_table"):
        assert gpu_rule not in counts, counts
    # per sentence source and model; the domain and development analyses use the first source
    assert counts["similarity"] == 4 and counts["alignment"] == 4, counts
    assert counts["domains"] == 2 and counts["development"] == 1, counts


def test_adding_a_checkpoint_runs_only_that_checkpoint(finished):
    root, config = finished
    models = [dict(m) for m in config["models"]]
    models[0]["revisions"] = [*models[0]["revisions"], "main"]
    counts = planned(root, {**config, "models": models})
    # the new checkpoint's two shards, its baselines, similarity, alignment and domains; the
    # existing checkpoints' expert jobs, similarities and alignments stay as they are
    assert counts["experts"] == 4, counts  # 2 shards x 2 sentence sources
    assert counts["embedding_baselines"] == 1 and counts["similarity"] == 2, counts
    assert counts["alignment"] == 2 and counts["domains"] == 1, counts
    assert "generate_sentences" not in counts and "units_table" not in counts, counts


@pytest.mark.parametrize(
    ("section", "setting", "value"),
    [("sentences", "batch_size", 3), ("experts", "max_tokens", 999)],
)
def test_speed_settings_rerun_nothing(finished, section, setting, value):
    root, config = finished
    assert planned(root, changed(config, section, **{setting: value})) == {}


def test_changing_the_prompts_regenerates_only_generated_concepts(finished):
    root, config = finished
    table = (REPO / config["concepts"]).read_text(encoding="utf-8").splitlines()[1:]
    concepts = [line.split("\t")[0] for line in table if line.strip()]
    generated = [c for c in concepts if not (root / "sentences" / f"{c}.txt").exists()]
    assert generated, "the tiny run generates some concepts"
    # the tiny config extends config/config.yaml, so that is where its prompt set may come from
    default = yaml.safe_load((REPO / "config/config.yaml").read_text())["sentences"]["prompts"]
    other = "short" if config["sentences"].get("prompts", default) == "paper" else "paper"
    counts = planned(root, changed(config, "sentences", prompts=other))
    # one job (one generator load) for all of them; each moves out to its own file. The Brown
    # source's copies of them (its fallback) are collected again, its corpus sentences are not.
    assert counts["generate_sentences"] == 1 and counts["collect_sentences"] == 1, counts
    assert counts["sentences_from_batch"] == 2 * len(generated), counts
    # their shards rerun, and the baselines' CPU reduction of the shards' word vectors with them
    assert "units_table" not in counts and counts["embedding_baselines"] == 2, counts


def test_editing_a_provided_file_reruns_its_concept_and_what_reads_it(finished):
    root, config = finished
    rain = root / "sentences/rain.txt"
    text = rain.read_text(encoding="utf-8")
    rain.write_text("\n".join(reversed(text.splitlines())) + "\n", encoding="utf-8")
    try:
        counts = planned(root, config)
    finally:  # the finished run stays finished for the module's other tests
        rain.write_text(text, encoding="utf-8")
    # a batch of provided files needs no GPU: collect_sentences. The Brown source has its own
    # sentences for rain, so its fallback's edit changes nothing there.
    assert counts["collect_sentences"] == 1 and counts["sentences_from_batch"] == 1, counts
    assert "generate_sentences" not in counts, counts
    # rain is in shard 0000 and among the bank's source concepts: the bank and every shard
    # of both models depend on it
    assert counts["negative_bank"] == 1, counts
    assert counts["experts"] == 4, counts
    # the shards' word vectors are rewritten, so the baselines' CPU reduction reruns per model
    assert counts["embedding_baselines"] == 2 and "units_table" not in counts, counts


def test_a_missing_judgment_file_fails_the_dry_run_by_name(tmp_path):
    """On a new run (alignment to compute) a missing MEN file fails the dry run, by name."""
    plan = snakemake(
        "-n",
        "--configfile",
        str(TINY),
        "--config",
        f"results={tmp_path / 'results'}",
        f"data_dir={tmp_path}",
        check=False,
    )
    assert plan.returncode != 0
    assert str(tmp_path) in plan.stdout, plan.stdout[-3000:]
    assert "MEN_dataset_natural_form_full" in plan.stdout, plan.stdout[-3000:]


def test_reordered_config_keys_rerun_nothing(finished):
    """Params are passed in canonical form: the order of keys in a config block changes none."""
    root, config = finished
    reordered = {
        section: dict(reversed(list(values.items()))) if isinstance(values, dict) else values
        for section, values in config.items()
    }
    reordered["models"] = [dict(reversed(list(m.items()))) for m in config["models"]]
    assert planned(root, reordered) == {}


def test_touched_workflow_files_and_a_refetched_model_rerun_nothing(finished):
    """A checkout, a pull or `touch` gives every workflow file a new time; with the profiles'
    rerun triggers that reruns nothing, and a prefetch that reruns (a refreshed cache) reruns
    no job that reads the model (they take its marker as ancient)."""
    import os

    root, config = finished
    touched = [p for p in (REPO / "workflow").rglob("*") if p.is_file()] + [REPO / "Snakefile"]
    times = {p: p.stat() for p in touched}
    try:
        for path in touched:
            path.touch()
        assert planned(root, config, "--profile", "profiles/local") == {}
        counts = planned(root, config, "--profile", "profiles/local", "--forcerun", "prefetch")
        assert counts == {"prefetch": 1}, counts
    finally:
        for path, stat in times.items():
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_adding_a_concept_makes_its_sentences_and_its_shards_only(finished, tmp_path):
    """A row appended to the concept table: its sentences (one generation batch) and the expert
    shard it joins, per source and model, then the reductions; no causal job (its params hold
    only its own concepts' words, not the table), no pilot, bank or unit table."""
    root, config = finished
    table = (REPO / config["concepts"]).read_text(encoding="utf-8")
    added = tmp_path / "concepts.tsv"
    row = "snow\tsnow\tnoun\tprecipitation falling from clouds as ice crystals\t\t\n"
    added.write_text(table + row, encoding="utf-8")
    counts = planned(root, {**config, "concepts": str(added)})
    assert counts["generate_sentences"] == 1 and counts["collect_sentences"] == 1, counts
    assert counts["experts"] == 2 * 2, counts  # the last shard, per source x model
    # the baselines reduce the word vectors the expert jobs write, on the CPU: adding a concept
    # loads no model for them (their GPU job held every word in its params and reran whole)
    assert counts["embedding_baselines"] == 2, counts
    for rule in ("causal", "causal_summary", "pilot", "negative_bank", "units_table"):
        assert rule not in counts, counts
