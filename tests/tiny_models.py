"""Tiny random GPT-NeoX, GPT-2 and Llama models with the real module names, for offline tests
(synthetic inputs without a model are in synthetic_data.py)."""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForCausalLM,
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
