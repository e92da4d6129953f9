"""How much does the negative pool's sharing change expert sets and MEN alignment, and what does
each option cost? (issue 24, item 3; docs/ANALYSES.md, "Negatives")

    .venv/bin/python bench/negatives_pool.py                    # embedded model, 40 : 100, auto N
    nice -n 15 .venv/bin/python bench/negatives_pool.py --n-concepts 100 --seeds 0 1 2 \\
        > /tmp/negatives_pool_out.txt              # the measurement in docs/ANALYSES.md (32 min)
    .venv/bin/python bench/negatives_pool.py --n-positives 8 --n-negatives 20 --n-concepts 20 \\
        --n-boot 200                                            # a smoke run (about 2 minutes)

The paper (Sec. 3.2) samples each concept's 1,000 negatives from all other concepts' sentences,
so two concepts share about 0.25 % of them; ``negatives.mode: per_concept`` samples them from a
pool of ``negatives.bank_size`` sentences, so they share about ``n_negatives / bank_size`` (80 %
with config/paper.yaml's 1,250 for 1,000). This script measures what that sharing does, at the
paper's 400 : 1000 ratio scaled down to what Brown and 2 CPU cores allow:

1. **Concepts**: MEN words (lemma form, MEN's part of speech) with at least ``--n-positives``
   Brown sentences in that part of speech (:meth:`expertalign.corpus.Corpus.count`, as
   ``tools/brown_coverage.py`` counts them); of those, the densest set of ``--n-concepts`` for
   MEN pairs (repeatedly drop the word in the fewest MEN pairs among the rest), so the ρ has as
   many pairs as the budget allows. Each concept's positives: ``Corpus.select`` (seed ``--seed``).
2. **Responses, once**: every distinct sentence of the universe (all concepts' positives)
   through the embedded model (:func:`expertalign.models.load_model`, every unit of
   :func:`expertalign.units.find_units`), max-pooled (:func:`expertalign.responses.
   pool_responses_into`), kept in one [units, sentences] float32 matrix. With ``--n-concepts 0``
   (the default) the number of concepts is sized from a probe of the per-sentence forward cost
   and ``--forward-minutes``.
3. **Negatives per option** (:func:`option_negatives`), for each concept ``--n-negatives`` of:
   ``pool:<size>`` — the workflow's design: a bank of ``size`` sentences sampled evenly across all
   chosen concepts (:func:`expertalign.negatives.build_negative_bank`), each concept keeping its
   seeded sample (:func:`expertalign.negatives.negative_rows`, ``mode="per_concept"``);
   ``independent`` — the paper's design: a seeded sample of all other concepts' sentences
   (:func:`expertalign.negatives.pick_negatives` over the whole universe, own texts excluded).
   Default options: pools of 1.25 × and 5 × ``--n-negatives`` (paper.yaml's 1,250 : 1,000 and
   5,000 : 1,000) and independent draws.
4. **Per option**: AP of every unit (:class:`expertalign.ap.SortedNegatives`, exact sklearn AP),
   expert sets at each τ, mean set size, and Spearman ρ of expert Jaccard
   (:func:`expertalign.similarity.pairwise_similarity`) with MEN (``--men-split``) with a
   percentile bootstrap CI over pairs (:func:`expertalign.stats.spearman_ci`); against
   independent draws, the paired bootstrap difference of ρ
   (:func:`expertalign.stats.paired_spearman_difference`) and the mean per-concept difference of
   set size with a bootstrap CI over concepts. The shared fraction is the mean over all concept
   pairs of |negatives(a) ∩ negatives(b)| / n_negatives.
5. **Cost** (:func:`forward_passes_per_shard`): forward passes per expert shard of the paper
   (config/paper.yaml: 400 positives, 1,000 negatives, shard sizes 12 / 20 / 100 / 313, concept
   table config/paper_concepts.tsv). Pool of P: shard × 400 + P (the pool runs once per shard;
   its rows that are the shard's own positives are free, a negligible saving). Independent:
   each concept needs its own 1,000, so shard × 400 + the expected number of distinct
   other-concept sentences among the shard's draws, U' (1 - (1 - 1000 / U')^shard) with U' the
   universe minus the shard's positives (about shard × 1,400 for small shards). Running the whole
   universe once instead (every concept's positives, 1 × the floor) needs every response of every
   sentence at once: units × U × 2 bytes, 1.7 TB for Pythia-12b. Also printed: rows sorted per
   shard for AP (pool: P once + each concept's positives and excluded pool rows; independent: each
   concept's positives and negatives).

The last thing printed is the markdown table: option, shared fraction, forward passes per shard,
mean set size per τ, ρ per τ with its CI.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TAUS = (0.5, 0.6, 0.7, 0.8, 0.9)
INDEPENDENT = "independent"


# --------------------------------------------------------------------------------------------
# options and negatives


def parse_option(option: str) -> tuple[str, int | None]:
    """``"pool:125"`` -> ``("pool", 125)``; ``"independent"`` -> ``("independent", None)``."""
    if option == INDEPENDENT:
        return INDEPENDENT, None
    kind, _, size = option.partition(":")
    if kind != "pool" or not size.isdigit() or int(size) < 1:
        raise ValueError(f"option {option!r}: use pool:<size> or {INDEPENDENT}")
    return "pool", int(size)


def default_options(n_negatives: int) -> list[str]:
    """Pools of 1.25 x and 5 x ``n_negatives`` (paper.yaml's 1,250 and 5,000 for 1,000), and
    independent draws."""
    return [
        f"pool:{round(1.25 * n_negatives)}",
        f"pool:{5 * n_negatives}",
        INDEPENDENT,
    ]


def option_negatives(
    positives: Mapping[str, Sequence[str]],
    n_negatives: int,
    option: str,
    *,
    seed: int = 0,
    bank_version: str = "negatives-pool-bench",
) -> dict[str, list[str]]:
    """Each concept's ``n_negatives`` negative texts under ``option``.

    ``positives``: concept -> its positive texts (the universe is all of them). ``pool:<size>``:
    a bank of ``size`` sentences sampled evenly across all concepts
    (:func:`expertalign.negatives.build_negative_bank`), each concept keeping its seeded sample of
    the rows that are neither its own nor one of its positive texts
    (:func:`expertalign.negatives.negative_rows`, ``per_concept``), as the expert job does.
    ``independent``: each concept's seeded sample of all distinct universe texts that are not
    its positives (:func:`expertalign.negatives.pick_negatives`), the paper's design.
    """
    import pandas as pd

    from expertalign.negatives import build_negative_bank, negative_rows, pick_negatives

    kind, size = parse_option(option)
    concepts = list(positives)
    if kind == "pool":
        frames = [
            pd.DataFrame(
                {
                    "sentence_id": [f"{c}:{i:05d}" for i in range(len(positives[c]))],
                    "concept": c,
                    "text": list(positives[c]),
                }
            )
            for c in concepts
        ]
        bank = build_negative_bank(frames, size=size, seed=seed, version=bank_version)
        ids = bank["sentence_id"].tolist()
        texts = bank["text"].tolist()
        out = {}
        for c in concepts:
            own = {i for i in ids if i.rsplit(":", 1)[0] == c}
            keep, _ = negative_rows(
                ids, texts, own, set(positives[c]), n_negatives, c, mode="per_concept", seed=seed
            )
            out[c] = [texts[row] for row in keep]
        return out
    universe = list(dict.fromkeys(t for c in concepts for t in positives[c]))
    out = {}
    for c in concepts:
        own_texts = set(positives[c])
        own = {row for row, text in enumerate(universe) if text in own_texts}
        keep = pick_negatives(
            range(len(universe)),
            n_negatives,
            c,
            own=own,
            mode="per_concept",
            seed=seed,
            draw=(INDEPENDENT,),
            source="the universe of all concepts' sentences",
        )
        out[c] = [universe[row] for row in sorted(keep)]
    return out


def shared_fraction(negatives: Mapping[str, Sequence[str]]) -> float:
    """Mean over all unordered concept pairs of |negatives(a) ∩ negatives(b)| / n_negatives
    (the smaller of the two sets' sizes)."""
    concepts = list(negatives)
    if len(concepts) < 2:
        return math.nan
    vocab = {t: i for i, t in enumerate(dict.fromkeys(t for c in concepts for t in negatives[c]))}
    member = np.zeros((len(concepts), len(vocab)), dtype=np.float32)
    for row, c in enumerate(concepts):
        member[row, [vocab[t] for t in set(negatives[c])]] = 1
    inter = member @ member.T
    sizes = member.sum(axis=1)
    a, b = np.triu_indices(len(concepts), k=1)
    return float(np.mean(inter[a, b] / np.minimum(sizes[a], sizes[b])))


def expected_shared_fraction(option: str, n_negatives: int, universe: int, n_pos: int) -> float:
    """What the design says two concepts share: n / P for a pool of P, n / (U - n_pos) for
    independent draws from a universe of U."""
    kind, size = parse_option(option)
    return n_negatives / (size if kind == "pool" else universe - n_pos)


# --------------------------------------------------------------------------------------------
# cost


def forward_passes_per_shard(
    option: str, shard: int, n_pos: int, n_neg: int, n_concepts: int
) -> tuple[float, float]:
    """Expected (forward passes, rows sorted for AP) of one expert shard of ``shard`` concepts
    under ``option`` (see the module doc's cost model)."""
    kind, size = parse_option(option)
    positives = shard * n_pos
    if kind == "pool":
        # the pool sorted once; each concept sorts its positives and its excluded pool rows
        return positives + size, size + shard * (n_pos + size - n_neg)
    others = n_concepts * n_pos - positives
    distinct = others * (1 - (1 - n_neg / (n_concepts * n_pos - n_pos)) ** shard)
    return positives + distinct, shard * (n_pos + n_neg)


def paper_sizes(config: Path) -> dict:
    """400 / 1,000 / 1,250 / shard sizes / concept count from config/paper.yaml."""
    import yaml

    cfg = yaml.safe_load(config.read_text())
    table = (config.parent / Path(cfg["concepts"]).name).resolve()
    n_concepts = sum(1 for _ in open(table)) - 1 if table.is_file() else 1249
    shards = sorted(
        {int(cfg["experts"]["shard_size"])}
        | {int(m["shard_size"]) for m in cfg.get("models", []) if "shard_size" in m}
    )
    return {
        "n_pos": int(cfg["sentences"]["n_positives"]),
        "n_neg": int(cfg["negatives"]["n_negatives"]),
        "bank": int(cfg["negatives"]["bank_size"]),
        "shards": shards,
        "n_concepts": n_concepts,
    }


# --------------------------------------------------------------------------------------------
# AP, expert sets, alignment


@dataclass
class OptionResult:
    option: str
    seed: int
    shared: float
    ap: np.ndarray  # float32 [concepts, units]
    sizes: dict[float, np.ndarray]  # tau -> [concepts]
    jaccard: dict[float, np.ndarray]  # tau -> [concepts, concepts]
    ap_seconds: float


def expertise(
    responses, column_of: Mapping[str, int], positives, negatives, taus=TAUS
) -> tuple[np.ndarray, dict, dict, float]:
    """AP [concepts, units] of every concept (its positives vs its negatives, by text), then
    expert set sizes and Jaccard per τ (:func:`expertalign.similarity.pairwise_similarity`)."""
    import torch

    from expertalign.ap import SortedNegatives
    from expertalign.similarity import pairwise_similarity

    concepts = list(positives)
    scores = responses.T  # [sentences, units] view of the unit-major matrix
    rows = []
    start = time.perf_counter()
    for c in concepts:
        neg = torch.tensor(sorted(column_of[t] for t in negatives[c]), dtype=torch.long)
        pos = torch.tensor(
            sorted({column_of[t] for t in positives[c]}), dtype=torch.long
        )  # distinct texts
        bank = SortedNegatives(scores, rows=neg)
        rows.append(bank.average_precision(scores, rows=pos).float().numpy())
    seconds = time.perf_counter() - start
    ap = np.stack(rows).astype(np.float32)
    sim = pairwise_similarity(ap, list(taus), concepts)
    return ap, sim.sizes, sim.jaccard, seconds


def run_options(
    responses,
    column_of: Mapping[str, int],
    positives: Mapping[str, Sequence[str]],
    n_negatives: int,
    options: Sequence[str],
    seeds: Sequence[int] = (0,),
    taus: Sequence[float] = TAUS,
    log=print,
) -> list[OptionResult]:
    """The core: for each option and seed, every concept's negatives, the mean pairwise shared
    fraction, AP of every unit, expert set sizes and Jaccard per τ. ``responses`` is [units,
    sentences] with ``column_of[text]`` its column."""
    results = []
    for option in options:
        for seed in seeds:
            negatives = option_negatives(positives, n_negatives, option, seed=seed)
            for c, texts in negatives.items():
                if set(texts) & set(positives[c]):
                    raise AssertionError(f"{option}: a positive of {c} is among its negatives")
            shared = shared_fraction(negatives)
            ap, sizes, jaccard, seconds = expertise(
                responses, column_of, positives, negatives, taus
            )
            results.append(OptionResult(option, seed, shared, ap, sizes, jaccard, seconds))
            log(
                f"  {option} seed {seed}: shared {shared:.4f}, AP {seconds:.1f} s, mean set size "
                + " / ".join(f"{sizes[t].mean():,.0f}" for t in taus)
            )
    return results


def men_lemma_pairs(
    data_dir: Path, split: str
) -> list[tuple[tuple[str, str], tuple[str, str], float]]:
    """MEN pairs in lemma form with MEN's part of speech: [((w, pos), (w, pos), score)], first
    occurrence of a repeated pair kept, self-pairs dropped."""
    from expertalign.judgment_files import MEN_FILES, MEN_POS, men_dir

    name = MEN_FILES["lemma_full" if split == "full" else f"lemma_{split}"]
    out, seen = [], set()
    for line in (men_dir(data_dir) / name).read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) != 3:
            continue
        (w1, p1), (w2, p2) = (f.rsplit("-", 1) for f in fields[:2])
        a, b = (w1, MEN_POS[p1]), (w2, MEN_POS[p2])
        key = frozenset((a, b))
        if a == b or key in seen:
            continue
        seen.add(key)
        out.append((a, b, float(fields[2])))
    return out


def densest_words(words: Sequence, pairs: Sequence, n: int) -> list:
    """``n`` of ``words`` in the most pairs among themselves: drop, one at a time, the word in
    the fewest pairs with the remaining words (ties: the last in sorted order)."""
    keep = set(words)
    degree = defaultdict(int)
    neighbours = defaultdict(set)
    for a, b, _ in pairs:
        if a in keep and b in keep:
            neighbours[a].add(b)
            neighbours[b].add(a)
    for w in keep:
        degree[w] = len(neighbours[w])
    while len(keep) > n:
        worst = min(sorted(keep, reverse=True), key=lambda w: degree[w])
        keep.remove(worst)
        for other in neighbours[worst]:
            if other in keep:
                degree[other] -= 1
    return sorted(keep)


def rho_table(results: Sequence[OptionResult], concepts, pairs, taus, n_boot: int):
    """Per result and τ: Spearman ρ of expert Jaccard with MEN with its bootstrap CI; and vs the
    independent result of the same seed, the paired ρ difference and the set-size difference."""
    from expertalign.stats import bootstrap_mean_ci, paired_spearman_difference, spearman_ci

    index = {c: i for i, c in enumerate(concepts)}
    ia = np.array([index[a] for a, _, _ in pairs])
    ib = np.array([index[b] for _, b, _ in pairs])
    human = np.array([s for _, _, s in pairs])
    rows = {}
    for r in results:
        for tau in taus:
            x = r.jaccard[tau][ia, ib]
            rows[(r.option, r.seed, tau)] = spearman_ci(x, human, n_boot=n_boot, seed=0)
    diffs = {}
    for r in results:
        ref = next((q for q in results if q.option == INDEPENDENT and q.seed == r.seed), None)
        if ref is None or r is ref:
            continue
        for tau in taus:
            d = paired_spearman_difference(
                r.jaccard[tau][ia, ib], ref.jaccard[tau][ia, ib], human, n_boot=n_boot, seed=0
            )
            size_d = bootstrap_mean_ci(
                (r.sizes[tau] - ref.sizes[tau]).astype(float), n_boot=n_boot, seed=0
            )
            rel = float(r.sizes[tau].mean() / ref.sizes[tau].mean() - 1)
            diffs[(r.option, r.seed, tau)] = (d, size_d, rel)
    return rows, diffs


# --------------------------------------------------------------------------------------------
# the measurement


def _fmt_ci(res) -> str:
    return f"{res.rho:.3f} [{res.ci_low:.2f}, {res.ci_high:.2f}]"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("EXPERTALIGN_DATA", REPO.parent / "shared" / "data")),
    )
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--n-positives", type=int, default=40, help="per concept (paper: 400)")
    ap.add_argument("--n-negatives", type=int, default=100, help="per concept (paper: 1,000)")
    ap.add_argument(
        "--n-concepts",
        type=int,
        default=0,
        help="0: as many as --forward-minutes allows by a probe of the forward cost",
    )
    ap.add_argument("--forward-minutes", type=float, default=20.0)
    ap.add_argument("--probe-sentences", type=int, default=48)
    ap.add_argument(
        "--options", nargs="+", help="pool:<size> ... independent (default: 1.25x, 5x, independent)"
    )
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="negative-draw seeds")
    ap.add_argument("--seed", type=int, default=0, help="Brown sentence selection seed")
    ap.add_argument("--men-split", default="full", choices=("full", "dev", "test"))
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=4096)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--paper-config", type=Path, default=REPO / "config" / "paper.yaml")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()

    import numba
    import torch

    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    from expertalign.corpus import load_corpus
    from expertalign.models import load_model
    from expertalign.negatives import check_ratio
    from expertalign.responses import pool_responses_into
    from expertalign.units import find_units

    check_ratio(args.n_positives, args.n_negatives)  # the paper's 400 : 1000, scaled
    options = args.options or default_options(args.n_negatives)
    for option in options:
        parse_option(option)
    taus = list(TAUS)

    corpus = load_corpus("brown", data_dir=args.data_dir)
    pairs_all = men_lemma_pairs(args.data_dir, args.men_split)
    men_words = sorted({w for a, b, _ in pairs_all for w in (a, b)})
    eligible = [w for w in men_words if corpus.count(*w) >= args.n_positives]
    eligible_pairs = [p for p in pairs_all if p[0] in set(eligible) and p[1] in set(eligible)]
    print(
        f"MEN {args.men_split}: {len(pairs_all)} pairs, {len(men_words)} words; "
        f"{len(eligible)} words have >= {args.n_positives} Brown sentences in their part of "
        f"speech, {len(eligible_pairs)} pairs among them"
    )

    lm = load_model(args.model, device="cpu")
    layout = find_units(lm.model)
    print(f"model {args.model}: {layout.n_units:,} units; torch threads {torch.get_num_threads()}")

    def positives_of(words):
        return {
            w[0]: corpus.select(*w, args.n_positives, seed=args.seed, concept=w[0]) for w in words
        }

    def forward(texts, out, first=0):
        pool_responses_into(
            lm.model,
            lm.tokenizer,
            texts,
            layout,
            out,
            columns=range(first, first + len(texts)),
            max_tokens=args.max_tokens,
            max_length=args.max_length,
        )

    # the per-sentence forward cost, on sentences of the eligible words (warm-up first)
    sample = [
        t
        for texts in positives_of(eligible[:: max(1, len(eligible) // 12)]).values()
        for t in texts[:4]
    ][: args.probe_sentences]
    probe = torch.empty(layout.n_units, len(sample))
    forward(sample[:8], probe)
    start = time.perf_counter()
    forward(sample, probe)
    per_sentence = (time.perf_counter() - start) / len(sample)
    del probe
    print(f"probe: {per_sentence:.3f} s per sentence forward ({len(sample)} sentences)")
    n_concepts = args.n_concepts or int(
        args.forward_minutes * 60 / (per_sentence * args.n_positives)
    )
    n_concepts = max(2, min(n_concepts, len(eligible)))
    words = densest_words(eligible, eligible_pairs, n_concepts)
    pairs = [p for p in eligible_pairs if p[0] in set(words) and p[1] in set(words)]
    name_of = {w: w[0] for w in words}
    if len(set(name_of.values())) != len(words):  # a word in two parts of speech
        name_of = {w: f"{w[0]}-{w[1]}" for w in words}
    positives = {
        name_of[w]: corpus.select(*w, args.n_positives, seed=args.seed, concept=name_of[w])
        for w in words
    }
    concepts = list(positives)
    pairs = [(name_of[a], name_of[b], s) for a, b, s in pairs]
    universe = list(dict.fromkeys(t for c in concepts for t in positives[c]))
    column_of = {t: i for i, t in enumerate(universe)}
    print(
        f"scale {args.n_positives} : {args.n_negatives} (the paper's 400 : 1000 / "
        f"{400 / args.n_positives:g}); {len(concepts)} concepts "
        f"({', '.join(f'{n} {p}' for p, n in sorted(_count_pos(words).items()))}), "
        f"{len(pairs)} MEN {args.men_split} pairs among them; universe {len(universe):,} "
        f"distinct sentences ({len(concepts) * args.n_positives:,} positives); responses "
        f"{layout.n_units * len(universe) * 4 / 2**30:.1f} GiB"
    )
    print(f"options: {', '.join(options)}; negative seeds {args.seeds}; taus {taus}")

    responses = torch.empty(layout.n_units, len(universe))
    start = time.perf_counter()
    chunk = 256
    for first in range(0, len(universe), chunk):
        forward(universe[first : first + chunk], responses, first)
        done = min(first + chunk, len(universe))
        elapsed = time.perf_counter() - start
        if done == len(universe) or (first // chunk) % 8 == 7:
            print(
                f"  forward {done:,} / {len(universe):,} sentences, {elapsed:.0f} s, "
                f"ETA {elapsed / done * (len(universe) - done):.0f} s",
                flush=True,
            )
    forward_s = time.perf_counter() - start
    print(
        f"forward: {forward_s:.0f} s for {len(universe):,} sentences, "
        f"{forward_s / len(universe):.3f} s per sentence"
    )

    results = run_options(
        responses, column_of, positives, args.n_negatives, options, args.seeds, taus
    )
    rhos, diffs = rho_table(results, concepts, pairs, taus, args.n_boot)

    paper = paper_sizes(args.paper_config)
    paper_options = [
        f"pool:{round(parse_option(o)[1] * paper['n_neg'] / args.n_negatives)}"
        if parse_option(o)[0] == "pool"
        else INDEPENDENT
        for o in options
    ]

    def paper_cost(option, shard):
        return forward_passes_per_shard(
            option, shard, paper["n_pos"], paper["n_neg"], paper["n_concepts"]
        )

    label = {
        o: (
            f"pool {parse_option(p)[1]:,} ({parse_option(o)[1]} here)"
            if p != INDEPENDENT
            else "independent draws"
        )
        for o, p in zip(options, paper_options)
    }

    print(
        f"\n## Cost per expert shard at the paper's scale ({paper['n_pos']} positives, "
        f"{paper['n_neg']:,} negatives, {paper['n_concepts']:,} concepts in "
        f"{args.paper_config.name}'s table; the floor is shard x {paper['n_pos']} positives)\n"
    )
    print(
        "| option | "
        + " | ".join(f"shard {s}: forward passes (x floor), sorted rows" for s in paper["shards"])
        + " |"
    )
    print("|---|" + "---|" * len(paper["shards"]))
    for o, p in zip(options, paper_options):
        cells = []
        for s in paper["shards"]:
            fwd, srt = forward_passes_per_shard(
                p, s, paper["n_pos"], paper["n_neg"], paper["n_concepts"]
            )
            cells.append(f"{fwd:,.0f} ({fwd / (s * paper['n_pos']):.2f}x), {srt:,.0f}")
        print(f"| {label[o]} | " + " | ".join(cells) + " |")
    per_s = forward_s / len(universe)
    here = [
        forward_passes_per_shard(o, 12, args.n_positives, args.n_negatives, len(concepts))[0]
        for o in options
    ]
    print(
        f"\nHere, {args.n_positives} : {args.n_negatives}, at {per_s:.3f} s per sentence: "
        "forward passes (seconds) per shard of 12 = "
        + ", ".join(f"{label[o]} {n:,.0f} ({n * per_s:.0f} s)" for o, n in zip(options, here))
    )

    def sd(values):
        return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan

    def plus(x, spec):
        return f" ±{x:{spec}}" if math.isfinite(x) else ""

    shards = [s for s in paper["shards"] if s in (12, 20)] or paper["shards"][:1]
    print("\n## Every option and negative-draw seed\n")
    print(
        "| option | seed | shared fraction | mean set size, τ "
        + " / ".join(map(str, taus))
        + " | ρ [95% CI], τ "
        + " / ".join(map(str, taus))
        + " |"
    )
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {label[r.option]} | {r.seed} | {r.shared:.2%} | "
            + " / ".join(f"{r.sizes[t].mean():,.0f}" for t in taus)
            + " | "
            + " / ".join(_fmt_ci(rhos[(r.option, r.seed, t)]) for t in taus)
            + " |"
        )

    print(
        "\n## Against independent draws of the same seed (paired bootstrap over pairs / "
        "concepts; * = 95% CI excludes 0)\n"
    )
    print("| option | τ | Δρ per seed [95% CI] | Δ mean set size per seed (relative) |")
    print("|---|---|---|---|")
    for o in options:
        if o == INDEPENDENT:
            continue
        for tau in taus:
            cells_rho, cells_size = [], []
            for seed in args.seeds:
                if (o, seed, tau) not in diffs:
                    continue
                d, size_d, rel = diffs[(o, seed, tau)]
                star = "*" if d[1] > 0 or d[2] < 0 else ""
                cells_rho.append(f"{d[0]:+.3f}{star} [{d[1]:+.2f}, {d[2]:+.2f}]")
                star = "*" if size_d[1] > 0 or size_d[2] < 0 else ""
                cells_size.append(f"{size_d[0]:+,.0f}{star} ({rel:+.1%})")
            print(f"| {label[o]} | {tau} | {'; '.join(cells_rho)} | {'; '.join(cells_size)} |")

    if len(args.seeds) > 1:
        print("\n## Draw-to-draw spread: sd over seeds of ρ and of the mean set size, per τ\n")
        for o in options:
            rs = [r for r in results if r.option == o]
            rho_sd = [sd([rhos[(o, r.seed, t)].rho for r in rs]) for t in taus]
            size_sd = [
                sd([r.sizes[t].mean() / np.mean([q.sizes[t].mean() for q in rs]) for r in rs])
                for t in taus
            ]
            print(
                f"- {label[o]}: ρ sd "
                + " / ".join(f"{x:.3f}" for x in rho_sd)
                + "; set size sd (relative) "
                + " / ".join(f"{x:.1%}" for x in size_sd)
            )

    total = time.perf_counter() - t_start
    print(
        f"\nwall time {total / 60:.1f} min (forward {forward_s / 60:.1f} min, AP "
        f"{sum(r.ap_seconds for r in results) / 60:.1f} min)"
    )
    n_seeds = len(args.seeds)
    over = f"mean over {n_seeds} negative draws (seeds) ± sd over draws; " if n_seeds > 1 else ""
    print(
        f"\n## Negatives: {len(concepts)} concepts x {args.n_positives} : {args.n_negatives} "
        f"(embedded model, Brown), {len(pairs)} MEN {args.men_split} pairs; {over}"
        f"ρ with the 95% bootstrap CI over pairs ({args.n_boot} resamples"
        f"{', bounds averaged over draws' if n_seeds > 1 else ''}); forward passes per paper "
        f"shard of {' / '.join(map(str, shards))} concepts at 400 : 1,000 (x the positives)\n"
    )
    print(
        "| option | shared fraction (expected) | forward passes per shard | "
        "mean set size, τ "
        + " / ".join(map(str, taus))
        + " | ρ [95% CI], τ "
        + " / ".join(map(str, taus))
        + " |"
    )
    print("|---|---|---|---|---|")
    for o, p in zip(options, paper_options):
        rs = [q for q in results if q.option == o]
        expected = expected_shared_fraction(o, args.n_negatives, len(universe), args.n_positives)
        fwd = " / ".join(
            f"{paper_cost(p, s)[0]:,.0f} ({paper_cost(p, s)[0] / (s * paper['n_pos']):.2f}x)"
            for s in shards
        )
        shared = np.mean([r.shared for r in rs])
        size_cells, rho_cells = [], []
        for t in taus:
            sizes = [r.sizes[t].mean() for r in rs]
            fits = [rhos[(o, r.seed, t)] for r in rs]
            size_cells.append(f"{np.mean(sizes):,.0f}{plus(sd(sizes), ',.0f')}")
            rho_cells.append(
                f"{np.mean([f.rho for f in fits]):.3f} [{np.mean([f.ci_low for f in fits]):.2f},"
                f" {np.mean([f.ci_high for f in fits]):.2f}]"
                f"{plus(sd([f.rho for f in fits]), '.3f')}"
            )
        print(
            f"| {label[o]} | {shared:.1%} ({expected:.1%}) | {fwd} | "
            + " / ".join(size_cells)
            + " | "
            + " / ".join(rho_cells)
            + " |"
        )
    return 0


def _count_pos(words) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for _, pos in words:
        counts[pos] += 1
    return counts


if __name__ == "__main__":
    sys.exit(main())
