"""Bad inputs to average precision, expert extraction, unit specs and model loading are named."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import average_precision_score
from tiny_models import tiny_model, word_tokenizer
from workflow_helpers import _expect


def test_average_precision_takes_numpy():
    import expertalign

    rng = np.random.default_rng(0)
    scores = rng.normal(size=(30, 5)).astype(np.float32)
    labels = np.arange(30) < 10
    ap = expertalign.average_precision(scores, labels)
    assert isinstance(ap, np.ndarray) and ap.dtype == np.float64
    expected = [average_precision_score(labels, scores[:, u]) for u in range(5)]
    np.testing.assert_allclose(ap, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        expertalign.average_precision(scores[::-1], labels[::-1]), expected, rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        expertalign.average_precision(scores.tolist(), labels.astype(int)),
        expected,
        rtol=0,
        atol=1e-12,
    )


def test_average_precision_says_what_it_expects():
    import expertalign
    from expertalign.ap import EmptyClassError

    _expect(
        lambda: expertalign.average_precision(np.array([["a"], ["b"]]), [True, False]),
        TypeError,
        "scores must be numbers",
    )
    _expect(
        lambda: expertalign.average_precision(np.zeros((2, 1)), [0, 2]),
        ValueError,
        "labels must be bool or 0/1",
    )
    _expect(
        lambda: expertalign.average_precision(np.zeros((2, 1)), [True, True]),
        EmptyClassError,
        "negative set is empty",
    )


def test_nan_in_a_shard_names_its_unit_and_sentence():
    """A NaN of one unit for one sentence is reported as that unit and that sentence."""
    from expertalign.ap import NonFiniteResponseError
    from expertalign.extract import ConceptSentences, shard_expertise
    from expertalign.models import LoadedModel
    from expertalign.units import find_units

    model, tokenizer = tiny_model("gpt2"), word_tokenizer()
    layout = find_units(model)
    target = next(m for m in layout.modules if m.name == "transformer.h.1.mlp.c_fc")
    poisoned = tokenizer.convert_tokens_to_ids("postman")
    seen: dict[str, torch.Tensor] = {}

    def remember(_module, args, kwargs):
        seen["ids"] = kwargs["input_ids"]

    def poison(_module, _inputs, output):
        rows = (seen["ids"] == poisoned).any(dim=1)
        output[rows, :, 3] = float("nan")

    handles = [
        model.base_model.register_forward_pre_hook(remember, with_kwargs=True),
        dict(model.named_modules())[target.name].register_forward_hook(poison),
    ]
    bank = ["a red car drove fast", "the chair is blue", "it was green", "they sat"]
    concept = ConceptSentences("dog", ["the dog sat on the mat", "the dog barked at the postman"])
    try:
        message = _expect(
            lambda: shard_expertise(
                LoadedModel(model, tokenizer, "tiny", None),
                layout,
                [concept],
                [f"b{i}" for i in range(4)],
                bank,
                4,
            ),
            NonFiniteResponseError,
            f"unit {target.offset + 3} (transformer.h.1.mlp.c_fc feature 3)",
            "for sentence 5 ('the dog barked at the postman')",
        )
        assert "first at unit" in message
    finally:
        for handle in handles:
            handle.remove()


def test_misspelt_unit_spec_suffix_is_refused():
    from expertalign.units import UnitSpec, UnknownArchitectureError, find_units

    spec = UnitSpec(layers="h", modules={"attn.c_attn": "attention", "mlp.c_fcc": "mlp"})
    _expect(
        lambda: find_units(tiny_model("gpt2"), spec),
        UnknownArchitectureError,
        "['mlp.c_fcc'] match no module",
        "'mlp.c_fc'",
    )


def test_unknown_architecture_is_named():
    from expertalign.units import UnknownArchitectureError, find_units

    model = torch.nn.Linear(2, 2)
    _expect(lambda: find_units(model), UnknownArchitectureError, "no unit spec for model_type")


def test_model_folder_without_tokenizer_is_refused_before_loading(tmp_path):
    from expertalign.models import ModelNotFoundError, load_model

    tiny_model("gpt2").save_pretrained(tmp_path / "m")
    _expect(
        lambda: load_model(str(tmp_path / "m")),
        ModelNotFoundError,
        f"{tmp_path / 'm'} has no tokenizer",
    )
    _expect(
        lambda: load_model(str(tmp_path / "nothing")),
        ModelNotFoundError,
        f"{tmp_path / 'nothing'} does not exist",
    )


def test_model_folder_with_its_tokenizer_loads(tmp_path):
    from expertalign.models import load_model

    tiny_model("gpt2").save_pretrained(tmp_path / "m")
    word_tokenizer().save_pretrained(tmp_path / "m")
    lm = load_model(str(tmp_path / "m"))
    assert lm.tokenizer("the cat sat", add_special_tokens=False)["input_ids"]


def test_float16_is_refused_with_a_reason():
    from expertalign.models import resolve_dtype

    _expect(lambda: resolve_dtype("float16", torch.device("cpu")), ValueError, "overflow")


def test_prefetch_fetches_only_what_loading_needs():
    from huggingface_hub.utils import filter_repo_objects

    from expertalign.cli import PREFETCH_IGNORE, PREFETCH_PATTERNS

    repo = [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "model-00001-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.json",
        "merges.txt",
        "tokenizer.model",
        "chat_template.jinja",
        "modeling_custom.py",
        "tokenizer_custom.py",
        "configuration_x.py",
        "pytorch_model.bin",
        "flax_model.msgpack",
        "README.md",
        ".gitattributes",
    ]
    chosen = set(
        filter_repo_objects(repo, allow_patterns=PREFETCH_PATTERNS, ignore_patterns=PREFETCH_IGNORE)
    )
    assert not {f for f in chosen if f.endswith(".py")}
    assert chosen == {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "model-00001-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "vocab.json",
        "merges.txt",
        "tokenizer.model",
        "chat_template.jinja",
    }
