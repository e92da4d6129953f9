"""Site setup that fails early and clearly: gated models, a prefetch that checks what arrived and
covers every model a config loads, and GPU jobs on a node without a visible GPU."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import httpx2
import pytest
import torch
import yaml
from huggingface_hub.errors import GatedRepoError
from huggingface_hub.utils import hf_raise_for_status
from tiny_models import TINY_LLAMA, tiny_model, word_tokenizer
from workflow_helpers import REPO, snakemake

from expertalign import cli, fetch, paths
from expertalign.config import load_config
from expertalign.jobs import sentences as sentence_jobs
from expertalign.jobs.runtime import NoGPUError, gpus_requested, require_gpu
from expertalign.models import (
    ModelAccessError,
    ModelNotFoundError,
    hub_access_error,
    load_model,
)

GATED = "mistralai/Mistral-7B-Instruct-v0.2"
TINY = "tests/data/tiny_config.yaml"


# --- gated models -------------------------------------------------------------------------


def _hub_error(status: int, headers: dict[str, str], repo: str = GATED) -> Exception:
    """What huggingface_hub itself raises for the Hub's answer (its hf_raise_for_status)."""
    url = f"https://huggingface.co/{repo}/resolve/main/config.json"
    response = httpx2.Response(status, request=httpx2.Request("GET", url), headers=headers)
    try:
        hf_raise_for_status(response)
    except Exception as err:  # noqa: BLE001 - the point is which type it is
        return err
    raise AssertionError("hf_raise_for_status accepted an error response")


GATED_401 = {
    "X-Error-Code": "GatedRepo",
    "X-Error-Message": f"Access to model {GATED} is "
    "restricted. You must have access to it and be authenticated to access it.",
}


@pytest.mark.parametrize("status", [401, 403])
def test_prefetch_of_a_gated_model_says_how_to_log_in(status, monkeypatch, tmp_path, capsys):
    """The Hub cannot be reached from here, so huggingface_hub's snapshot_download is patched to
    raise what huggingface_hub's own hf_raise_for_status makes of the Hub's answer for a gated
    repo (HTTP 401 without a token, 403 with a token whose account was not granted access, both
    with `X-Error-Code: GatedRepo`): the real GatedRepoError, with its real message."""
    error = _hub_error(status, {**GATED_401} if status == 401 else {"X-Error-Code": "GatedRepo"})
    assert type(error) is GatedRepoError

    def refuse(*args, **kwargs):
        raise error

    monkeypatch.setattr("huggingface_hub.snapshot_download", refuse)
    marker = tmp_path / "prefetch" / "m.json"
    with pytest.raises(ModelAccessError) as caught:
        sentence_jobs.prefetch(GATED, "main", str(marker))
    message = str(caught.value)
    for words in (
        "is gated",
        "hf auth login",
        "HF_TOKEN",
        f"https://huggingface.co/{GATED}",
        "accept its terms",
        "no valid token" if status == 401 else "not been granted",
    ):
        assert words in message, (words, message)
    assert not marker.exists() and not list(marker.parent.glob("*"))

    # The command line goes on with the other models and names the failure without a traceback.
    other = tmp_path / "other-model"
    tiny_model("gpt2").save_pretrained(other)
    word_tokenizer().save_pretrained(other)
    code = None
    try:
        cli.main(["prefetch", GATED, str(other)])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    assert code == 1
    assert f"fetched {other}@main: model.safetensors" in out
    assert f"FAILED {GATED}@main" in err and "hf auth login" in err and "Traceback" not in err


def test_loading_a_gated_model_says_how_to_log_in(monkeypatch):
    """transformers wraps the Hub's GatedRepoError in an OSError (transformers.utils.hub); the
    tokenizer loader is patched to raise that chain, as the Hub cannot be reached from here."""

    def gated(*args, **kwargs):
        try:
            raise _hub_error(401, GATED_401)
        except GatedRepoError as err:
            raise OSError("You are trying to access a gated repo.") from err

    monkeypatch.setattr("transformers.AutoTokenizer.from_pretrained", gated)
    with pytest.raises(ModelAccessError, match="is gated.*hf auth login"):
        load_model(GATED, dtype="float32", device="cpu")


def test_other_hub_refusals_are_explained_and_other_errors_left_alone():
    private = hub_access_error(_hub_error(401, {}), "org/private-model")
    assert isinstance(private, ModelAccessError)
    assert "401" in str(private) and "hf auth login" in str(private)
    forbidden = hub_access_error(_hub_error(403, {"X-Error-Message": "no"}), "org/m", "step1")
    assert "org/m@step1" in str(forbidden) and "403" in str(forbidden)
    assert hub_access_error(OSError("disk full"), "org/m") is None
    assert hub_access_error(_hub_error(500, {}), "org/m") is None


# --- prefetch checks what arrived ---------------------------------------------------------


def _cached_snapshot(cache: Path, repo: str, revision: str, files: dict[str, object]) -> Path:
    """A Hugging Face cache entry laid out as huggingface_hub writes it (refs -> snapshot)."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    storage = cache / ("models--" + repo.replace("/", "--"))
    (storage / "refs").mkdir(parents=True, exist_ok=True)
    (storage / "refs" / revision).write_text(commit)
    folder = storage / "snapshots" / commit
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if callable(content):
            content(folder)
        else:
            (folder / name).write_bytes(content)
    return folder


def _config_and_tokenizer(folder: Path) -> None:
    tiny_model("gpt2").config.save_pretrained(folder)
    word_tokenizer().save_pretrained(folder)


def test_prefetch_without_weights_names_the_model_and_writes_no_marker(offline_cache, tmp_path):
    _cached_snapshot(offline_cache, "org/tiny", "step512", {"config": _config_and_tokenizer})
    marker = tmp_path / "marker.json"
    with pytest.raises(ModelNotFoundError) as caught:
        sentence_jobs.prefetch("org/tiny", "step512", str(marker))
    message = str(caught.value)
    assert "org/tiny@step512" in message and "lacks weights" in message, message
    assert "https://huggingface.co/org/tiny/tree/step512" in message
    assert not marker.exists()


def test_prefetch_without_network_or_cache_says_where_to_run_it(offline_cache):
    with pytest.raises(
        ModelNotFoundError,
        match=r"org/absent@step9: the Hub cannot be reached "
        r"and the model is not in the cache .*login node",
    ):
        fetch.prefetch([("org/absent", "step9")])


def test_prefetch_names_a_missing_shard(offline_cache):
    index = {
        "metadata": {},
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        },
    }
    _cached_snapshot(
        offline_cache,
        "org/sharded",
        "main",
        {
            "config": _config_and_tokenizer,
            "model.safetensors.index.json": json.dumps(index).encode(),
            "model-00001-of-00002.safetensors": b"x" * 16,
        },
    )
    with pytest.raises(
        ModelNotFoundError,
        match=r"org/sharded@main.*model-00002-of-00002"
        r"\.safetensors \(listed in model\.safetensors\.index\.json\)",
    ):
        fetch.prefetch([("org/sharded", None)])


def test_prefetch_accepts_bin_weights_and_writes_a_loadable_marker(offline_cache, tmp_path):
    """A revision with only pytorch_model.bin (older checkpoints) passes, and what the marker
    points at loads."""
    model = tiny_model("gpt2")
    _cached_snapshot(
        offline_cache,
        "org/old",
        "step1",
        {
            "config": _config_and_tokenizer,
            "weights": lambda folder: torch.save(model.state_dict(), folder / "pytorch_model.bin"),
        },
    )
    marker = tmp_path / "m.json"
    sentence_jobs.prefetch("org/old", "step1", str(marker))
    written = json.loads(marker.read_text())
    assert (written["source"], written["revision"], written["weights"]) == (
        "org/old",
        "step1",
        ["pytorch_model.bin"],
    )
    lm = load_model(written["folder"], dtype="float32", device="cpu")
    assert torch.equal(lm.model.lm_head.weight, model.lm_head.weight)


def test_prefetch_checks_local_folders_too(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    _config_and_tokenizer(folder)
    with pytest.raises(ModelNotFoundError, match="lacks weights"):
        fetch.prefetch([(str(folder), None)])
    tiny_model("gpt2").save_pretrained(folder)
    (fetched,) = fetch.prefetch([(str(folder), None)])
    assert fetched.weights == ("model.safetensors",)


def test_cli_prefetch_covers_every_model_of_the_paper_config():
    pairs = paths.config_models(load_config("config/paper.yaml"))
    assert ("gpt2", "main") in pairs  # the pilot's model (pilot.model: gpt2)
    assert (GATED, "main") in pairs  # the generator
    assert ("EleutherAI/pythia-12b", "step1") in pairs
    # 3 Pythia sizes x 7 checkpoints and step0 (the random-init models: Pythia's own initial
    # weights), generator, pilot
    assert ("EleutherAI/pythia-12b", "step0") in pairs
    assert len(pairs) == 26


def test_cli_and_workflow_prefetch_the_same_models(tmp_path):
    config = yaml.safe_load((REPO / TINY).read_text(encoding="utf-8"))
    config["pilot"] = {
        **config.get("pilot", {}),
        "enabled": True,
        "model": "gpt2",
        "men_pairs": None,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    pairs = paths.config_models(load_config(str(path)))
    # the tiny config's model folder, its generator (the embedded model), the pilot's model
    assert pairs == [(TINY_LLAMA, "final"), ("embedded", "final"), ("gpt2", "main")]
    # what `expertalign prefetch --configfile` asks the hub for: the default branch for each
    assert [paths.hub_revision(r) for _, r in pairs] == [None, None, None]
    result = snakemake(
        "-n",
        "--nolock",
        "--configfile",
        str(path),
        "--config",
        f"results={tmp_path}/results",
        "--quiet",
        "rules",
    )
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.M))
    assert int(counts["prefetch"]) == len(pairs), result.stdout


# --- GPU jobs without a GPU ---------------------------------------------------------------


def test_gpus_requested_reads_gpu_and_gres():
    from snakemake.iocontainers import Namedlist

    assert gpus_requested(Namedlist(fromdict={"gpu": 1, "mem_mb": 4000})) == 1
    assert gpus_requested(Namedlist(fromdict={"mem_mb": 4000})) == 0
    assert gpus_requested({"gres": "gpu:a100:2"}) == 2
    assert gpus_requested({"gres": "gpu:1"}) == 1
    assert gpus_requested({"gres": "tmpfs:10G"}) == 0
    assert gpus_requested({"gpu": "0", "gres": ""}) == 0


def test_a_gpu_job_without_a_visible_gpu_fails_at_once(monkeypatch):
    require_gpu(0, "experts")  # a CPU job: nothing to check
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.delenv("EXPERTALIGN_ALLOW_NO_GPU", raising=False)
    if torch.cuda.is_available():
        require_gpu(1, "experts")
        return
    with pytest.raises(NoGPUError) as caught:
        require_gpu(1, "experts")
    message = str(caught.value)
    for words in (
        "rule experts",
        "1 GPU",
        f"node {socket.gethostname()}",
        "CUDA_VISIBLE_DEVICES='0'",
        "float32",
        "EXPERTALIGN_ALLOW_NO_GPU=1",
    ):
        assert words in message, (words, message)
    monkeypatch.setenv("EXPERTALIGN_ALLOW_NO_GPU", "1")
    require_gpu(1, "experts")  # on purpose (a test cluster's fake GPUs): a warning only


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_workflow_gpu_rule_stops_on_a_node_without_gpu(tmp_path):
    """The real workflow: generate_sentences asked for a GPU (as the SLURM profile does) on this
    CPU-only machine fails in its script, and Snakemake's message shows why."""
    results = tmp_path / "results"
    target = results / "sentences" / "generated" / "frost.parquet"
    result = snakemake(
        str(target),
        "--nolock",
        "--cores",
        "1",
        "--show-failed-logs",
        "--configfile",
        TINY,
        "--config",
        f"results={results}",
        "--set-resources",
        "generate_sentences:gpu=1",
        check=False,
        timeout=600,
        env={"EXPERTALIGN_ALLOW_NO_GPU": "0"},
    )
    assert result.returncode != 0, result.stdout
    logs = sorted((results / "logs" / "generate_sentences").rglob("*.log"))
    assert len(logs) == 1, (logs, result.stdout[-3000:])
    log = logs[0].read_text()
    assert "NoGPUError" in log and "rule generate_sentences asked for 1 GPU(s)" in log, log
    assert f"node {socket.gethostname()}" in result.stdout, result.stdout[-3000:]
    assert not target.exists()
