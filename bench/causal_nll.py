"""Seconds per ablated unit set of the causal check: scored-position NLL vs full logits.

    .venv/bin/python bench/causal_nll.py                 # embedded model, 20 held-out + 5 neutral
    .venv/bin/python bench/causal_nll.py --model-shape tiny-neox --test 6   # seconds
    .venv/bin/python bench/causal_nll.py --sentences results/sentences/brown/sea.parquet --word sea

Each unit set of the causal check (experts and every random draw) scores the concept's word on
its held-out sentences and every token of a few neutral sentences, with the units ablated
(``expertalign.causal.delta_word_nll``, ``delta_text_nll``). Measured side by side, interleaved
``--repeats`` times (best kept), on the same model, units and sentences:

1. **ours** — ``expertalign.causal.word_nll`` + ``text_nll``: each sentence runs only up to its
   last scored token, and the vocabulary projection and softmax run only at scored positions.
2. **full** — the previous design, written here: every sentence whole, the logits and a softmax
   at every position, then the scored tokens picked.

Prints the seconds of each, the ratio full / ours, and the largest difference of the two NLL
means (they must agree to float rounding). Sentences are synthesised as in ``benchmark.py``;
the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from corpus import make_sentences
from measure import build_model


def full_logit_nll(model, tokenizer, sentences, select, max_length, max_tokens) -> float:
    """The previous ``_token_nll``: whole sentences, logits at every position."""
    from expertalign import causal
    from expertalign.responses import token_batches

    encoded = causal._encode(tokenizer, sentences, max_length)
    total, count = 0.0, 0
    with torch.inference_mode():
        for batch in token_batches([len(ids) for ids, _, _ in encoded], max_tokens):
            longest = max(len(encoded[i][0]) for i in batch)
            ids = torch.zeros((len(batch), longest), dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, i in enumerate(batch):
                ids[row, : len(encoded[i][0])] = torch.tensor(encoded[i][0])
                mask[row, : len(encoded[i][0])] = 1
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
            nll = -logp.gather(-1, ids[:, 1:, None]).squeeze(-1).double().numpy()
            for row, i in enumerate(batch):
                token_ids, offsets, special = encoded[i]
                for t in range(1, len(token_ids)):
                    if not special[t] and select(i, offsets[t]):
                        total, count = total + nll[row, t - 1], count + 1
    return total / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--model-shape", default="", help="a random GPT-NeoX shape of measure.py")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test", type=int, default=20, help="held-out sentences of the concept")
    parser.add_argument("--neutral", type=int, default=5)
    parser.add_argument("--units", type=int, default=100, help="units ablated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--sentences",
        default="",
        help="a concept's sentence file (results/sentences/SOURCE/CONCEPT.parquet): its first "
        "--test sentences are the held-out ones, instead of synthesised sentences",
    )
    parser.add_argument("--word", default="lantern", help="the concept's word (with --sentences)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--max-tokens", type=int, default=8192)
    args = parser.parse_args()

    from expertalign import causal
    from expertalign.units import find_units

    lm = build_model(args)
    model, tokenizer = lm.model, lm.tokenizer
    layout = find_units(model)
    word = args.word
    if args.sentences:
        import pandas as pd

        test = pd.read_parquet(args.sentences)["text"].tolist()[: args.test]
    else:
        test = make_sentences(word, args.test, seed=args.seed)
    neutral = make_sentences(None, args.neutral, seed=args.seed + 1, exclude={word})
    units = np.random.default_rng(args.seed).choice(layout.n_units, args.units, replace=False)
    pattern = causal.concept_pattern(word, "noun")
    spans = [[m.span() for m in pattern.finditer(t)] for t in test]

    def on_word(i, offset):
        a, b = offset
        return b > a and any(a < end and b > start for start, end in spans[i])

    scoring = dict(max_length=args.max_length, max_tokens=args.max_tokens)
    timings: dict[str, list[float]] = {"ours": [], "full": []}
    means: dict[str, tuple[float, float]] = {}
    with causal.set_units(model, layout, units, 0.0):
        causal.word_nll(model, tokenizer, test[:2], word, "noun", **scoring)  # warm-up
        for _ in range(args.repeats):
            start = time.perf_counter()
            word_mean = causal.word_nll(model, tokenizer, test, word, "noun", **scoring).mean
            text_mean = causal.text_nll(model, tokenizer, neutral, **scoring).mean
            timings["ours"].append(time.perf_counter() - start)
            means["ours"] = (word_mean, text_mean)
            start = time.perf_counter()
            word_mean = full_logit_nll(model, tokenizer, test, on_word, **scoring)
            text_mean = full_logit_nll(model, tokenizer, neutral, lambda i, o: True, **scoring)
            timings["full"].append(time.perf_counter() - start)
            means["full"] = (word_mean, text_mean)
    best = {name: min(values) for name, values in timings.items()}
    difference = max(abs(a - b) for a, b in zip(means["ours"], means["full"]))
    print(f"model {lm.name}: {len(test)} held-out sentences of {word!r}, {len(neutral)} neutral")
    print(f"{args.units} units ablated")
    print(f"full logits (previous): {best['full']:.3f} s per unit set")
    print(f"scored positions (ours): {best['ours']:.3f} s per unit set")
    print(f"ratio full / ours: {best['full'] / best['ours']:.2f}x")
    print(f"largest |difference| of the NLL means: {difference:.2e}")
    print(
        json.dumps(
            {
                "seconds": best,
                "ratio": best["full"] / best["ours"],
                "max_abs_difference": difference,
            }
        )
    )


if __name__ == "__main__":
    main()
