"""How far bfloat16 responses move AP, expert sets and MEN alignment against float32.

GPU extraction runs in bfloat16 (8 mantissa bits), which rounds nearby responses to the same
value (ties) and can move a unit's AP across τ. This runs the same concepts through the same
model twice on the CPU, once in float32 and once in bfloat16 (weights, activations and the
stored responses), with the workflow's own code path (``shard_expertise``: max-pooled responses,
exact AP), and prints:

* AP: max and mean |ΔAP| over all (concept, unit), its 99.9th percentile, units with |ΔAP| > 0.01;
* expert sets per τ: mean set size in each format, mean and smallest Jaccard between a concept's
  float32 and bfloat16 sets;
* MEN: Spearman ρ of each similarity measure with the human scores in each format, and Δρ.

Inputs: a finished workflow's sentences (``--results results``: ``results/sentences/*.parquet``)
or sentence files (``--sentences 'tests/data/sentences/{concept}.txt'``), the concept table for
words (``--concepts``) and MEN from ``--data-dir``. Each concept's negatives are a seeded sample of
the other concepts' sentences (``--n-negatives``, default 2.5 × positives, the paper's 400 : 1000).
Past ``--max-concepts`` concepts, or ``--max-positives`` sentences per concept, the input is
subsampled (concepts of MEN pairs first) and the output says so.

    .venv/bin/python bench/precision.py --results results --concepts config/concepts.tsv
    .venv/bin/python bench/precision.py --sentences 'tests/data/sentences/{concept}.txt' \\
        --concepts tests/data/tiny_concepts.tsv --max-positives 4
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

TAUS = (0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass
class Inputs:
    concepts: list[str]
    positives: dict[str, list[str]]
    words: dict[str, str]  # concept -> word
    men: pd.DataFrame | None  # word1, word2, score: pairs among the concepts
    notes: list[str]


def _concept_words(table: str | None) -> dict[str, str]:
    if not table:
        return {}
    from expertalign.concepts import load_concepts

    frame = load_concepts(table)
    return dict(zip(frame["concept"].astype(str), frame["word"].astype(str)))


def _read_sentences(args: argparse.Namespace, words: dict[str, str]) -> dict[str, list[str]]:
    from expertalign.sentences import provided_files, read_provided_sentences

    if args.sentences:
        if not words:
            raise SystemExit("--sentences needs --concepts (the concepts whose files to read)")
        files = provided_files(args.sentences, list(words))
        return {c: read_provided_sentences(p, c) for c, p in files.items()}
    folder = Path(args.results) / "sentences"
    paths = sorted(folder.glob("*.parquet"))
    if not paths:
        raise SystemExit(
            f"no sentence files in {folder}/: run the workflow first, or give "
            "--results of a finished run or --sentences PATTERN"
        )
    out = {}
    for path in paths:
        frame = pd.read_parquet(path, columns=["text"])
        out[path.stem] = frame["text"].astype(str).tolist()
    return out


def _men_pairs(data_dir: str, split: str, words: dict[str, str]) -> pd.DataFrame | None:
    from expertalign.judgments import JudgmentFileError, pairs_in_vocabulary, read_men

    try:
        men = read_men(data_dir, split)
    except (JudgmentFileError, FileNotFoundError) as err:
        print(f"MEN not read ({err}); AP and expert sets only", file=sys.stderr)
        return None
    return pairs_in_vocabulary(men, set(words.values()))


def load_inputs(args: argparse.Namespace) -> Inputs:
    table_words = _concept_words(args.concepts)
    sentences = _read_sentences(args, table_words)
    sentences = {c: s for c, s in sentences.items() if s}
    words = {c: table_words.get(c, c) for c in sentences}
    notes: list[str] = []
    men = _men_pairs(args.data_dir, args.men_split, words) if args.data_dir else None
    concepts = sorted(sentences)
    if len(concepts) > args.max_concepts:
        # Concepts of MEN pairs first (pairs in a seeded order, both words or none), then others.
        rng = np.random.default_rng(args.seed)
        concept_of = {w.lower(): c for c, w in words.items()}
        chosen: list[str] = []
        if men is not None and len(men):
            for i in rng.permutation(len(men)):
                pair = {
                    concept_of[men["word1"].iat[i].lower()],
                    concept_of[men["word2"].iat[i].lower()],
                }
                new = [c for c in sorted(pair) if c not in chosen]
                if len(chosen) + len(new) <= args.max_concepts:
                    chosen += new
        rest = [c for c in concepts if c not in chosen]
        rest = [rest[i] for i in rng.permutation(len(rest))]
        chosen += rest[: args.max_concepts - len(chosen)]
        notes.append(
            f"subsampled {len(chosen)} of {len(concepts)} concepts (--max-concepts; "
            f"concepts of MEN pairs first, seed {args.seed})"
        )
        concepts = sorted(chosen)
    positives = {c: sentences[c] for c in concepts}
    longest = max(len(s) for s in positives.values())
    if longest > args.max_positives:
        notes.append(
            f"first {args.max_positives} of up to {longest} sentences per concept (--max-positives)"
        )
        positives = {c: s[: args.max_positives] for c, s in positives.items()}
    if men is not None:
        kept = {words[c].lower() for c in concepts}
        men = men[men["word1"].str.lower().isin(kept) & men["word2"].str.lower().isin(kept)]
        men = men.reset_index(drop=True)
    return Inputs(concepts, positives, {c: words[c] for c in concepts}, men, notes)


def negative_bank(inputs: Inputs, seed: int) -> tuple[list[str], list[str]]:
    """All concepts' sentences in a seeded order: ids ("concept:i") and texts. A concept's
    negatives are the first n of them that are not its own (``shard_expertise``)."""
    ids = [f"{c}:{i}" for c in inputs.concepts for i in range(len(inputs.positives[c]))]
    texts = [t for c in inputs.concepts for t in inputs.positives[c]]
    order = np.random.default_rng(seed).permutation(len(ids))
    return [ids[i] for i in order], [texts[i] for i in order]


def expertise(
    model: str,
    dtype: str,
    inputs: Inputs,
    bank: tuple[list[str], list[str]],
    n_negatives: int,
    max_tokens: int,
) -> tuple[np.ndarray, float]:
    """AP [concepts, units] with the model in `dtype` on the CPU, and the seconds it took."""
    from expertalign.extract import ConceptSentences, shard_expertise
    from expertalign.models import load_model
    from expertalign.units import find_units

    lm = load_model(model, dtype=dtype, device="cpu")
    layout = find_units(lm.model)
    shard = [
        ConceptSentences(
            c, inputs.positives[c], {f"{c}:{i}" for i in range(len(inputs.positives[c]))}
        )
        for c in inputs.concepts
    ]
    start = time.perf_counter()
    result = shard_expertise(
        lm, layout, shard, bank[0], bank[1], n_negatives, max_tokens=max_tokens
    )
    return result.ap, time.perf_counter() - start


def _men_rhos(ap: np.ndarray, inputs: Inputs, taus: list[float]) -> dict[str, float]:
    from expertalign.similarity import pairwise_similarity
    from expertalign.stats import spearman_ci

    sim = pairwise_similarity(ap, taus, inputs.concepts)
    index = {inputs.words[c].lower(): i for i, c in enumerate(inputs.concepts)}
    a = np.array([index[w.lower()] for w in inputs.men["word1"]])
    b = np.array([index[w.lower()] for w in inputs.men["word2"]])
    measures = {f"jaccard@{t}": m for t, m in sim.jaccard.items()}
    measures |= {"cosine_ap": sim.cosine_ap, "cosine_ap_centered": sim.cosine_ap_centered}
    score = inputs.men["score"].to_numpy(float)
    return {name: spearman_ci(m[a, b], score, n_boot=10).rho for name, m in measures.items()}


def compare(
    ap32: np.ndarray, ap16: np.ndarray, inputs: Inputs, taus: list[float]
) -> tuple[dict[str, float], pd.DataFrame, pd.DataFrame | None]:
    """AP summary, per-τ expert-set table, and MEN table (None without enough pairs)."""
    diff = np.abs(ap16.astype(np.float64) - ap32.astype(np.float64))
    summary = {
        "max": float(diff.max()),
        "mean": float(diff.mean()),
        "p99.9": float(np.quantile(diff, 0.999)),
        "over_0.01": float((diff > 0.01).mean()),
    }
    rows = []
    for tau in taus:
        s32, s16 = ap32 > tau, ap16 > tau
        inter = (s32 & s16).sum(axis=1)
        union = (s32 | s16).sum(axis=1)
        jac = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
        rows.append(
            {
                "tau": tau,
                "experts_fp32": s32.sum(axis=1).mean(),
                "experts_bf16": s16.sum(axis=1).mean(),
                "changed": (s32 != s16).sum(axis=1).mean(),
                "jaccard_mean": jac.mean(),
                "jaccard_min": jac.min(),
            }
        )
    sets = pd.DataFrame(rows)
    if inputs.men is None or len(inputs.men) < 3:
        return summary, sets, None
    r32, r16 = _men_rhos(ap32, inputs, taus), _men_rhos(ap16, inputs, taus)
    men = pd.DataFrame(
        {"measure": list(r32), "rho_fp32": list(r32.values()), "rho_bf16": [r16[m] for m in r32]}
    )
    men["delta"] = men["rho_bf16"] - men["rho_fp32"]
    return summary, sets, men


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default="results", help="a workflow's results folder")
    parser.add_argument("--sentences", help="sentence file pattern with {concept} instead")
    parser.add_argument(
        "--concepts",
        default="config/concepts.tsv",
        help="concept table (words for MEN); '' to use concept ids as words",
    )
    parser.add_argument("--data-dir", default="../shared/data", help="holds MEN/ ('' = no MEN)")
    parser.add_argument("--men-split", default="full", choices=["test", "dev", "full"])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--max-concepts", type=int, default=80)
    parser.add_argument("--max-positives", type=int, default=50)
    parser.add_argument(
        "--n-negatives",
        type=int,
        default=None,
        help="default: 2.5 x the largest positive set, within the bank",
    )
    parser.add_argument("--taus", type=float, nargs="+", default=list(TAUS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=4096, help="tokens per forward batch")
    args = parser.parse_args(argv)

    os.environ.setdefault("NUMBA_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    if args.concepts and not Path(args.concepts).is_file():
        raise SystemExit(f"--concepts {args.concepts}: no such file")
    inputs = load_inputs(args)
    if len(inputs.concepts) < 2:
        raise SystemExit(f"need at least 2 concepts with sentences, found {len(inputs.concepts)}")
    bank = negative_bank(inputs, args.seed)
    largest = max(len(s) for s in inputs.positives.values())
    room = len(bank[0]) - largest
    n_negatives = min(args.n_negatives or round(2.5 * largest), room)
    if n_negatives < 1:
        raise SystemExit("not enough other concepts' sentences for negatives")
    source = f"--sentences {args.sentences}" if args.sentences else f"{args.results}/sentences"
    n_pos = sum(len(s) for s in inputs.positives.values())
    print(
        f"inputs: {len(inputs.concepts)} concepts from {source}, {n_pos} positives "
        f"(up to {largest} per concept), {n_negatives} negatives per concept from the other "
        f"concepts' sentences (seed {args.seed}); model {args.model} on CPU, "
        f"{torch.get_num_threads()} threads"
    )
    for note in inputs.notes:
        print(f"note: {note}")
    ap32, t32 = expertise(args.model, "float32", inputs, bank, n_negatives, args.max_tokens)
    ap16, t16 = expertise(args.model, "bfloat16", inputs, bank, n_negatives, args.max_tokens)
    print(
        f"units: {ap32.shape[1]:,}; seconds (responses + AP): float32 {t32:.1f}, bfloat16 {t16:.1f}"
    )
    summary, sets, men = compare(ap32, ap16, inputs, list(args.taus))
    print(
        f"\n|AP(bf16) - AP(fp32)| over {ap32.size:,} (concept, unit): max "
        f"{summary['max']:.4f}, mean {summary['mean']:.2e}, 99.9th pct {summary['p99.9']:.4f};"
        f" {summary['over_0.01']:.2%} above 0.01"
    )
    print("\nexpert sets per concept (mean over concepts; changed = units in one set only):")
    print(
        sets.to_string(
            index=False,
            formatters={
                "tau": "{:.2f}".format,
                "experts_fp32": "{:,.1f}".format,
                "experts_bf16": "{:,.1f}".format,
                "changed": "{:,.1f}".format,
                "jaccard_mean": "{:.4f}".format,
                "jaccard_min": "{:.4f}".format,
            },
        )
    )
    if men is None:
        n = 0 if inputs.men is None else len(inputs.men)
        print(f"\nMEN: {n} judged pairs among the concepts, too few for a Spearman correlation")
    else:
        print(
            f"\nMEN ({args.men_split} split, {len(inputs.men)} pairs among the concepts): "
            "Spearman rho with the human scores"
        )
        print(men.to_string(index=False, float_format=lambda v: f"{v:+.4f}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
