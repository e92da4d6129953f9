"""A sentence source with its own negatives and ``too_few: leave_out``: the config keys, the plan,
and the expert job on the tiny Llama (a concept without sentences gets no row; without the
setting it stops the shard, as before)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_data import random_sentences
from tiny_models import TINY_LLAMA

from expertalign.config import (
    ConfigError,
    check_config,
    load_config,
    source_leaves_out,
    source_negatives,
)
from expertalign.jobs import experts as expert_jobs
from expertalign.load_checks import check_config_inputs
from expertalign.negatives import build_negative_bank
from expertalign.sentences import ConceptFailedError, write_failed_sentences
from expertalign.storage import read_table

REPO = Path(__file__).resolve().parents[1]
WORDS = "the a small old red quiet house river market garden light stone".split()


@pytest.fixture(scope="module")
def default_config():
    return load_config(REPO / "config/config.yaml")


def _config(default_config: dict, brown: dict) -> dict:
    config = copy.deepcopy(default_config)
    config["sentences"]["sources"] = {"generated": {}, "brown": {"backend": "corpus", **brown}}
    return config


def test_a_source_keeps_the_ratio_with_its_own_negatives(default_config):
    """Brown with 40 positives needs 100 negatives: refused against the shared 35 (naming the
    keys), accepted with its own; the generated source keeps the shared block."""
    config = _config(default_config, {"n_positives": 40})
    with pytest.raises(
        ConfigError,
        match=r"sentences\.sources\.brown\.n_positives / negatives\.n_negatives \(source 'brown'\)",
    ):
        check_config_inputs(config, [])
    config = _config(
        default_config, {"n_positives": 40, "negatives": {"n_negatives": 100, "bank_size": 120}}
    )
    check_config(config)
    check_config_inputs(config, [])
    assert source_negatives(config, "brown")["n_negatives"] == 100
    assert source_negatives(config, "brown")["bank_size"] == 120
    assert source_negatives(config, "generated") == config["negatives"]
    small = _config(
        default_config, {"n_positives": 40, "negatives": {"n_negatives": 100, "bank_size": 101}}
    )
    with pytest.raises(ConfigError, match=r"sentences\.sources\.brown\.negatives\.bank_size"):
        check_config_inputs(small, [])


@pytest.mark.parametrize(
    ("brown", "match"),
    [
        ({"negatives": {"seed": 3}}, r"sentences\.sources\.brown\.negatives\.seed"),
        ({"negatives": {"n_negatives": 0}}, r"sentences\.sources\.brown\.negatives\.n_negatives"),
        ({"too_few": "skip"}, r"sentences\.sources\.brown\.too_few: one of stop, leave_out"),
    ],
)
def test_bad_source_keys_are_named(default_config, brown, match):
    with pytest.raises(ConfigError, match=match):
        check_config(_config(default_config, brown))


def test_the_first_source_cannot_leave_concepts_out(default_config):
    """The first source feeds the analyses over every concept: leave_out there is refused."""
    config = copy.deepcopy(default_config)
    config["sentences"]["sources"] = {"brown": {"backend": "corpus", "too_few": "leave_out"}}
    with pytest.raises(ConfigError, match=r"sentences\.sources\.brown\.too_few: leave_out on the"):
        check_config(config)
    config = _config(default_config, {"too_few": "leave_out"})
    check_config(config)
    assert source_leaves_out(config, "brown") and not source_leaves_out(config, "generated")


def test_source_only_keys_stay_out_of_the_sentence_settings(default_config):
    """Neither key shapes the sentences: the source's sentence settings (and so its files'
    fingerprints) are those of the same source without them."""
    from expertalign.config import sentence_sources

    plain = _config(default_config, {"n_positives": 40})
    more = _config(
        default_config,
        {"n_positives": 40, "too_few": "leave_out", "negatives": {"n_negatives": 100}},
    )
    assert sentence_sources(plain) == sentence_sources(more)


def _shard_inputs(tmp_path: Path, failed: set[str]) -> tuple[list[str], str, list[str]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)

    def frame(concept: str, n: int) -> pd.DataFrame:
        return random_sentences(concept, n, rng, WORDS, prompt="corpus", source="corpus:brown")

    concepts = ["cat", "dog", "car"]
    frames = {c: frame(c, 8) for c in concepts}
    frames.update({f"filler{i}": frame(f"filler{i}", 12) for i in range(3)})
    files = []
    for concept in concepts:
        path = tmp_path / f"{concept}.parquet"
        if concept in failed:
            write_failed_sentences(path, concept, "TooFewSentencesError: 3 of 8", "print")
        else:
            frames[concept].to_parquet(path)
        files.append(str(path))
    bank_frames = [f for c, f in frames.items() if c not in failed]
    bank = tmp_path / "bank.parquet"
    build_negative_bank(bank_frames, size=30, seed=0, version="t").to_parquet(bank)
    return files, str(bank), concepts


def _run(files, bank, concepts, output: Path, leave_out: bool) -> None:
    expert_jobs.experts(
        files,
        bank,
        str(output),
        model={"name": "tiny-llama", "source": str(REPO / TINY_LLAMA), "dtype": "float32"},
        revision="final",
        concepts=concepts,
        n_negatives=20,
        settings={"max_length": 32, "max_tokens": 512, "unit_stats": False},
        leave_out=leave_out,
    )


def test_the_expert_job_leaves_out_a_concept_without_sentences(tmp_path, caplog):
    """With leave_out, the shard has rows for the other concepts, equal to a shard run without
    the failed one; without it, the shard stops naming the concept and writes nothing."""
    files, bank, concepts = _shard_inputs(tmp_path, failed={"dog"})
    stopped = tmp_path / "stopped.arrow"
    with pytest.raises(ConceptFailedError, match="dog"):
        _run(files, bank, concepts, stopped, leave_out=False)
    assert not stopped.exists()

    shard = tmp_path / "shard.arrow"
    with caplog.at_level("WARNING", logger="expertalign"):
        _run(files, bank, concepts, shard, leave_out=True)
    assert any("dog left out" in r.getMessage() for r in caplog.records)
    table = read_table(shard)
    assert table.column("concept").to_pylist() == ["cat", "car"]

    alone = tmp_path / "alone.arrow"
    keep = [0, 2]
    _run([files[i] for i in keep], bank, [concepts[i] for i in keep], alone, leave_out=False)
    expected = read_table(alone)
    np.testing.assert_array_equal(
        np.stack(table.column("ap").to_numpy(zero_copy_only=False)),
        np.stack(expected.column("ap").to_numpy(zero_copy_only=False)),
    )


def test_a_shard_of_left_out_concepts_has_no_rows_and_the_models_width(tmp_path):
    files, bank, concepts = _shard_inputs(tmp_path / "in", failed={"cat", "dog", "car"})
    shard = tmp_path / "empty.arrow"
    _run(files, bank, concepts, shard, leave_out=True)
    table = read_table(shard)
    assert table.num_rows == 0
    assert table.column("ap").type.list_size == int(table.schema.metadata[b"n_units"]) > 0
