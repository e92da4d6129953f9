"""Embedding baselines: cosine of input embeddings and of last-layer hidden states of concept words.

    >>> from expertalign.baselines import word_vectors, baseline_pairs
    >>> vectors = word_vectors(lm.model, lm.tokenizer, ["cat", "dog", "ice cream"])
    >>> vectors["input"].shape, vectors["hidden"].shape        # [words, d_model] each
    >>> pairs = baseline_pairs(["cat", "dog", "ice_cream"], vectors)  # tidy, like similarity pairs

Each word is tokenized alone, without special tokens, with a leading space when the tokenizer marks
word starts that way (how a word appears mid-sentence). A word split into several tokens is pooled
by the **mean** over its tokens, for the input embeddings and for the last layer's hidden states
alike; the hidden state is the base model's final output (after the final layer norm).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from expertalign.similarity import pair_table

__all__ = ["word_vectors", "baseline_pairs", "BASELINE_MEASURES"]

BASELINE_MEASURES = ("cosine_input_embedding", "cosine_last_hidden")


def _word_ids(tokenizer, word: str) -> list[int]:
    spaced = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
    plain = tokenizer(word, add_special_tokens=False)["input_ids"]
    # Byte-level BPE vocabularies (GPT-2, Pythia, SmolLM2) hold " word" as the mid-sentence form.
    ids = spaced if spaced else plain
    if not ids:
        raise ValueError(f"word {word!r} tokenizes to nothing")
    return ids


def word_vectors(model: torch.nn.Module, tokenizer, words: Sequence[str]) -> dict[str, np.ndarray]:
    """Mean-pooled input embedding and last hidden state of each word, float64 [words, d]."""
    embedding = model.get_input_embeddings()
    base = getattr(model, "base_model", model)
    device = next(model.parameters()).device
    inputs, hidden = [], []
    with torch.inference_mode():
        for word in words:
            ids = torch.tensor([_word_ids(tokenizer, word)], device=device)
            inputs.append(embedding(ids)[0].float().mean(dim=0).cpu().numpy())
            out = base(input_ids=ids, use_cache=False)
            hidden.append(out.last_hidden_state[0].float().mean(dim=0).cpu().numpy())
    return {"input": np.asarray(inputs, np.float64), "hidden": np.asarray(hidden, np.float64)}


def _cosine(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (matrix @ matrix.T) / np.outer(norms, norms)


def baseline_pairs(concepts: Sequence[str], vectors: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Tidy cosine table over unordered concept pairs: concept_a, concept_b, measure, tau, value
    (:func:`expertalign.similarity.pair_table`, tau nan)."""
    return pair_table(
        concepts,
        [
            (measure, np.nan, _cosine(vectors[key]))
            for measure, key in zip(BASELINE_MEASURES, ("input", "hidden"))
        ],
    )
