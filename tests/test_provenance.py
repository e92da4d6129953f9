"""Which weights a result came from: prefetch records the Hub commit and a SHA-256 of the weight
files, expert shards and baseline files carry them, and a branch that moved between two fetches
is reported (in the log, the record and the provenance table); a job that would compute a
revision from another commit than its existing results refuses unless the model's
accept_revision_change says to recompute; results carry the package version and config hash."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
import torch
from huggingface_hub import constants as hub_constants
from synthetic_data import random_sentences
from tiny_models import WORDS, tiny_model, word_tokenizer

from expertalign import provenance
from expertalign.jobs import analysis as analysis_jobs
from expertalign.jobs import experts as expert_jobs
from expertalign.jobs import sentences as sentence_jobs
from expertalign.paths import parse_run, word_vectors_file

OLD = "a" * 40
NEW = "b" * 40


def _snapshot(cache: Path, repo: str, revision: str, commit: str, seed: int) -> Path:
    """A Hub cache entry as huggingface_hub lays it out: refs/<revision> names the commit, the
    snapshot's weight file links to a blob named by its SHA-256."""
    storage = cache / ("models--" + repo.replace("/", "--"))
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / revision).write_text(commit)
    folder = storage / "snapshots" / commit
    folder.mkdir(parents=True)
    model = tiny_model("gpt_neox", seed=seed)
    model.save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    weights = folder / "model.safetensors"
    blob = storage / "blobs" / hashlib.sha256(weights.read_bytes()).hexdigest()
    blob.parent.mkdir(exist_ok=True)
    weights.rename(blob)
    weights.symlink_to(blob)
    return folder


def _sha256sum(folder: Path, names: list[str]) -> str:
    """What `sha256sum <names> | sha256sum` prints, the record's documented recipe."""
    lines = "".join(
        f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in sorted(names)
    )
    return hashlib.sha256(lines.encode()).hexdigest()


def test_prefetch_records_the_commit_and_weights_and_reports_a_moved_branch(
    offline_cache, tmp_path, caplog, monkeypatch
):
    old = _snapshot(offline_cache, "org/tiny", "step1", OLD, seed=0)
    marker = tmp_path / "prefetch" / "org--tiny" / "step1.json"
    sentence_jobs.prefetch("org/tiny", "step1", str(marker))
    first = json.loads(marker.read_text())
    assert first["commit"] == OLD
    assert first["weights"] == ["model.safetensors"]
    assert first["weights_sha256"] == _sha256sum(old, ["model.safetensors"])
    assert first["changed_from"] == ""
    history = marker.with_name("step1.history.jsonl")
    assert len(history.read_text().splitlines()) == 1

    # a rerun of an unchanged snapshot reuses the hashes (a 24 GB checkpoint is hashed once)
    def no_hashing(path):
        raise AssertionError(f"rehashed {path}")

    monkeypatch.setattr(provenance, "file_sha256", no_hashing)
    marker.unlink()  # as Snakemake deletes an output before its job reruns
    sentence_jobs.prefetch("org/tiny", "step1", str(marker))
    assert json.loads(marker.read_text())["weights_sha256"] == first["weights_sha256"]
    monkeypatch.undo()
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(offline_cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)

    # the branch moves to other weights: the record says so, and the log warns
    new = _snapshot(offline_cache, "org/tiny", "step1", NEW, seed=1)
    marker.unlink()
    with caplog.at_level(logging.WARNING, logger="expertalign"):
        sentence_jobs.prefetch("org/tiny", "step1", str(marker))
    second = json.loads(marker.read_text())
    assert second["commit"] == NEW
    assert second["weights_sha256"] == _sha256sum(new, ["model.safetensors"])
    assert second["weights_sha256"] != first["weights_sha256"]
    assert f"now commit {NEW}, was {OLD}" in second["changed_from"]
    assert any(f"was {OLD}" in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert len(history.read_text().splitlines()) == 3


def test_a_corrupt_blob_is_refused(offline_cache, tmp_path):
    folder = _snapshot(offline_cache, "org/tiny", "main", OLD, seed=0)
    blob = (folder / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # one flipped byte: the blob's name is no longer its content's hash
    blob.write_bytes(bytes(data))
    marker = tmp_path / "m.json"
    with pytest.raises(provenance.ProvenanceError, match="corrupt download"):
        sentence_jobs.prefetch("org/tiny", "main", str(marker))
    assert not marker.exists()


def _shard_inputs(tmp_path: Path) -> tuple[list[str], str, list[str]]:
    from expertalign.negatives import build_negative_bank

    rng = np.random.default_rng(0)

    def frame(concept: str, n: int) -> pd.DataFrame:
        return random_sentences(concept, n, rng, WORDS)

    concepts = ["cat", "dog"]
    frames = [frame(c, 12) for c in concepts] + [frame(f"filler{i}", 20) for i in range(3)]
    files = []
    for concept, sentences in zip(concepts, frames):
        files.append(str(tmp_path / f"{concept}.parquet"))
        sentences.to_parquet(files[-1])
    bank = tmp_path / "bank.parquet"
    build_negative_bank(frames, size=60, seed=0, version="t").to_parquet(bank)
    return files, str(bank), concepts


def test_shards_and_baselines_carry_the_record_and_load_its_commit(offline_cache, tmp_path):
    """The expert job loads the commit its marker records, not whatever the branch names now,
    and writes the commit and weights hash into the shard; the provenance table flags the shard
    once the branch has moved under it."""
    _snapshot(offline_cache, "org/tiny", "step1", OLD, seed=0)
    results = tmp_path / "results"
    marker = results / "prefetch" / "org--tiny" / "step1.json"
    sentence_jobs.prefetch("org/tiny", "step1", str(marker))
    record = json.loads(marker.read_text())
    # the branch moves after the prefetch (another `hf download`): the job must not follow it
    (offline_cache / "models--org--tiny" / "refs" / "step1").write_text(NEW)
    _snapshot(offline_cache, "org/tiny", "step1", NEW, seed=1)
    spec = {"name": "tiny", "source": "org/tiny", "dtype": "float32"}
    loaded = expert_jobs.load_model_for(spec, "step1", record["commit"])
    embeddings = loaded.model.get_input_embeddings().weight
    assert torch.equal(embeddings, tiny_model("gpt_neox", seed=0).get_input_embeddings().weight)
    assert not torch.equal(embeddings, tiny_model("gpt_neox", seed=1).get_input_embeddings().weight)

    files, bank, concepts = _shard_inputs(tmp_path)
    shard = results / "experts" / "generated" / "tiny" / "step1" / "shard-0000.arrow"
    expert_jobs.experts(
        files,
        bank,
        str(shard),
        model=spec,
        revision="step1",
        concepts=concepts,
        n_negatives=40,
        settings={"max_length": 16, "max_tokens": 512, "unit_stats": False},
        weights_record=str(marker),
        words={c: c for c in concepts},
        vectors_output=str(_vectors(shard)),
    )
    meta = {k.decode(): v.decode() for k, v in feather.read_table(shard).schema.metadata.items()}
    assert meta["weights_commit"] == OLD
    assert meta["weights_sha256"] == record["weights_sha256"]
    assert "state_dict_sha256" not in meta  # trained weights: the files' hash says it all

    baselines = results / "baselines" / "tiny" / "step1.parquet"
    analysis_jobs.embedding_baselines([str(_vectors(shard))], str(baselines))
    meta = {k.decode(): v.decode() for k, v in pq.read_schema(baselines).metadata.items()}
    assert (meta["model"], meta["revision"], meta["weights_commit"]) == ("tiny", "step1", OLD)
    assert len(pd.read_parquet(baselines)) == 1 * 2  # still the frame: 1 pair x 2 measures

    table_path = results / "tables" / "provenance.csv"
    analysis_jobs.provenance_table([str(shard)], [str(baselines)], str(table_path))
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    assert set(table["weights_commit"]) == {OLD} and set(table["consistent"]) == {"True"}

    # a rerun of the prefetch records the moved branch: both files are now flagged
    marker.unlink()
    sentence_jobs.prefetch("org/tiny", "step1", str(marker))
    analysis_jobs.provenance_table([str(shard)], [str(baselines)], str(table_path))
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    assert set(table["current_commit"]) == {NEW} and set(table["consistent"]) == {"False"}


def test_random_init_results_record_their_seed_and_drawn_weights(tmp_path):
    folder = tmp_path / "m"
    tiny_model("gpt2").save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)
    spec = {"name": "r", "source": str(folder), "dtype": "float32", "random_init": True}
    metas = [
        expert_jobs.weights_metadata(
            {**spec, "seed": seed}, expert_jobs.load_model_for({**spec, "seed": seed}, "main"), None
        )
        for seed in (0, 0, 1)
    ]
    assert metas[0]["init_seed"] == "0" and metas[2]["init_seed"] == "1"
    assert metas[0]["state_dict_sha256"] == metas[1]["state_dict_sha256"]  # seeded
    assert metas[0]["state_dict_sha256"] != metas[2]["state_dict_sha256"]
    # a local folder has no commit; the record's keys are there, empty, never guessed
    assert metas[0]["weights_commit"] == "" and metas[0]["weights_sha256"] == ""


def test_files_of_one_revision_with_different_weights_are_inconsistent(tmp_path):
    from expertalign.storage import expertise_table, write_table_atomic

    files = []
    for k, sha in enumerate(["1" * 64, "1" * 64, "2" * 64]):
        path = tmp_path / f"shard-{k:04d}.arrow"
        table = expertise_table(
            [f"c{k}"],
            np.zeros((1, 3)),
            n_pos=[1],
            n_neg=[1],
            metadata={"model": "m", "source": "org/m", "revision": "step1", "weights_sha256": sha},
        )
        write_table_atomic(table, path)
        files.append(str(path))
    table = provenance.provenance_table(files)
    assert table["consistent"].tolist() == [False, False, False]
    assert provenance.provenance_table(files[:2])["consistent"].tolist() == [True, True]


def _config(accept: bool | None = None) -> dict:
    """A config as the jobs receive it (the workflow's, merged): only what they read of it."""
    entry = {"name": "tiny", "source": "org/tiny", "revisions": ["step1"], "dtype": "float32"}
    if accept is not None:
        entry["accept_revision_change"] = accept
    return {"models": [entry], "experts": {"max_length": 16}, "results": "results"}


def _run_shard(files, bank, concepts, shard: Path, marker: Path, config: dict | None) -> None:
    expert_jobs.experts(
        files,
        bank,
        str(shard),
        model={"name": "tiny", "source": "org/tiny", "dtype": "float32"},
        revision="step1",
        concepts=concepts,
        n_negatives=40,
        settings={"max_length": 16, "max_tokens": 512, "unit_stats": False},
        weights_record=str(marker),
        config=config,
        words={c: c for c in concepts},
        vectors_output=str(_vectors(shard)),
    )


def _vectors(shard: Path) -> Path:
    """The word-vector file the expert job of ``shard`` writes beside it (paths layout)."""
    run = parse_run(str(shard))
    results = shard.parents[4]
    return Path(word_vectors_file(results, run.source, run.model, run.revision, run.shard))


def _run_baselines(output: Path, shard: Path, config: dict | None) -> None:
    """The baselines reduction over the word vectors of ``shard``'s expert job."""
    analysis_jobs.embedding_baselines([str(_vectors(shard))], str(output), config)


def _meta(path: Path) -> dict[str, str]:
    return provenance.file_metadata(path)


def test_a_job_refuses_a_revision_whose_commit_moved_under_its_results(offline_cache, tmp_path):
    """The branch moves and the next prefetch records the new commit: a new shard of the same
    (model, revision), a rerun of an existing one (Snakemake has unlinked its old file, kept in
    results/.previous) and the baselines all stop with one paragraph naming the model, the
    revision, both commits and the remedy, before writing; the old files stay as they were."""
    _snapshot(offline_cache, "org/tiny", "step1", OLD, seed=0)
    results = tmp_path / "results"
    marker = results / "prefetch" / "org--tiny" / "step1.json"
    sentence_jobs.prefetch("org/tiny", "step1", str(marker))
    files, bank, concepts = _shard_inputs(tmp_path)
    folder = results / "experts" / "generated" / "tiny" / "step1"
    shard0, shard1 = folder / "shard-0000.arrow", folder / "shard-0001.arrow"
    baselines = results / "baselines" / "tiny" / "step1.parquet"
    _run_shard(files, bank, concepts, shard0, marker, _config())
    _run_baselines(baselines, shard0, _config())
    assert _meta(shard0)["weights_commit"] == _meta(baselines)["weights_commit"] == OLD
    assert _meta(_vectors(shard0))["weights_commit"] == OLD
    before = {p: p.read_bytes() for p in (shard0, _vectors(shard0), baselines)}

    # the branch moves; the next run's prefetch (its marker deleted first) records the new commit
    _snapshot(offline_cache, "org/tiny", "step1", NEW, seed=1)
    marker.unlink()
    sentence_jobs.prefetch("org/tiny", "step1", str(marker))
    assert json.loads(marker.read_text())["commit"] == NEW

    def refused(run) -> str:
        with pytest.raises(provenance.RevisionChangedError) as caught:
            run()
        return str(caught.value)

    # a new shard of the revision, beside old results
    message = refused(lambda: _run_shard(files, bank, concepts, shard1, marker, _config()))
    for part in ("tiny (org/tiny) at revision step1", f"commit {NEW}", f"from commit {OLD}"):
        assert part in message
    assert "accept_revision_change: true" in message and "--forcerun" in message
    assert str(shard0) in message and "\n" not in message  # which files; one paragraph
    assert not shard1.exists()
    # an explicit false is absent
    refused(lambda: _run_shard(files, bank, concepts, shard1, marker, _config(accept=False)))

    # a rerun of existing jobs: Snakemake unlinked their outputs, kept in results/.previous
    kept = results / ".previous" / "2025-01-01T000000Z" / "files"
    for path in before:
        (kept / path.relative_to(results)).parent.mkdir(parents=True, exist_ok=True)
        path.rename(kept / path.relative_to(results))
    assert f"from commit {OLD}" in refused(
        lambda: _run_shard(files, bank, concepts, shard0, marker, _config())
    )
    # the refused job wrote neither output, so the baselines (a reduction of its word vectors)
    # cannot run on them either
    assert not shard0.exists() and not _vectors(shard0).exists() and not baselines.exists()
    for path, data in before.items():
        assert (kept / path.relative_to(results)).read_bytes() == data  # nothing lost


def test_accept_revision_change_recomputes_from_the_new_commit(offline_cache, tmp_path, caplog):
    """With the model's accept_revision_change the same jobs compute from the new commit (a
    warning names the old one); once no file of the revision names the old commit, a run
    without the key goes on too."""
    _snapshot(offline_cache, "org/tiny", "step1", OLD, seed=0)
    results = tmp_path / "results"
    marker = results / "prefetch" / "org--tiny" / "step1.json"
    sentence_jobs.prefetch("org/tiny", "step1", str(marker))
    files, bank, concepts = _shard_inputs(tmp_path)
    shard = results / "experts" / "generated" / "tiny" / "step1" / "shard-0000.arrow"
    baselines = results / "baselines" / "tiny" / "step1.parquet"
    _run_shard(files, bank, concepts, shard, marker, _config())
    _run_baselines(baselines, shard, _config())
    _snapshot(offline_cache, "org/tiny", "step1", NEW, seed=1)
    marker.unlink()
    sentence_jobs.prefetch("org/tiny", "step1", str(marker))

    with caplog.at_level(logging.WARNING, logger="expertalign"):
        _run_shard(files, bank, concepts, shard, marker, _config(accept=True))
    assert any(OLD in r.getMessage() and NEW in r.getMessage() for r in caplog.records)
    assert _meta(shard)["weights_commit"] == NEW
    ap_new = feather.read_table(shard)["ap"].to_pylist()
    _run_baselines(baselines, shard, _config(accept=True))
    assert _meta(baselines)["weights_commit"] == NEW
    # every result of the revision is from the new commit now: the key is no longer needed
    _run_shard(files, bank, concepts, shard, marker, _config())
    assert feather.read_table(shard)["ap"].to_pylist() == ap_new


def test_results_carry_the_package_version_and_the_config_hash(offline_cache, tmp_path):
    """Shards, banks and baseline files record the package version, the checkout's commit and
    the SHA-256 of the config the job received, which the run's effective.yaml reproduces; the
    provenance table shows them."""
    import importlib.metadata
    import subprocess

    import yaml

    from expertalign.effective_config import write_effective_config

    _snapshot(offline_cache, "org/tiny", "step1", OLD, seed=0)
    results = tmp_path / "results"
    marker = results / "prefetch" / "org--tiny" / "step1.json"
    sentence_jobs.prefetch("org/tiny", "step1", str(marker))
    files, shard_bank, concepts = _shard_inputs(tmp_path)
    config = _config()
    bank = results / "negatives" / "generated" / "bank-t.parquet"
    sentence_jobs.negative_bank(files, str(bank), size=20, seed=0, version="t", config=config)
    assert len(pd.read_parquet(bank)) == 20  # still the frame
    shard = results / "experts" / "generated" / "tiny" / "step1" / "shard-0000.arrow"
    _run_shard(files, shard_bank, concepts, shard, marker, config)
    baselines = results / "baselines" / "tiny" / "step1.parquet"
    _run_baselines(baselines, shard, config)

    version = importlib.metadata.version("expertalign")
    effective = write_effective_config(config, results, ["config/config.yaml"])
    config_sha = provenance.config_sha256(yaml.safe_load(effective.read_text()))
    git = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True
    )
    for path in (shard, bank, baselines):
        meta = _meta(path)
        assert meta["expertalign_version"] == version, path
        assert meta["expertalign_config_sha256"] == config_sha, path
        if git.returncode == 0:
            assert meta["expertalign_source_commit"] == git.stdout.strip(), path
    # another config is another hash; key order is not
    assert provenance.config_sha256({**config, "results": "elsewhere"}) != config_sha
    assert provenance.config_sha256(dict(reversed(config.items()))) == config_sha

    table_path = results / "tables" / "provenance.csv"
    analysis_jobs.provenance_table([str(shard)], [str(baselines)], str(table_path))
    table = pd.read_csv(table_path, dtype=str, keep_default_na=False)
    assert set(table["expertalign_version"]) == {version}
    assert set(table["expertalign_config_sha256"]) == {config_sha}


def test_the_version_from_a_source_tree_without_an_install(monkeypatch):
    import importlib.metadata

    import expertalign

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    version = provenance.package_version()
    assert version == f"{expertalign.__version__} (source tree, not installed)"
    assert provenance.run_metadata(None)["expertalign_version"] == version
    assert provenance.run_metadata(None)["expertalign_config_sha256"] == ""  # never guessed
