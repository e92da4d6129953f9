"""How many Brown sentences each MEN word and each concept-table word has in its part of speech.

Counts are those :meth:`expertalign.corpus.Corpus.count` gives (inflections, part of speech,
deduplicated, within the word-length range), so they say which concepts a corpus source can serve.
Writes a TSV (word, pos, n_sentences, sources) and prints a summary: for each threshold, how many
MEN words qualify and how many MEN pairs (full, dev and test split) have both words qualifying,
how many rows of each concept table qualify; and the corpus load time and the selection times.

    .venv/bin/python tools/brown_coverage.py --out /tmp/brown_coverage.tsv
    .venv/bin/python tools/brown_coverage.py --data-dir ../shared/data --thresholds 20 40 60

MEN lemma forms carry the part of speech (``sun-n``, ``hold-v``, ``red-j``); concept tables
(config/*.tsv with ``word`` and ``pos`` columns) spell it noun/verb/adjective. Tables without a
``pos`` column (the SPP pair lists) are skipped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd

from expertalign.corpus import MAX_WORDS, MIN_WORDS, load_corpus
from expertalign.inflections import normalize_pos

REPO = Path(__file__).resolve().parents[1]
MEN_POS = {"n": "noun", "v": "verb", "j": "adjective"}
SPLITS = {
    "full": "MEN_dataset_lemma_form_full",
    "dev": "MEN_dataset_lemma_form.dev",
    "test": "MEN_dataset_lemma_form.test",
}


def men_pairs(men_dir: Path, split: str) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """[((word, pos), (word, pos)), ...] from a MEN lemma-form file."""
    path = men_dir / SPLITS[split]
    if not path.is_file():
        raise SystemExit(f"MEN file {path} not found (use --data-dir)")
    pairs = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise SystemExit(f"{path}, line {lineno}: expected 'word-p word-p score'")
        (w1, p1), (w2, p2) = (f.rsplit("-", 1) for f in fields[:2])
        pairs.append(((w1, MEN_POS[p1]), (w2, MEN_POS[p2])))
    return pairs


def concept_tables(config_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """{table file name: [(word, pos), ...]} for config/*.tsv with word and pos columns."""
    tables = {}
    for path in sorted(config_dir.glob("*.tsv")):
        df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        if {"word", "pos"} <= set(df.columns):
            tables[path.name] = [
                (w.strip().lower(), normalize_pos(p)) for w, p in zip(df["word"], df["pos"])
            ]
    return tables


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("EXPERTALIGN_DATA", REPO.parent / "shared" / "data")),
        help="shared data folder with MEN/ and nltk_data/ (default: ../shared/data)",
    )
    ap.add_argument("--config-dir", type=Path, default=REPO / "config")
    ap.add_argument("--out", type=Path, default=Path("/tmp/brown_coverage.tsv"))
    ap.add_argument("--min-words", type=int, default=MIN_WORDS)
    ap.add_argument("--max-words", type=int, default=MAX_WORDS)
    ap.add_argument("--thresholds", type=int, nargs="+", default=[20, 40, 60])
    args = ap.parse_args(argv)

    corpus = load_corpus("brown", data_dir=args.data_dir)
    print(
        f"{corpus!r}: loaded in {corpus.load_seconds:.2f} s (NLTK read + detokenize "
        f"{corpus.read_seconds:.2f} s, index {corpus.index_seconds:.2f} s)"
    )

    splits = {s: men_pairs(args.data_dir / "MEN", s) for s in SPLITS}
    tables = concept_tables(args.config_dir)
    sources: dict[tuple[str, str], set[str]] = defaultdict(set)
    for split, pairs in splits.items():
        for pair in pairs:
            for wp in pair:
                sources[wp].add(f"men_{split}")
    for name, rows in tables.items():
        for wp in rows:
            sources[wp].add(name)

    counts: dict[tuple[str, str], int] = {}
    seconds: list[float] = []
    for wp in sorted(sources):
        t0 = time.perf_counter()
        counts[wp] = corpus.count(*wp, min_words=args.min_words, max_words=args.max_words)
        seconds.append(time.perf_counter() - t0)
    select_s = []
    for wp in [wp for wp in sorted(counts) if counts[wp] >= 40][:200]:
        t0 = time.perf_counter()
        corpus.select(*wp, 40, seed=0, min_words=args.min_words, max_words=args.max_words)
        select_s.append(time.perf_counter() - t0)

    rows = [
        {
            "word": w,
            "pos": p,
            "n_sentences": counts[(w, p)],
            "sources": ",".join(sorted(sources[(w, p)])),
        }
        for w, p in sorted(counts)
    ]
    pd.DataFrame(rows).to_csv(args.out, sep="\t", index=False)
    print(f"{len(rows)} (word, pos) rows written to {args.out}")
    print(
        f"count per word: total {sum(seconds):.2f} s, mean "
        f"{statistics.mean(seconds) * 1e3:.2f} ms, median "
        f"{statistics.median(seconds) * 1e3:.2f} ms, max {max(seconds) * 1e3:.1f} ms"
    )
    if select_s:
        print(
            f"select 40 sentences ({len(select_s)} words): mean "
            f"{statistics.mean(select_s) * 1e3:.2f} ms, max {max(select_s) * 1e3:.1f} ms"
        )
    print(f"sentences of {args.min_words}-{args.max_words} words, deduplicated")

    men_words = sorted({wp for pairs in splits.values() for pair in pairs for wp in pair})
    by_pos = defaultdict(int)
    for _, p in men_words:
        by_pos[p] += 1
    print(
        f"\nMEN: {len(men_words)} distinct (word, pos) ("
        + ", ".join(f"{n} {p}" for p, n in sorted(by_pos.items()))
        + ")"
    )
    header = (
        ["threshold", "MEN words", "noun/verb/adj"]
        + [f"pairs {s} (of {len(p)})" for s, p in splits.items()]
        + [f"{name} (of {len(r)})" for name, r in tables.items()]
    )
    print("\t".join(header))
    for t in args.thresholds:
        ok = {wp for wp in counts if counts[wp] >= t}
        men_ok = [wp for wp in men_words if wp in ok]
        pos_split = "/".join(
            str(sum(1 for _, p in men_ok if p == q)) for q in ("noun", "verb", "adjective")
        )
        line = [f">= {t}", str(len(men_ok)), pos_split]
        for pairs in splits.values():
            both = [pr for pr in pairs if pr[0] in ok and pr[1] in ok]
            words = {wp for pr in both for wp in pr}
            line.append(f"{len(both)} ({len(words)} words)")
        line += [str(sum(1 for wp in r if wp in ok)) for r in tables.values()]
        print("\t".join(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
