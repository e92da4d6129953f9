"""The expert job's memory estimate: reference shapes, and predicted vs measured peak on the CPU."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
from workflow_helpers import REPO

from expertalign import resources
from expertalign.resources import ModelShape, expert_job_memory, model_shape


@pytest.fixture(autouse=True)
def empty_shape_cache(tmp_path, monkeypatch):
    """Every test computes its shapes: none comes from a cache filled before it."""
    monkeypatch.setenv("EXPERTALIGN_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "model-shapes"


@pytest.mark.parametrize(
    ("source", "units"),
    [
        ("EleutherAI/pythia-70m", 27_648),
        ("EleutherAI/pythia-1b", 294_912),
        ("EleutherAI/pythia-12b", 1_658_880),
        ("embedded", 155_520),
        ("gpt2", 82_944),
    ],
)
def test_reference_shapes_have_the_models_unit_counts(source, units):
    assert model_shape(source).n_units == units


def test_pythia_12b_parameter_count_is_the_published_one():
    assert abs(model_shape("EleutherAI/pythia-12b").n_parameters - 11.85e9) < 0.01e9


def test_a_shape_is_computed_once_and_again_when_its_config_changes(
    empty_shape_cache, tmp_path, monkeypatch
):
    folder = tmp_path / "model"
    folder.mkdir()
    config = {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 2, "vocab_size": 100}
    (folder / "config.json").write_text(json.dumps(config))
    first = model_shape(str(folder))
    assert len(list(empty_shape_cache.glob("*.json"))) == 1

    def not_again(config):
        raise AssertionError("the shape was computed again")

    with monkeypatch.context() as patched:
        patched.setattr(resources, "shape_from_config", not_again)
        assert model_shape(str(folder)) == first
    # another config.json (one more layer) is another model: computed, with one layer's more units
    (folder / "config.json").write_text(json.dumps({**config, "n_layer": 3}))
    deeper = model_shape(str(folder))
    assert deeper.n_units == first.n_units * 3 // 2
    assert len(list(empty_shape_cache.glob("*.json"))) == 2
    # an unreadable cache file is computed again and replaced
    for path in empty_shape_cache.glob("*.json"):
        path.write_text("{not json")
    assert model_shape(str(folder)) == deeper
    texts = sorted(p.read_text() for p in empty_shape_cache.glob("*.json"))
    assert texts == sorted(["{not json", json.dumps(dataclasses.asdict(deeper))])


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="no-such/model"):
        model_shape("no-such/model")


def test_a_pythia_12b_shard_of_12_needs_more_than_a_40gb_card():
    need = expert_job_memory(
        model_shape("EleutherAI/pythia-12b"), n_concepts=12, n_positives=400, bank_rows=1100
    )
    assert 40e9 < need.total_bytes < 80e9, need.describe()


@pytest.mark.slow
@pytest.mark.parametrize(("n_concepts", "n_positives", "n_bank"), [(4, 300, 800)])
def test_estimate_matches_the_measured_peak_on_the_cpu(n_concepts, n_positives, n_bank):
    """The shard's own memory (responses, sorted bank, a concept's positives, activations)
    measured as peak minus baseline RSS in a fresh process, against the estimate's parts."""
    probe = subprocess.run(
        [sys.executable, "tests/memory_probe.py", str(n_concepts), str(n_positives), str(n_bank)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    measured = json.loads(probe.stdout.splitlines()[-1])
    shape = ModelShape(measured["n_units"], measured["n_parameters"], measured["widest"])
    need = expert_job_memory(
        shape,
        n_concepts=n_concepts,
        n_positives=n_positives,
        bank_rows=n_bank,
        device="cpu",
        dtype="float32",
    )
    # weights and the runtime are in the baseline: the model was loaded before it was taken
    predicted = need.total_bytes - need.parts["weights"] - need.parts["runtime"]
    added = measured["peak"] - measured["baseline"]
    assert abs(added - predicted) <= 0.15 * added, (added, need.describe())


def test_causal_work_counts_each_forward_pass_of_a_job():
    """A part of 2 concepts (of 4) with 40 positives (20 held out), 3 unit sets (k 10 and 100,
    one tau) x 21 draws, 5 neutral sentences, the judged set forced from 2 of 12 prompts x 2
    seeds x 3 tokens: counted by hand from jobs.causal's loops."""
    settings = {
        "k": [10, 100, 5000],  # 5000 > the model's units: no such set
        "taus": [0.5],
        "n_random": 20,
        "n_neutral": 5,
        "test_fraction": 0.5,
        "forcing": "judged",
        "n_prompts": 2,
        "n_seeds": 2,
        "max_new_tokens": 3,
    }
    work = resources.causal_work(
        settings, n_part=2, n_concepts=4, n_positives=40, bank_rows=120, n_units=1000, n_prompts=12
    )
    # per concept: (1 + 3 x 21) x (20 + 5) scored, its experts on 4 concepts x 20, and
    # (1 + 21) generations x 2 prompts x 2 seeds scored; plus 4 x 20 unmodified
    assert work.scored == 2 * (64 * 25 + 4 * 20 + 22 * 2 * 2) + 4 * 20
    assert work.recorded == 2 * 20 + 120
    assert work.decode_steps == 2 * 22 * 2 * 3
    none = resources.causal_work(
        {**settings, "forcing": "none"},
        n_part=2, n_concepts=4, n_positives=40, bank_rows=120, n_units=1000, n_prompts=12,
    )  # fmt: skip
    assert none.decode_steps == 0 and none.scored == work.scored - 2 * 22 * 2 * 2
    shape = model_shape("EleutherAI/pythia-12b")
    longer = resources.causal_job_runtime_minutes(shape, dataclasses.replace(work, scored=10**6))
    assert longer > resources.causal_job_runtime_minutes(shape, work) >= 15
