"""Small synthetic inputs shared by several test modules, without torch: a concept row, a unit
table, planted SPP overlaps and planted pilot unit responses, and the similarity measures recomputed
by hand from AP vectors."""

from __future__ import annotations

import numpy as np
import pandas as pd

# the concept the sentence tests generate for
CAT = {
    "concept": "cat",
    "word": "cat",
    "pos": "noun",
    "definition": "feline mammal usually having thick soft fur",
}


# a unit table like a tiny model's (development analysis and figures)
def _units(n_layers: int = 4, attn: int = 10, mlp: int = 30) -> pd.DataFrame:
    rows = []
    for layer in range(n_layers):
        for kind, sub, n in (("attention", "query_key_value", attn), ("mlp", "dense_h_to_4h", mlp)):
            for i in range(n):
                rows.append((layer, f"layers.{layer}.{sub}", kind, sub, i))
    df = pd.DataFrame(rows, columns=["layer", "module", "kind", "submodule", "index"])
    df.insert(0, "unit", np.arange(len(df)))
    return df


# planted SPP overlaps (SPP mixed model and figures)
def _synthetic_spp(effects: dict[str, float], n_per_level: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(80)]
    word_effect = dict(zip(words, rng.normal(0, 0.02, len(words))))
    rows = []
    seen: set[frozenset[str]] = set()  # like relation_levels: each pair has one level
    for level, mu in effects.items():
        n = 0
        while n < n_per_level:
            a, b = rng.choice(words, 2, replace=False)
            if frozenset((a, b)) in seen:
                continue
            seen.add(frozenset((a, b)))
            rows.append((a, b, level, mu + word_effect[a] + word_effect[b] + rng.normal(0, 0.03)))
            n += 1
    return pd.DataFrame(rows, columns=["word1", "word2", "level", "overlap"])


# planted unit responses of the pilot (pilot and figures)
def _pilot_data(seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """4 concepts, 60 sentences each; concept c drives units [20c, 20c+20) strongly, so its
    expert set is that block (more or less) in every fold; 300 extra neutral sentences."""
    rng = np.random.default_rng(seed)
    n_c, per, n_units = 4, 60, 120
    r = rng.normal(size=(n_c * per + 300, n_units)).astype(np.float32)
    pools = {}
    for c in range(n_c):
        rows = np.arange(c * per, (c + 1) * per)
        r[np.ix_(rows, np.arange(20 * c, 20 * c + 20))] += 3.0
        pools[f"c{c}"] = rows
    return r, pools, np.arange(r.shape[0])


# the alignment's similarity measures, recomputed by hand from two AP vectors
def jaccard_of_ap(a: np.ndarray, b: np.ndarray, tau: float) -> float:
    """Jaccard of the expert sets (AP > tau) of two AP vectors; 0 when both are empty."""
    sa, sb = set(np.flatnonzero(a > tau)), set(np.flatnonzero(b > tau))
    return len(sa & sb) / len(sa | sb) if sa | sb else 0.0


def cosine_of_ap(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two AP vectors, in float64."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def random_sentences(
    concept: str,
    n: int,
    rng: np.random.Generator,
    words,
    *,
    prompt: str = "facts",
    source: str = "test",
) -> pd.DataFrame:
    """A concept's sentence table (the workflow's columns): ``n`` sentences of 6 random
    ``words`` each, ending in the concept's name."""
    texts = [" ".join(rng.choice(words, size=6)) + f" {concept}" for _ in range(n)]
    return pd.DataFrame(
        {
            "sentence_id": [f"{concept}:{i:04d}" for i in range(n)],
            "concept": concept,
            "text": texts,
            "prompt": prompt,
            "source": source,
        }
    )
