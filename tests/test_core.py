"""Core engine: units, masked max-pooling, exact AP, similarity, storage, loading errors."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score
from tiny_models import tiny_model, word_tokenizer

import expertalign
from expertalign.ap import (
    EmptyClassError,
    NonFiniteResponseError,
    SortedNegatives,
    average_precision,
    expert_mask,
)
from expertalign.models import ModelNotFoundError, load_model, resolve_dtype
from expertalign.responses import max_pooled_responses, token_batches
from expertalign.similarity import pairwise_similarity, similarity_frame
from expertalign.storage import expertise_table, read_expertise, write_table_atomic
from expertalign.units import UnitSpec, UnknownArchitectureError, find_units

SENTENCES = [
    "the cat sat on the mat",
    "dogs barked loudly at the postman this morning and the cat was purring",
    "red car",
    "she drove the blue car fast on the road",
    "it",
]

EXPECTED_UNITS = {
    # per layer: sum of the recorded modules' output widths
    "gpt_neox": ({"query_key_value": 48, "dense": 16, "dense_h_to_4h": 64, "dense_4h_to_h": 16}, 2),
    "gpt2": ({"c_attn": 48, "c_proj": 16 + 16, "c_fc": 64}, 3),
    "llama": (
        {
            "q_proj": 16,
            "k_proj": 8,
            "v_proj": 8,
            "o_proj": 16,
            "gate_proj": 40,
            "up_proj": 40,
            "down_proj": 16,
        },
        2,
    ),
}


@pytest.mark.parametrize("arch", sorted(EXPECTED_UNITS))
def test_units_found_per_layer(arch):
    model = tiny_model(arch)
    layout = find_units(model)
    widths, n_layers = EXPECTED_UNITS[arch]
    assert layout.n_layers == n_layers
    per_layer = sum(widths.values())
    assert layout.n_units == per_layer * n_layers
    table = layout.table()
    assert table.num_rows == layout.n_units
    assert table.column("unit").to_pylist() == list(range(layout.n_units))
    counts = table.group_by("layer").aggregate([("unit", "count")]).to_pydict()
    assert sorted(counts["unit_count"]) == [per_layer] * n_layers
    names = {m.name for m in layout.modules}
    assert not any("embed" in n or "lm_head" in n or "norm" in n or "wte" in n for n in names)
    kinds = set(table.column("kind").to_pylist())
    assert kinds == {"attention", "mlp"}


def test_gpt_neox_module_names_are_the_papers():
    layout = find_units(tiny_model("gpt_neox"))
    suffixes = [m.name.split("layers.0.", 1)[1] for m in layout.modules if m.layer == 0]
    assert suffixes == [
        "attention.query_key_value",
        "attention.dense",
        "mlp.dense_h_to_4h",
        "mlp.dense_4h_to_h",
    ]


def test_unknown_architecture_is_a_clear_error():
    model = tiny_model("gpt2")
    model.config.model_type = "mystery"
    with pytest.raises(UnknownArchitectureError, match="mystery.*register_units"):
        find_units(model)
    # ... and registering a spec fixes it
    layout = find_units(model, UnitSpec(layers="h", modules={"mlp.c_fc": "mlp"}))
    assert layout.n_units == 64 * 3


def _naive_responses(model, tokenizer, sentences, layout):
    """One sentence at a time, no padding: record full outputs and max over non-special tokens."""
    modules = dict(model.named_modules())
    columns = []
    for sentence in sentences:
        enc = tokenizer(sentence, return_special_tokens_mask=True, return_tensors="pt")
        keep = ~enc["special_tokens_mask"][0].bool()
        captured = {}
        handles = [
            modules[m.name].register_forward_hook(
                lambda _m, _i, out, name=m.name, store=captured: store.__setitem__(
                    name, out.detach()
                )
            )
            for m in layout.modules
        ]
        try:
            with torch.no_grad():
                model(input_ids=enc["input_ids"])
        finally:
            for h in handles:
                h.remove()
        columns.append(torch.cat([captured[m.name][0][keep].amax(dim=0) for m in layout.modules]))
    return torch.stack(columns, dim=1)


@pytest.mark.parametrize("arch", sorted(EXPECTED_UNITS))
@pytest.mark.parametrize("bos", [False, True])
def test_masked_pooling_equals_naive_and_padding_side_is_irrelevant(arch, bos):
    model, tokenizer = tiny_model(arch), word_tokenizer(bos=bos)
    layout = find_units(model)
    naive = _naive_responses(model, tokenizer, SENTENCES, layout)
    right = max_pooled_responses(model, tokenizer, SENTENCES, layout, padding_side="right")
    left = max_pooled_responses(model, tokenizer, SENTENCES, layout, padding_side="left")
    # a tiny token budget forces many batches of mixed lengths
    small = max_pooled_responses(model, tokenizer, SENTENCES, layout, max_tokens=20)
    assert right.shape == (layout.n_units, len(SENTENCES))
    torch.testing.assert_close(right, naive, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(left, naive, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(small, naive, atol=1e-5, rtol=1e-5)


def test_hooks_are_removed_even_when_forward_fails():
    model, tokenizer = tiny_model("gpt2"), word_tokenizer()
    layout = find_units(model)
    with pytest.raises(ValueError, match="no sentences"):
        max_pooled_responses(model, tokenizer, [], layout)

    class Broken:  # a token id beyond the vocabulary makes the embedding lookup fail
        pad_token_id = 0

        def __call__(self, sentences, **kw):
            return {
                "input_ids": [[999] for _ in sentences],
                "special_tokens_mask": [[0] for _ in sentences],
            }

    with pytest.raises(IndexError):
        max_pooled_responses(model, Broken(), ["x"], layout)
    assert all(not m._forward_hooks for m in model.modules())


def test_token_batches_respect_the_budget_and_cover_everything():
    lengths = [5, 1, 9, 3, 3, 7, 2]
    batches = token_batches(lengths, max_tokens=10)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 10


# ---------------------------------------------------------------- average precision


def _sklearn_ap(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.array([average_precision_score(labels, scores[:, u]) for u in range(scores.shape[1])])


def test_ap_fixture_from_the_issue():
    X = np.random.RandomState(1234).rand(10, 6)
    labels = torch.tensor([1, 1, 0, 1, 0, 0], dtype=torch.bool)
    ap = expertalign.average_precision(torch.tensor(X.T), labels).numpy()
    expected = [0.7222, 0.5556, 1, 1, 1, 0.6333, 0.9167, 0.7, 0.8056, 0.7222]
    np.testing.assert_allclose(np.round(ap, 4), expected, atol=1e-12)


# constant seeds per case (not hash(case), which changes with every process), so a failure
# reproduces
AP_CASES = {"random": 1, "tied": 2, "all_equal": 3, "single_positive": 4, "float32": 5}


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("case", sorted(AP_CASES))
def test_ap_equals_sklearn(case, backend):
    rng = np.random.default_rng(AP_CASES[case])
    n, units = 257, 33
    labels = rng.random(n) < 0.3
    if case == "random":
        scores = rng.standard_normal((n, units))
    elif case == "tied":
        scores = rng.integers(0, 3, (n, units)).astype(np.float64)
    elif case == "all_equal":
        scores = np.full((n, units), 0.25)
    elif case == "single_positive":
        labels = np.zeros(n, dtype=bool)
        labels[17] = True
        scores = rng.integers(0, 5, (n, units)).astype(np.float64)
    else:
        scores = rng.standard_normal((n, units)).astype(np.float32).round(1)
    ours = average_precision(
        torch.from_numpy(scores), torch.from_numpy(labels), backend=backend, chunk_elements=1000
    )
    assert ours.dtype == torch.float64
    np.testing.assert_allclose(ours.numpy(), _sklearn_ap(scores, labels), rtol=0, atol=1e-9)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_bank_with_excluded_rows_equals_ap_on_the_remaining_rows(backend):
    rng = np.random.default_rng(3)
    negatives = torch.from_numpy(rng.integers(0, 6, (120, 40)).astype(np.float32))
    positives = torch.from_numpy(rng.integers(2, 8, (30, 40)).astype(np.float32))
    bank = SortedNegatives(negatives, backend=backend)
    excluded = [0, 3, 3, 77, 119]
    keep = np.setdiff1d(np.arange(120), excluded)
    scores = np.concatenate([positives.numpy(), negatives.numpy()[keep]])
    labels = np.r_[np.ones(30, bool), np.zeros(len(keep), bool)]
    np.testing.assert_allclose(
        bank.average_precision(positives, exclude=excluded).numpy(),
        _sklearn_ap(scores, labels),
        atol=1e-9,
        rtol=0,
    )


def test_experts_are_strictly_above_tau():
    ap = torch.tensor([0.5, 0.50001, 0.9, 0.2])
    assert expert_mask(ap, 0.5).tolist() == [False, True, True, False]


def test_ap_errors_are_clear():
    scores = torch.rand(6, 3)
    with pytest.raises(EmptyClassError, match="positive"):
        average_precision(scores, torch.zeros(6, dtype=torch.bool))
    with pytest.raises(EmptyClassError, match="negative"):
        average_precision(scores, torch.ones(6, dtype=torch.bool))
    scores[2, 1] = float("nan")
    with pytest.raises(NonFiniteResponseError, match="sentence 2, unit 1"):
        average_precision(scores, torch.tensor([1, 0, 1, 0, 1, 0], dtype=torch.bool))
    scores[2, 1] = float("inf")
    with pytest.raises(NonFiniteResponseError):
        average_precision(scores, torch.tensor([1, 0, 1, 0, 1, 0], dtype=torch.bool))
    with pytest.raises(ValueError, match="length"):
        average_precision(torch.rand(6, 3), torch.ones(5, dtype=torch.bool))


# ---------------------------------------------------------------- similarity and storage


def test_pairwise_similarity_matches_sets_and_numpy():
    rng = np.random.default_rng(0)
    ap = rng.random((6, 1000)).astype(np.float32)
    ap[5] = 0.1  # no experts at any tau: Jaccard with anyone is 0
    ap[4] = ap[3]  # identical sets: Jaccard 1
    sim = pairwise_similarity(ap, taus=[0.5, 0.9], chunk_units=128)
    for tau in (0.5, 0.9):
        sets = [set(np.flatnonzero(row > tau)) for row in ap]
        for i in range(6):
            assert sim.sizes[tau][i] == len(sets[i])
            for j in range(6):
                union = len(sets[i] | sets[j])
                expected = len(sets[i] & sets[j]) / union if union else 0.0
                assert math.isclose(sim.jaccard[tau][i, j], expected, abs_tol=1e-12)
        assert sim.jaccard[tau][3, 4] == 1.0
        assert sim.jaccard[tau][5, 0] == 0.0
    a = ap.astype(np.float64)
    cosine = (a @ a.T) / np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(a, axis=1))
    np.testing.assert_allclose(sim.cosine_ap, cosine, atol=1e-5)
    frame = similarity_frame(sim)
    assert len(frame) == 15 * 4  # pairs x (2 taus + 2 cosines)


def test_expertise_files_round_trip_and_write_atomically(tmp_path):
    ap = np.random.default_rng(1).random((3, 50)).astype(np.float32)
    table = expertise_table(
        ["a", "b", "c"], ap, n_pos=[4] * 3, n_neg=[10] * 3, metadata={"model": "m"}
    )
    path = tmp_path / "x" / "shard-0000.arrow"
    write_table_atomic(table, path)
    concepts, back = read_expertise([path])
    assert concepts == ["a", "b", "c"]
    np.testing.assert_array_equal(back, ap)
    import polars as pl

    assert pl.read_ipc(path).shape == (3, 4)

    with pytest.raises(ValueError):
        write_table_atomic(table, tmp_path / "bad.unknown")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]  # no temp file left behind


@pytest.mark.parametrize(
    "suffix, writer",
    [(".arrow", "feather.write_feather"), (".parquet", "pq.write_table"), (".csv", "to_csv")],
)
@pytest.mark.parametrize("error", [OSError("No space left on device"), KeyboardInterrupt()])
def test_a_write_failing_midway_leaves_the_old_file_intact(
    tmp_path, monkeypatch, suffix, writer, error
):
    """A write that dies after writing part of the file (disk full, a killed job) onto an existing
    shard: the old file is byte for byte what it was and no temporary file is left."""
    import pandas as pd

    from expertalign import storage

    old_ap = np.random.default_rng(2).random((3, 64)).astype(np.float32)
    path = tmp_path / f"shard-0000{suffix}"
    table = expertise_table(["a", "b", "c"], old_ap, n_pos=[4] * 3, n_neg=[10] * 3)
    if suffix == ".csv":
        table = table.select(["concept", "n_positives"])
    write_table_atomic(table, path)
    before = path.read_bytes()

    def half_then_fail(*args, **kwargs):
        target = next(a for a in args if isinstance(a, (str, os.PathLike)))
        with open(target, "wb") as handle:  # what a real writer leaves: a truncated file
            handle.write(before[: len(before) // 2])
        raise error

    if writer == "to_csv":
        monkeypatch.setattr(
            pd.DataFrame, "to_csv", lambda self, target, **kw: half_then_fail(target)
        )
    else:
        module, name = writer.split(".")
        monkeypatch.setattr(getattr(storage, module), name, half_then_fail)
    new = expertise_table(["x", "y", "z"], old_ap + 1, n_pos=[4] * 3, n_neg=[10] * 3)
    if suffix == ".csv":
        new = new.select(["concept", "n_positives"])
    with pytest.raises(type(error)):
        write_table_atomic(new, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


# ---------------------------------------------------------------- loading


def test_float16_is_refused_and_auto_is_fp32_on_cpu():
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    with pytest.raises(ValueError, match="GPT-NeoX"):
        resolve_dtype("float16", torch.device("cuda"))


def test_sampling_dtype_is_bf16_only_where_it_is_native(monkeypatch):
    from expertalign import models

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert models.sampling_dtype("auto", "cpu") == "float32"
    assert models.sampling_dtype("auto", "cuda") == "bfloat16"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert models.sampling_dtype("auto", "cpu") == "bfloat16"
    assert models.sampling_dtype("float32", "cpu") == "float32"
    with pytest.raises(ValueError, match="not supported"):
        models.sampling_dtype("float16", "cpu")


def test_missing_model_offline_says_how_to_prefetch(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads HF_HUB_OFFLINE when it is imported (earlier in this session): set
    # its constant too, or the load tries the network and waits out its timeouts (about 45 s)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match="pre-fetch.*--revision step512"):
        load_model("EleutherAI/pythia-70m", revision="step512")


def test_random_init_is_seeded_and_differs_from_trained(tmp_path):
    model = tiny_model("gpt_neox")
    model.save_pretrained(tmp_path)
    word_tokenizer().save_pretrained(tmp_path)
    trained = load_model(str(tmp_path))
    r1 = load_model(str(tmp_path), random_init=True, seed=1)
    r2 = load_model(str(tmp_path), random_init=True, seed=1)
    r3 = load_model(str(tmp_path), random_init=True, seed=2)
    w = lambda lm: lm.model.gpt_neox.layers[0].mlp.dense_h_to_4h.weight  # noqa: E731
    assert torch.equal(w(r1), w(r2))
    assert not torch.equal(w(r1), w(r3))
    assert not torch.equal(w(r1), w(trained))
    assert find_units(r1.model).n_units == find_units(trained.model).n_units
