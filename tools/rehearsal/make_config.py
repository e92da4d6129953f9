#!/usr/bin/env python3
"""Write the rehearsal's toy campaign: config/paper.yaml's shape at a size two CPU cores run.

Shape kept from the paper's campaign (config/paper.yaml):

* two GPT-NeoX models of different sizes, loaded by Hub name and revision from the offline cache
  that build_hub.py writes (``rehearsal/neox-small`` and ``rehearsal/neox-large``), each at three
  training checkpoints (``step1``, ``step512``, ``step143000``), plus a random-init twin of each
  at its last checkpoint (seed 0), with a shard size per model;
* a concept table in the paper's layout (rows of config/paper_concepts.tsv, so the definitions
  are the paper's): the domains whose broader concept and >= 2 specific concepts have enough
  Brown sentences, the words of ``--spp-per-level`` Semantic Priming Project pairs per level
  (from config/paper_spp_pairs.tsv), then MEN words chosen greedily for MEN pairs completed
  (as tools/make_concepts.py does), up to ``--n-concepts``; every concept has at least
  ``--min-sentences`` Brown sentences in its part of speech (5-40 words, the corpus backend's
  defaults);
* per-concept negatives from a pool (negatives.mode per_concept), n_positives / n_negatives =
  0.4, the five taus, MEN alignment, domains, development, SPP across the two trained models,
  and the pilot on the small model with its own pools and disjoint folds.

What is toy-sized: the sentences come from the Brown corpus (sentences.sources: only ``brown``,
backend corpus: no generator to load, sentence jobs are ``collect_sentences`` on the CPU
partition), 8 positives / 20 negatives, a pool of 30, shards of 6 concepts (at least 25 expert
jobs per (model, checkpoint) for 150 concepts), 30 concepts per sentence job (at least 5
batches), 100 bootstrap resamples and 10 permutations (the schema's minimum for the latter).

Like config/paper.yaml this file extends config/config.yaml (the Snakefile's configfile): the
keys it sets override that file's, so it sets every key config/config.yaml sets that must differ.

Use::

    .venv/bin/python tools/rehearsal/make_config.py --out-dir /tmp/rehearsal/config \\
        --results /tmp/rehearsal/results
    .venv/bin/snakemake -n --configfile /tmp/rehearsal/config/rehearsal.yaml
    .venv/bin/expertalign plan --configfile /tmp/rehearsal/config/rehearsal.yaml

It writes ``<out-dir>/rehearsal.yaml``, ``<out-dir>/concepts.tsv`` and
``<out-dir>/spp_pairs.tsv``; the same arguments give the same files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

import pandas as pd  # noqa: E402
import yaml  # noqa: E402

BRANCHES = ["step1", "step512", "step143000"]
MODELS = {"neox-small": "rehearsal/neox-small", "neox-large": "rehearsal/neox-large"}
LEVELS = ("strong", "weak", "none")


def choose_concepts(
    table: pd.DataFrame,
    spp: pd.DataFrame,
    men: pd.DataFrame,
    count,
    n_concepts: int,
    min_sentences: int,
    spp_per_level: int,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(rows in the paper table's order, SPP pairs kept, notes)."""
    notes: list[str] = []
    ok = {row.concept: count(row.word, row.pos) >= min_sentences for row in table.itertuples()}
    chosen: set[str] = set()
    kept_domains: set[str] = set()
    for domain, rows in table[table["domain"] != ""].groupby("domain", sort=False):
        broader = rows[rows["broader"] == "true"]
        specific = rows[(rows["broader"] != "true") & rows["concept"].map(ok)]
        if len(broader) and ok[broader["concept"].iloc[0]] and len(specific) >= 2:
            chosen |= set(specific["concept"]) | set(broader["concept"])
            kept_domains.add(domain)
        else:
            notes.append(f"domain {domain} left out (too few Brown sentences)")
    kept_pairs = []
    for level in LEVELS:
        pairs = spp[spp["level"] == level]
        good = pairs[
            pairs["word1"].map(lambda w: ok.get(w, False))
            & pairs["word2"].map(lambda w: ok.get(w, False))
        ]
        take = good.head(spp_per_level)
        if len(take) < spp_per_level:
            notes.append(f"SPP level {level}: only {len(take)} pairs within reach")
        kept_pairs.append(take)
        chosen |= set(take["word1"]) | set(take["word2"])
    # MEN words, greedily: the word completing the most MEN pairs with those chosen (ties: more
    # MEN pairs in all, then alphabetical), as tools/make_concepts.py builds config/concepts.tsv
    candidates = {c for c, good in ok.items() if good} - chosen
    men = men[
        men["word1"].map(lambda w: ok.get(w, False)) & men["word2"].map(lambda w: ok.get(w, False))
    ]
    partners: dict[str, list[str]] = {}
    for a, b in zip(men["word1"], men["word2"]):
        partners.setdefault(a, []).append(b)
        partners.setdefault(b, []).append(a)
    candidates &= set(partners)
    while len(chosen) < n_concepts and candidates:
        best = min(
            candidates,
            key=lambda w: (
                -sum(p in chosen for p in partners[w]),
                -len(partners[w]),
                w,
            ),
        )
        chosen.add(best)
        candidates.discard(best)
    if len(chosen) < n_concepts:
        notes.append(f"only {len(chosen)} concepts qualify (asked for {n_concepts})")
    rows = table[table["concept"].isin(chosen)].reset_index(drop=True)
    # a left-out domain's words that came in as SPP or MEN words are plain concepts here
    partial = (rows["domain"] != "") & ~rows["domain"].isin(kept_domains)
    rows.loc[partial, ["domain", "broader"]] = ["", "false"]
    covered = int(sum(a in chosen and b in chosen for a, b in zip(men["word1"], men["word2"])))
    notes.append(f"{covered} MEN pairs (full set) have both words in the table")
    return rows, pd.concat(kept_pairs, ignore_index=True), notes


def failing_row(table: pd.DataFrame, chosen: pd.DataFrame, count, n_positives: int) -> pd.DataFrame:
    """The first row of ``table`` outside ``chosen`` and outside the domains with at least one
    Brown sentence but fewer than ``n_positives``: the corpus source cannot fill its positives."""
    taken = set(chosen["concept"]) | set(chosen["word"])
    for i, row in enumerate(table.itertuples()):
        if row.concept in taken or row.word in taken or row.domain:
            continue
        if 1 <= count(row.word, row.pos) < n_positives:
            out = table.iloc[[i]].copy()
            out[["domain", "broader"]] = ["", "false"]
            return out
    raise SystemExit("no concept of the table has between 1 and n_positives - 1 Brown sentences")


def write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` unless ``path`` already holds it: a rerun of this script must not make the
    table newer than the outputs made from it (Snakemake's mtime trigger would rerun them)."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def campaign(args, concepts: Path, spp_pairs: Path, n_per_level: int) -> dict:
    revisions = list(args.branches)
    chosen = {name: MODELS[name] for name in args.models}
    models = []
    for name, source in chosen.items():
        models.append(
            {"name": name, "source": source, "revisions": revisions, "shard_size": args.shard_size}
        )
    for name, source in chosen.items() if args.random_init else ():
        models.append(
            {
                "name": f"{name}-random",
                "source": source,
                "revisions": [revisions[-1]],
                "random_init": True,
                "seed": 0,
                "shard_size": args.shard_size,
            }
        )
    return {
        "concepts": str(concepts),
        "data_dir": str(args.data_dir.resolve()),
        "results": str(args.results),
        "models": models,
        "sentences": {
            # config/config.yaml's generated source off; Brown only (no generator to load), with
            # this config's sizes, not the default Brown source's own (40 positives, its own
            # negatives, leave_out), which a config laid over config/config.yaml inherits
            "sources": {
                "generated": None,
                "brown": {
                    "backend": "corpus",
                    "n_positives": args.n_positives,
                    "negatives": None,
                    "too_few": "stop",
                },
            },
            "backend": "corpus",
            "concepts_per_job": args.concepts_per_job,
            "n_positives": args.n_positives,
            "seed": 0,
        },
        "negatives": {
            "bank_version": "rehearsal-v1",
            "bank_source_concepts": args.bank_source_concepts,
            "mode": "per_concept",
            "bank_size": args.bank_size,
            "n_negatives": args.n_negatives,
        },
        "experts": {
            "shard_size": args.shard_size,
            "taus": [0.5, 0.6, 0.7, 0.8, 0.9],
            "max_length": 64,
            "max_tokens": 4096,
        },
        "alignment": {"judgments": {"men": {"split": "full"}}, "n_boot": 100},
        "analysis": {"n_permutations": 10},
        "spp": {
            "enabled": True,
            "pairs": str(spp_pairs),
            "models": list(chosen),
            "n_per_level": n_per_level,
            "tau": 0.5,
        },
        "pilot": {
            "enabled": True,
            "model": next(iter(chosen)),
            "men_pairs": 2,
            "men_split": "dev",
            "pool_size": 12,
            "n_positives": [3, 6],
            "n_negatives": [8, 15],
            "folds": 2,
        },
        # config/config.yaml turns the causal check on; the rehearsal's shape is the expert
        # campaign's, so this config keeps it off
        "causal": {"enabled": False},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--results", type=Path, required=True, help="the campaign's results folder")
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--table", type=Path, default=ROOT / "config" / "paper_concepts.tsv")
    ap.add_argument("--spp-pairs", type=Path, default=ROOT / "config" / "paper_spp_pairs.tsv")
    ap.add_argument("--n-concepts", type=int, default=150)
    ap.add_argument("--spp-per-level", type=int, default=4)
    ap.add_argument("--min-sentences", type=int, default=16, help="Brown sentences per concept")
    ap.add_argument("--n-positives", type=int, default=8)
    ap.add_argument("--n-negatives", type=int, default=20)
    ap.add_argument("--bank-size", type=int, default=30)
    ap.add_argument("--bank-source-concepts", type=int, default=40)
    ap.add_argument("--shard-size", type=int, default=6)
    ap.add_argument("--concepts-per-job", type=int, default=30)
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--branches", nargs="+", choices=BRANCHES, default=BRANCHES)
    ap.add_argument(
        "--no-random-init",
        dest="random_init",
        action="store_false",
        help="leave out the random-init twin of each model (at its last branch)",
    )
    ap.add_argument(
        "--failing-concept",
        action="store_true",
        help="append one concept of config/paper_concepts.tsv with too few Brown sentences (at "
        "least 1, fewer than --n-positives): its sentence file records the failure, and the "
        "expert shards that hold it stop (the rehearsal's failed-concept drill); without the "
        "flag the table is the same minus that row",
    )
    args = ap.parse_args(argv)
    args.results = args.results.resolve()

    from expertalign.analysis.spp import read_pairs, write_pairs
    from expertalign.concepts import load_concepts
    from expertalign.corpus import load_corpus
    from expertalign.judgment_files import read_men

    table = pd.read_csv(args.table, sep="\t", dtype=str, keep_default_na=False)
    corpus = load_corpus("brown", data_dir=args.data_dir)

    def count(word: str, pos: str) -> int:
        return corpus.count(word, pos, min_words=5, max_words=40)

    rows, pairs, notes = choose_concepts(
        table,
        read_pairs(args.spp_pairs),
        read_men(args.data_dir, "full"),
        count,
        args.n_concepts,
        args.min_sentences,
        args.spp_per_level,
    )
    if args.failing_concept:
        rows = pd.concat([rows, failing_row(table, rows, count, args.n_positives)])
        rows = rows.reset_index(drop=True)
        notes.append(f"failing concept (last row): {rows['concept'].iloc[-1]}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    concepts = (args.out_dir / "concepts.tsv").resolve()
    write_if_changed(concepts, rows.to_csv(sep="\t", index=False))
    load_concepts(concepts)  # the pipeline's own check of the table
    spp_pairs = (args.out_dir / "spp_pairs.tsv").resolve()
    new_pairs = args.out_dir / "spp_pairs.tsv.new"
    write_pairs(pairs, new_pairs)
    write_if_changed(spp_pairs, new_pairs.read_text(encoding="utf-8"))
    new_pairs.unlink()
    n_per_level = int(pairs.groupby("level").size().min())
    config = campaign(args, concepts, spp_pairs, n_per_level)
    out = args.out_dir / "rehearsal.yaml"
    header = (
        "# The rehearsal's toy campaign (tools/rehearsal/make_config.py; project issue 19): the\n"
        "# shape of config/paper.yaml at toy scale. Models load by Hub name and revision from the\n"
        "# offline cache of tools/rehearsal/build_hub.py (HF_HOME=<it>, HF_HUB_OFFLINE=1).\n"
    )

    class NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data):
            return True

    write_if_changed(out, header + yaml.dump(config, Dumper=NoAliases, sort_keys=False))
    n_shards = -(-len(rows) // args.shard_size)
    n_batches = -(-len(rows) // args.concepts_per_job)
    print(
        f"wrote {out}: {len(rows)} concepts ({(rows['domain'] != '').sum()} in "
        f"{rows.loc[rows['domain'] != '', 'domain'].nunique()} domains), {len(pairs)} SPP pairs "
        f"({n_per_level} per level), {n_shards} expert shards per (model, checkpoint), "
        f"{n_batches} sentence batches",
        file=sys.stderr,
    )
    for note in notes:
        print(f"  {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
