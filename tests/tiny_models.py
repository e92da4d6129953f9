"""Tiny random GPT-NeoX, GPT-2 and Llama models with the real module names, for offline tests
(synthetic inputs without a model are in synthetic_data.py)."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    PreTrainedTokenizerFast,
)

WORDS = (
    "the a cat cats dog dogs sat on mat barked loudly at postman this morning car drove road "
    "fast red blue green chair table is are was were and of to in it he she they purring"
).split()


def word_tokenizer(bos: bool = False) -> PreTrainedTokenizerFast:
    vocab = {"[PAD]": 0, "[UNK]": 1, "[BOS]": 2}
    vocab.update({w: i + 3 for i, w in enumerate(WORDS)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if bos:
        from tokenizers import processors

        tok.post_processor = processors.TemplateProcessing(
            single="[BOS] $A", special_tokens=[("[BOS]", 2)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]"
    )


def tiny_model(arch: str, seed: int = 0):
    common = dict(vocab_size=64)
    if arch == "gpt_neox":
        config = GPTNeoXConfig(
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
            **common,
        )
    elif arch == "gpt2":
        config = GPT2Config(n_embd=16, n_layer=3, n_head=2, n_positions=64, **common)
    elif arch == "llama":
        config = LlamaConfig(
            hidden_size=16,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            intermediate_size=40,
            max_position_embeddings=64,
            **common,
        )
    else:
        raise ValueError(arch)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config).eval()
    return model


# The tiny workflow config's models (tests/data/tiny_config.yaml): a random Llama of a few
# thousand units with the embedded model's tokenizer, so that the workflow's tests exercise real
# text through a local model folder at a fraction of the 135M model's cost. Built by
# conftest.py before any test; the marker names what built it, so a change here rebuilds it.
TINY_LLAMA = "./tests/models/tiny-llama"
_TINY_LLAMA_MARKER = "built-by-tiny_models-v2"


def build_tiny_llama(folder: Path) -> Path:
    """Save (once) a seeded 4-layer Llama with SmolLM2-135M-Instruct's tokenizer in ``folder``.

    Written in a sibling folder and renamed into place, so that a folder with the marker is
    complete; an existing complete folder is kept as it is."""
    import shutil

    from expertalign.models import embedded_model_dir

    if (folder / _TINY_LLAMA_MARKER).is_file():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=160,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    # not seed 0: the tiny config's random-init twin draws its weights from this config with
    # seed 0, and must not be this model
    torch.manual_seed(20261203)
    model = AutoModelForCausalLM.from_config(config)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    (partial / _TINY_LLAMA_MARKER).write_text("complete\n", encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder
