"""Embedding baselines: cosine of input embeddings and of last-layer hidden states of concept words.

    >>> from expertalign.baselines import word_vectors, baseline_pairs
    >>> vectors = word_vectors(lm.model, lm.tokenizer, ["cat", "dog", "ice cream"])
    >>> vectors["input"].shape, vectors["hidden"].shape        # [words, d_model] each
    >>> pairs = baseline_pairs(["cat", "dog", "ice_cream"], vectors)  # tidy, like similarity pairs

In the workflow each expert job writes its concepts' vectors (:func:`vectors_table`, beside its
AP shard), and the baselines of a (model, checkpoint) are a reduction over those files
(:func:`read_vectors`), so adding a concept computes only its shard's vectors on the GPU.

Each word is tokenized alone, without special tokens, with a leading space when the tokenizer marks
word starts that way (how a word appears mid-sentence). A word split into several tokens is pooled
by the **mean** over its tokens, for the input embeddings and for the last layer's hidden states
alike; the hidden state is the base model's final output (after the final layer norm).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from expertalign.similarity import pair_table

if TYPE_CHECKING:
    import torch

__all__ = ["word_vectors", "vectors_table", "read_vectors", "baseline_pairs", "BASELINE_MEASURES"]

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
    import torch

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


def vectors_table(
    concepts: Sequence[str], words: Sequence[str], vectors: Mapping[str, np.ndarray]
) -> pd.DataFrame:
    """One row per concept: concept, word, and its ``input`` and ``hidden`` vectors (lists)."""
    return pd.DataFrame(
        {
            "concept": list(concepts),
            "word": list(words),
            "input": list(np.asarray(vectors["input"], np.float64)),
            "hidden": list(np.asarray(vectors["hidden"], np.float64)),
        }
    )


def read_vectors(frames: Sequence[pd.DataFrame]) -> tuple[list[str], dict[str, np.ndarray]]:
    """The concepts, in order, and their stacked vectors from :func:`vectors_table` frames."""
    table = pd.concat(list(frames), ignore_index=True)
    repeated = table["concept"][table["concept"].duplicated()].tolist()
    if repeated:
        raise ValueError(f"concepts with word vectors in more than one file: {repeated[:5]}")
    if table.empty:
        return [], {key: np.zeros((0, 0)) for key in ("input", "hidden")}
    return table["concept"].tolist(), {
        key: np.stack([np.asarray(v, np.float64) for v in table[key]])
        for key in ("input", "hidden")
    }


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
