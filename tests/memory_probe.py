"""Peak host memory of one expert shard on the CPU, for tests/test_resources.py.

    python tests/memory_probe.py N_CONCEPTS N_POSITIVES N_BANK   # prints JSON

Runs a tiny random GPT-NeoX (27,648 units) over random word sentences: once small, to compile
the AP kernels and start the thread pools, then the asked shard with the peak reset in between,
so the printed ``peak - baseline`` is what the shard itself added.
"""

from __future__ import annotations

import gc
import json
import random
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, GPTNeoXConfig

from expertalign.extract import ConceptSentences, shard_expertise
from expertalign.models import LoadedModel
from expertalign.units import find_units

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import WORDS, word_tokenizer  # noqa: E402

HIDDEN, LAYERS, INTERMEDIATE = 64, 48, 256


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _texts(rng: random.Random, n: int, seen: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 10)))
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def _shard(lm, layout, n_concepts: int, n_positives: int, n_bank: int, seed: int) -> None:
    rng, seen = random.Random(seed), set()
    concepts = [
        ConceptSentences(f"c{i}", _texts(rng, n_positives, seen)) for i in range(n_concepts)
    ]
    bank = _texts(rng, n_bank, seen)
    shard_expertise(lm, layout, concepts, [f"b{i}" for i in range(n_bank)], bank, n_bank)


def main() -> None:
    n_concepts, n_positives, n_bank = (int(x) for x in sys.argv[1:4])
    config = GPTNeoXConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        intermediate_size=INTERMEDIATE,
        max_position_embeddings=64,
        vocab_size=64,
    )
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    lm = LoadedModel(model, word_tokenizer(), "tiny", None)
    layout = find_units(lm.model)
    _shard(lm, layout, 2, 8, 30, seed=1)
    gc.collect()
    baseline = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
    _shard(lm, layout, n_concepts, n_positives, n_bank, seed=2)
    print(
        json.dumps(
            {
                "baseline": baseline,
                "peak": _status("VmHWM"),
                "n_units": layout.n_units,
                "n_parameters": model.num_parameters(),
                "widest": INTERMEDIATE,
            }
        )
    )


if __name__ == "__main__":
    main()
