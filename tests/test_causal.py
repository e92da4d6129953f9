"""Causal check of the experts (expertalign.causal): a planted effect, hooks, split and nulls.

The planted model is a tiny GPT-NeoX whose layer-1 MLP has four units that fire on the token
"purring" and then write the logit of "cat": ablating them must raise the loss of "cat" in
held-out "purring cat" sentences, forcing them must make generations say "cat", and random units
matched per module must do neither.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import tiny_model, word_tokenizer

from expertalign import causal
from expertalign.responses import max_pooled_responses
from expertalign.sentence_filters import dedupe_key
from expertalign.units import find_units

POSITIVES = [
    "the purring cat sat on the mat",
    "a purring cat is on the chair",
    "the purring cat was on the table",
    "she and the purring cat sat",
    "he was at the purring cat",
    "the purring cat drove the red car",
    "a purring cat sat on the mat this morning",
    "the blue chair and the purring cat",
    "they were at the purring cat",
    "it is a purring cat",
    "the purring cat is green",
    "a purring cat and a dog",
]
NEGATIVES = [
    "the dog barked loudly at the postman",
    "dogs were on the road this morning",
    "she drove the blue car fast",
    "the red chair is on the mat",
    "he sat at the green table",
    "they drove to the road and it was fast",
    "a dog sat on the chair",
    "the car is red and blue",
]
PROMPTS = ["the dog", "she drove the", "a red car was", "they sat on the"]
PLANTED = (5, 17, 33, 50)  # local units of layer 1's mlp.dense_h_to_4h


def _zero_mean_orthonormal(n: int, dim: int, seed: int) -> torch.Tensor:
    vectors = torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))
    vectors -= vectors.mean(dim=1, keepdim=True)  # LayerNorm keeps a zero-mean direction
    q, _ = torch.linalg.qr(vectors.T)
    return q.T - q.T.mean(dim=1, keepdim=True)


def planted_model():
    """GPT-NeoX (parallel residual: each MLP reads its layer's input at the same position) with
    the cue "purring" on a private direction p, four layer-1 MLP units reading p and writing a
    direction d, and d read out only by the "cat" row of the LM head."""
    model, tokenizer = tiny_model("gpt_neox"), word_tokenizer()
    vocab = tokenizer.get_vocab()
    p, d = _zero_mean_orthonormal(2, model.config.hidden_size, seed=1)
    with torch.no_grad():
        embed = model.get_input_embeddings().weight
        embed -= torch.outer(embed @ p, p) + torch.outer(embed @ d, d)
        embed[vocab["purring"]] = p
        mlp = model.gpt_neox.layers[1].mlp
        for unit in PLANTED:
            mlp.dense_h_to_4h.weight[unit] = 5.0 * p
            mlp.dense_h_to_4h.bias[unit] = -5.0
            mlp.dense_4h_to_h.weight[:, unit] = 0.5 * d
        head = model.get_output_embeddings().weight
        head -= torch.outer(head @ d, d)
        head[vocab["cat"]] = 1.5 * d
    layout = find_units(model)
    module = next(m for m in layout.modules if m.name.endswith("layers.1.mlp.dense_h_to_4h"))
    planted = np.array([module.offset + u for u in PLANTED], dtype=np.int64)
    return model, tokenizer, layout, planted


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run many small forward passes: one thread avoids contention on a busy CPU.
    Per test, since a numba kernel (the finiteness check of the responses) resets torch's
    OpenMP thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def planted():
    model, tokenizer, layout, units = planted_model()
    split = causal.split_positives(POSITIVES, seed=0, concept="cat")
    stats = causal.response_statistics(model, tokenizer, layout, split.selection, NEGATIVES)
    return model, tokenizer, layout, units, split, stats


def _no_hooks(model: torch.nn.Module) -> bool:
    return all(not m._forward_hooks for m in model.modules())


def test_ablating_planted_units_raises_the_word_loss_and_random_units_do_not(planted):
    model, tokenizer, layout, units, split, stats = planted
    assert stats.pos_median[units].min() > 5 > 0 > stats.neg_mean[units].max()
    baseline = causal.word_nll(model, tokenizer, split.test, "cat", "noun")
    assert baseline.n_unscored == 0 and baseline.mean < 0.5

    def effect(chosen):
        values = stats.neg_mean[chosen]
        sentences = split.test
        return causal.delta_word_nll(
            model, tokenizer, layout, chosen, values, sentences, "cat", "noun", baseline=baseline
        )

    planted_effect = effect(units)
    null = np.array([effect(draw) for draw in causal.matched_random_units(layout, units, seed=0)])
    assert null.size >= 20
    assert planted_effect > 2.0
    assert planted_effect > np.quantile(null, 0.95)
    assert np.abs(null).max() < 0.1
    assert causal.empirical_p(planted_effect, null) == pytest.approx(1 / (1 + null.size))
    # collateral damage on neutral text is measured, and no hook stays behind
    damage = causal.delta_text_nll(
        model, tokenizer, layout, units, stats.neg_mean[units], NEGATIVES
    )
    assert np.isfinite(damage)
    assert _no_hooks(model)


def test_forcing_planted_units_makes_generations_name_the_word(planted):
    model, tokenizer, layout, units, _split, stats = planted

    def forcing(chosen):
        return causal.forcing_effect(
            model,
            tokenizer,
            layout,
            chosen,
            stats.pos_median[chosen],
            PROMPTS,
            range(4),
            "cat",
            "noun",
            max_new_tokens=5,
        )

    unmodified = forcing(np.zeros(0, dtype=np.int64))
    forced = forcing(units)
    draws = causal.matched_random_units(layout, units, n_draws=20, seed=1)
    null = np.array([forcing(draw).share for draw in draws])
    assert forced.share > 0.9 > 0.5 > unmodified.share
    assert forced.share > np.quantile(null, 0.95)
    assert null.mean() < 0.5
    assert np.isfinite(forced.log_perplexity) and np.isfinite(unmodified.log_perplexity)
    assert _no_hooks(model)


def test_generation_is_seeded_per_prompt_and_seed():
    model, tokenizer = tiny_model("gpt2"), word_tokenizer()
    both = causal.generate_continuations(model, tokenizer, PROMPTS[:2], [0, 1], max_new_tokens=5)
    again = causal.generate_continuations(model, tokenizer, PROMPTS[:2], [0, 1], max_new_tokens=5)
    alone = causal.generate_continuations(model, tokenizer, PROMPTS[1:2], [1], max_new_tokens=5)
    assert both.texts == again.texts
    assert alone.continuation_ids[0][0] == both.continuation_ids[1][1]
    assert both.continuation_ids[0][0] != both.continuation_ids[0][1]
    ppl = causal.continuation_perplexity(model, both)
    assert ppl.shape == (2, 2) and np.isfinite(ppl).all()


def test_word_nll_scores_the_word_and_its_inflections_only():
    model, tokenizer = tiny_model("gpt_neox"), word_tokenizer()
    sentences = ["the cats sat on the mat", "cat is on the mat", "the dog sat", "a cat and cats"]
    scored = causal.word_nll(model, tokenizer, sentences, "cat", "noun")
    # the first token is scored too: a context token ([BOS]) goes before the sentence
    assert scored.n_tokens.tolist() == [1, 1, 0, 2]
    assert scored.n_unscored == 1
    every = causal.text_nll(model, tokenizer, sentences)
    assert every.n_tokens.tolist() == [6, 5, 3, 4]
    assert causal.names_concept("Two Cats.", "cat", "noun")
    assert not causal.names_concept("a catalogue", "cat", "noun")


def _full_logit_nll(model, tokenizer, sentences, select):
    """The NLL of every selected token of each sentence, one sentence at a time from the full
    logits of the whole sentence: the definition the scored-position shortcut must equal."""
    total, count = 0.0, 0
    for text in sentences:
        encoded = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
        ids = [tokenizer.bos_token_id, *encoded["input_ids"]]
        offsets = [(0, 0), *encoded["offset_mapping"]]
        special = [1, *encoded["special_tokens_mask"]]
        with torch.inference_mode():
            logp = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].double(), -1)
        for t in range(1, len(ids)):
            if not special[t] and select(text, offsets[t]):
                total, count = total - float(logp[t - 1, ids[t]]), count + 1
    return total / count


@pytest.mark.parametrize("arch", ["gpt_neox", "gpt2", "llama"])
def test_word_and_text_nll_equal_the_full_logits_of_each_sentence(arch):
    model, tokenizer = tiny_model(arch), word_tokenizer()
    sentences = ["the cat sat on the mat this morning", "a dog and a cat", "cats", "the dog sat"]

    def on_cat(text, offset):
        a, b = offset
        spans = [m.span() for m in causal.concept_pattern("cat", "noun").finditer(text)]
        return b > a and any(a < end and b > start for start, end in spans)

    word = causal.word_nll(model, tokenizer, sentences, "cat", "noun", max_tokens=16)
    assert word.mean == pytest.approx(_full_logit_nll(model, tokenizer, sentences, on_cat), 1e-5)
    text = causal.text_nll(model, tokenizer, sentences, max_tokens=16)
    every = _full_logit_nll(model, tokenizer, sentences, lambda text, offset: True)
    assert text.mean == pytest.approx(every, rel=1e-5)


@pytest.mark.parametrize("arch", ["gpt_neox", "gpt2", "llama"])
def test_set_units_sets_values_and_leaves_the_model_unchanged(arch):
    model, tokenizer = tiny_model(arch), word_tokenizer()
    layout = find_units(model)
    rng = np.random.default_rng(0)
    units = np.array([rng.integers(m.offset, m.offset + m.width) for m in layout.modules])
    values = rng.normal(size=units.size) * 3
    inputs = tokenizer(["the cat sat on the mat", "a dog"], return_tensors="pt", padding=True)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.inference_mode():
        before = model(**inputs).logits
        with causal.set_units(model, layout, units, values):
            assert not _no_hooks(model)
            responses = max_pooled_responses(model, tokenizer, ["the cat sat", "a dog"], layout)
            during = model(**inputs).logits
        after = model(**inputs).logits
    expected = np.repeat(values.astype(np.float32)[:, None], 2, axis=1)
    np.testing.assert_array_equal(responses[units].numpy(), expected)
    assert not torch.equal(before, during)
    assert torch.equal(before, after)
    assert _no_hooks(model)
    with pytest.raises(RuntimeError, match="inside"), torch.inference_mode():
        with causal.set_units(model, layout, units, values):
            model(**inputs)
            raise RuntimeError("failure inside the block")
    assert _no_hooks(model)
    with torch.inference_mode():
        assert torch.equal(before, model(**inputs).logits)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_set_units_refuses_bad_units_and_values():
    model = tiny_model("gpt2")
    layout = find_units(model)
    with pytest.raises(ValueError, match="more than once"):
        with causal.set_units(model, layout, [3, 3], [0.0, 1.0]):
            pass
    with pytest.raises(ValueError, match="outside"):
        with causal.set_units(model, layout, [layout.n_units], 0.0):
            pass
    with pytest.raises(ValueError, match="one value per unit"):
        with causal.set_units(model, layout, [1, 2], [0.0, 1.0, 2.0]):
            pass
    with pytest.raises(ValueError, match="another model"):
        with causal.set_units(tiny_model("gpt_neox"), layout, [1], 0.0):
            pass
    assert _no_hooks(model)


def test_split_never_shares_a_sentence_and_is_seeded():
    sentences = [f"The cat number {i} sat." for i in range(20)]
    sentences += ["the  CAT number 3 sat.", "The cat number 7 sat.", "The cat number 7 sat."]
    split = causal.split_positives(sentences, seed=0, concept="cat")
    selection = {dedupe_key(t) for t in split.selection}
    test = {dedupe_key(t) for t in split.test}
    assert not selection & test
    assert len(split.selection) == len(selection) and len(split.test) == len(test)
    assert selection | test == {dedupe_key(t) for t in sentences}
    assert len(test) == 10
    assert causal.split_positives(sentences, seed=0, concept="cat") == split
    reordered = causal.split_positives(sentences[::-1], seed=0, concept="cat")
    assert {dedupe_key(t) for t in reordered.test} == test
    assert set(causal.split_positives(sentences, seed=1, concept="cat").test) != set(split.test)
    with pytest.raises(ValueError, match="at least 2"):
        causal.split_positives(["A cat.", "a  cat."], concept="cat")


def test_matched_random_units_keep_the_count_per_module():
    layout = find_units(tiny_model("llama"))
    rng = np.random.default_rng(0)
    units = np.sort(rng.choice(layout.n_units, 40, replace=False))
    draws = causal.matched_random_units(layout, units, n_draws=25, seed=3)
    assert draws.shape == (25, 40)
    wanted = causal.count_by_module(layout, units)
    table = layout.table().to_pandas()
    by_layer_kind = table.set_index("unit").loc[units].groupby(["layer", "kind"]).size()
    for draw in draws:
        assert causal.count_by_module(layout, draw) == wanted
        assert (
            table.set_index("unit")
            .loc[draw]
            .groupby(["layer", "kind"])
            .size()
            .equals(by_layer_kind)
        )
        assert not np.isin(draw, units).any()
        assert np.unique(draw).size == draw.size
    np.testing.assert_array_equal(
        draws, causal.matched_random_units(layout, units, n_draws=25, seed=3)
    )
    assert not np.array_equal(draws, causal.matched_random_units(layout, units, n_draws=25, seed=4))


def test_top_k_and_statistics():
    ap = np.array([0.2, 0.9, 0.5, 0.9, 0.1])
    assert causal.top_k_units(ap, 3).tolist() == [1, 3, 2]
    assert causal.top_k_units(ap, tau=0.4).tolist() == [1, 3, 2]
    assert causal.top_k_units(ap, tau=0.95).size == 0
    with pytest.raises(ValueError, match="exactly one"):
        causal.top_k_units(ap)
    with pytest.raises(ValueError, match="k must"):
        causal.top_k_units(ap, 6)
    assert causal.empirical_p(5.0, [1, 2, 3]) == 0.25
    assert causal.empirical_p(2.0, [1, 2, 3]) == 0.75
    assert causal.share_beating_null([5.0, 0.0], [[0, 1, 2], [0, 1, 2]]) == 0.5
    result = causal.paired_test(np.arange(10) + 1.0, np.zeros(10), n_boot=200)
    assert result.mean_difference == 5.5 and result.ci_low > 0 and result.p_value < 0.01


def test_neutral_sentences_never_name_the_concept():
    candidates = (
        NEGATIVES + POSITIVES[:3] + ["Cats sat on the mat", "the dog barked loudly at the postman"]
    )
    neutral = causal.neutral_sentences(candidates, "cat", "noun", n=5, seed=0, concept="cat")
    assert len(neutral) == 5 and len(set(neutral)) == 5
    assert not any(causal.names_concept(t, "cat", "noun") for t in neutral)
    assert neutral == causal.neutral_sentences(candidates, "cat", "noun", n=5, concept="cat")
    kept = causal.neutral_sentences(candidates, "cat", "noun", n=50, exclude=NEGATIVES[:2])
    assert set(kept) == set(NEGATIVES[2:])
