"""The expert job's memory estimate: reference shapes, and predicted vs measured peak on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from workflow_helpers import REPO

from expertalign.resources import ModelShape, expert_job_memory, model_shape


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
