"""The embedded SmolLM2 model, offline: loads, and finds experts for an obvious concept."""

from __future__ import annotations

import pytest
import torch

from expertalign.ap import average_precision
from expertalign.extract import concept_expertise
from expertalign.models import load_model
from expertalign.units import find_units

CATS = [
    "The cat curled up on the warm windowsill.",
    "My cat chases mice in the garden every night.",
    "A hungry cat meowed loudly for its dinner.",
    "The cat licked its soft fur after the meal.",
    "Our old cat sleeps on the sofa all afternoon.",
    "The kitten and the cat played with a ball of yarn.",
    "A black cat crossed the quiet street.",
    "The cat purred while the child stroked its back.",
    "She bought a new collar for her cat.",
    "The cat jumped onto the kitchen table.",
    "A stray cat waited by the door for milk.",
    "The cat watched the birds from behind the glass.",
]
OTHERS = [
    "The stock market fell sharply on Monday.",
    "He repaired the engine of the old truck.",
    "The committee approved the new budget.",
    "Rain is expected across the region tomorrow.",
    "She studied chemistry at the university.",
    "The bridge was closed for maintenance.",
    "They planted tomatoes in the spring.",
    "The orchestra played a symphony by Brahms.",
    "Tax forms must be submitted by April.",
    "The train to Berlin departs at noon.",
    "He wrote a long letter to the editor.",
    "The volcano erupted after centuries of silence.",
    "A new law regulates the use of drones.",
    "The printer ran out of ink again.",
    "Farmers harvested the wheat in August.",
    "The museum opened a gallery of modern art.",
    "Our team won the football match.",
    "The recipe needs two cups of flour.",
    "Engineers tested the new software release.",
    "The hotel offers a view of the harbour.",
    "The senator gave a speech about taxes.",
    "Ice covered the lake during January.",
    "The laptop battery lasts six hours.",
    "He painted the fence white.",
    "The library extended its opening hours.",
    "A storm damaged several houses.",
    "She plays the violin in a quartet.",
    "The factory produces steel pipes.",
    "Prices of coffee rose this year.",
    "The map showed the mountain trails.",
]


@pytest.fixture(scope="module")
def embedded(monkeypatch_module):
    monkeypatch_module.setenv("HF_HUB_OFFLINE", "1")
    lm = load_model("embedded")
    return lm, find_units(lm.model)


def test_embedded_model_loads_offline_with_llama_units(embedded):
    lm, layout = embedded
    assert lm.model.config.model_type == "llama"
    assert layout.n_layers == 30
    assert layout.n_units == 155520


def test_obvious_concept_has_experts_and_shuffled_labels_have_few(embedded):
    lm, layout = embedded
    ap = torch.from_numpy(concept_expertise(lm, layout, CATS, OTHERS))
    experts = int((ap > 0.9).sum())
    assert experts > 100, f"only {experts} units with AP > 0.9 for 'cat'"
    # the same sentences with shuffled labels: AP hovers around the positive fraction
    from expertalign.responses import max_pooled_responses

    responses = max_pooled_responses(lm.model, lm.tokenizer, CATS + OTHERS, layout)
    generator = torch.Generator().manual_seed(0)
    labels = torch.zeros(len(CATS) + len(OTHERS), dtype=torch.bool)
    labels[torch.randperm(len(labels), generator=generator)[: len(CATS)]] = True
    shuffled = average_precision(responses.T, labels)
    shuffled_experts = int((shuffled > 0.9).sum())
    assert shuffled_experts < experts / 20, (shuffled_experts, experts)
    # and the real labels reproduce the one-concept path exactly
    real = torch.zeros_like(labels)
    real[: len(CATS)] = True
    torch.testing.assert_close(average_precision(responses.T, real).float(), ap)


def test_the_gguf_converts_into_an_empty_cache(tmp_path):
    """A fresh machine's first use: the GGUF is de-quantised into a new safetensors folder (the
    other tests find the converted folder already in the cache) holding the weights the loaded
    model has."""
    from safetensors.torch import load_file

    from expertalign.models import embedded_model_dir

    folder = embedded_model_dir(tmp_path)
    assert folder.parent == tmp_path and (folder / "config.json").is_file()
    weights = load_file(folder / "model.safetensors")
    loaded = load_model("embedded").model.state_dict()
    assert weights.keys() <= loaded.keys()
    for name, tensor in weights.items():
        assert torch.equal(tensor, loaded[name]), name
    assert load_model(str(folder)).model.config.model_type == "llama"
