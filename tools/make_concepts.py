#!/usr/bin/env python3
"""Regenerate config/concepts.tsv: the paper's 10 domains, SPP pairs, and MEN words.

The paper's concepts are 10 domains x (4 specific concepts + 1 broader concept). Few of their
pairs are in MEN, so to measure alignment with human judgments we add MEN words greedily: each
step adds the MEN word that completes the most MEN pairs with the words already chosen (ties:
the word in more MEN pairs, then alphabetical), until at least `--min-pairs` MEN pairs (full
set) have both words in the table. Before that, so that the Semantic Priming Project analysis has
pairs at every relation level, `--spp-per-level` SPP pairs per level (strong / weak / none) whose
words are MEN or domain words are completed, each time the pair needing the fewest new words
(see `spp_words`). Words are MEN's natural forms; POS comes from the
line-aligned lemma file (`-n`/`-v`/`-j`), also for a domain word that is a MEN word (the
colours are MEN adjectives). Definitions are WordNet glosses (first sense of the POS, except the
words of `expertalign.senses.SENSES`, the sense-override table this script shares with
tools/make_paper_concepts.py, e.g. table = furniture, eyes = eye).

With `--corpus brown --corpus-min N`, every concept of the table has at least N sentences in the
corpus in its part of speech (`expertalign.corpus`: Brown from `<data-dir>/nltk_data`,
deduplicated, `--corpus-min-words`..`--corpus-max-words` words, as the workflow's corpus source
counts them): only such MEN words are candidates (and only MEN pairs of two such words count
towards their greedy choice), SPP pairs need two such words, and a domain concept without enough
sentences is left out; a domain is kept only when its broader concept and at least 2 of its
specific concepts qualify. If fewer than `--spp-per-level` SPP pairs of a level are within reach
then, the table takes as many as there are (with a warning).

Use (needs the WordNet dict files: `apt-get install wordnet-base`; the default run's table)::

    .venv/bin/python tools/make_concepts.py \\
        --men-dir ../shared/data/MEN --wordnet-dir /usr/share/wordnet \\
        --spp-dir ../shared/data/SPP --spp-per-level 4 \\
        --corpus brown --corpus-min 24 --data-dir ../shared/data \\
        --min-pairs 150 --out config/concepts.tsv --spp-pairs-out config/spp_pairs.tsv

Without `--corpus` it builds the table from all MEN, SPP and domain words (the table before the
Brown source: 78 concepts).

The output is deterministic: the same inputs give a byte-identical file.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import pandas as pd  # noqa: E402

from expertalign.analysis.spp import write_pairs  # noqa: E402
from expertalign.concepts import load_concepts  # noqa: E402
from expertalign.judgments import men_lemma_forms, read_men  # noqa: E402
from expertalign.senses import concept_definition, concept_pos  # noqa: E402

# domain -> (4 specific concepts, broader concept), in the paper's order.
DOMAINS: dict[str, tuple[list[str], str]] = {
    "animals": (["cat", "dog", "cheetah", "horse"], "animal"),
    "clothes": (["jacket", "jeans", "shirt", "sock"], "clothes"),
    "colours": (["red", "blue", "green", "black"], "colour"),
    "furniture": (["chair", "bookshelf", "table", "couch"], "furniture"),
    "occupations": (["doctor", "teacher", "driver", "musician"], "occupation"),
    "organs": (["heart", "kidney", "lung", "brain"], "organ"),
    "sports": (["golf", "racing", "gymnastics", "swimming"], "sport"),
    "subjects": (["mathematics", "geography", "biology", "chemistry"], "subjects"),
    "vegetables": (["carrot", "potato", "pumpkin", "corn"], "vegetable"),
    "vehicles": (["bus", "tank", "motorcycle", "bicycle"], "vehicle"),
}
COLUMNS = ("concept", "word", "pos", "definition", "domain", "broader")


def read_men_full(men_dir: Path) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """MEN full pairs (natural forms) and each natural form's POS from the lemma file."""
    men = read_men(men_dir, split="full")
    forms = men_lemma_forms(men_dir)
    return list(zip(men["word1"], men["word2"])), {w: pos for w, (_, pos) in forms.items()}


def greedy_men_words(
    seed_words: set[str], pairs: list[tuple[str, str]], min_pairs: int
) -> tuple[list[str], int]:
    """MEN words to add (in order) so that >= min_pairs pairs have both words chosen."""
    neighbours: dict[str, set[str]] = collections.defaultdict(set)
    for a, b in pairs:
        if a != b:
            neighbours[a].add(b)
            neighbours[b].add(a)
    chosen = set(seed_words)
    covered = sum(a in chosen and b in chosen for a, b in pairs)
    added: list[str] = []
    while covered < min_pairs:
        candidates = sorted(w for w in neighbours if w not in chosen)
        if not candidates:
            raise ValueError(f"MEN has only {covered} pairs in reach; cannot reach {min_pairs}")
        best = min(candidates, key=lambda w: (-len(neighbours[w] & chosen), -len(neighbours[w]), w))
        covered += sum(
            1 for a, b in pairs if (a == best and b in chosen) or (b == best and a in chosen)
        )
        chosen.add(best)
        added.append(best)
    return added, covered


def spp_words(
    seed_words: set[str],
    vocabulary: set[str],
    spp_dir: Path,
    per_level: int,
    pairs: list[tuple[str, str]],
    allow_fewer: bool = False,
) -> tuple[list[str], pd.DataFrame]:
    """Words to add so that `per_level` SPP pairs of each relation level (strong / weak / none,
    as `expertalign.analysis.spp.relation_levels` builds them) have both words in the table,
    and those pairs (the rows of `relation_levels`, for the analysis: config key spp.pairs).

    Greedy per level: the pair needing the fewest new words, then the one completing the most
    MEN pairs, then alphabetical; only pairs whose words are MEN or seed words are eligible.
    With `allow_fewer`, a level with fewer pairs in reach takes them all (with a warning).
    """
    from expertalign.analysis.spp import LEVELS, relation_levels

    levels = relation_levels(spp_dir, n_per_level=None, vocabulary=vocabulary | seed_words).pairs
    chosen = set(seed_words)
    added: list[str] = []
    picked: list[tuple[str, str]] = []

    def men_gain(words: list[str]) -> int:
        grown = chosen | set(words)
        return sum(
            (a in grown and b in grown) and not (a in chosen and b in chosen) for a, b in pairs
        )

    for level in LEVELS:
        candidates = sorted(
            zip(
                levels.loc[levels["level"] == level, "word1"],
                levels.loc[levels["level"] == level, "word2"],
            )
        )
        n_level = per_level
        if len(candidates) < per_level:
            if not allow_fewer:
                raise ValueError(f"SPP level {level!r} has only {len(candidates)} pairs in reach")
            print(
                f"warning: SPP level {level!r} has only {len(candidates)} pairs in reach "
                f"(of {per_level} asked); taking them all",
                file=sys.stderr,
            )
            n_level = len(candidates)
        for _ in range(n_level):
            best = min(
                candidates,
                key=lambda p: (
                    sum(w not in chosen for w in p),
                    -men_gain([w for w in p if w not in chosen]),
                    p,
                ),
            )
            candidates.remove(best)
            picked.append(best)
            for word in best:
                if word not in chosen:
                    chosen.add(word)
                    added.append(word)
    index = levels.set_index(["word1", "word2"])
    chosen_pairs = index.loc[picked].reset_index()
    return added, chosen_pairs


def concept_id(word: str) -> str:
    return re.sub(r"[^a-z0-9_\-]+", "_", word.lower()).strip("_")


def build_rows(
    men_dir: Path,
    wordnet_dir: Path,
    min_pairs: int,
    spp_dir: Path | None = None,
    spp_per_level: int = 0,
    count: Callable[[str, str], int] | None = None,
    corpus_min: int = 0,
    dropped: list[str] | None = None,
    men_corpus_min: int | None = None,
) -> tuple[list[dict[str, str]], int, pd.DataFrame | None]:
    """The table's rows, the number of MEN pairs covered, and the SPP pairs (or None).

    `count(word, pos)` (optional): the word's corpus sentences in that part of speech; then
    every concept needs `corpus_min` of them (see the module docstring), and `dropped` (if
    given) receives a line for each domain concept left out."""
    pairs, men_pos = read_men_full(men_dir)
    counts: dict[tuple[str, str], int] = {}

    def n_sentences(word: str, pos: str) -> int:
        if (word, pos) not in counts:
            counts[word, pos] = count(word, pos) if count is not None else 0
        return counts[word, pos]

    def qualifies(word: str, pos: str) -> bool:
        return count is None or n_sentences(word, pos) >= corpus_min

    rows: list[dict[str, str]] = []

    def domain_pos(word: str) -> str:  # MEN's tag for a MEN word (red: adjective), else noun
        return concept_pos(word, men_pos, {}, "noun")

    for domain, (specific, broader) in DOMAINS.items():
        kept = [w for w in specific if qualifies(w, domain_pos(w))]
        keep_domain = qualifies(broader, domain_pos(broader)) and len(kept) >= 2
        for word in [*specific, broader]:
            if keep_domain and (word == broader or word in kept):
                rows.append(
                    {
                        "concept": concept_id(word),
                        "word": word,
                        "pos": domain_pos(word),
                        "domain": domain,
                        "broader": "true" if word == broader else "false",
                    }
                )
            elif dropped is not None:
                pos = domain_pos(word)
                why = "" if keep_domain or not qualifies(word, pos) else " (domain dropped)"
                dropped.append(
                    f"{domain}: {word} ({'broader' if word == broader else 'specific'}"
                    f", {n_sentences(word, pos)} sentences as {pos}){why}"
                )
    seed = {r["word"] for r in rows}
    if count is not None:  # only MEN words (and pairs of them) with enough corpus sentences
        men_pos = {w: p for w, p in men_pos.items() if w in seed or qualifies(w, p)}
        pairs = [(a, b) for a, b in pairs if a in men_pos and b in men_pos]
    extra: list[str] = []
    spp_pairs = None
    if spp_per_level:
        if spp_dir is None:
            raise ValueError("--spp-per-level needs --spp-dir")
        extra, spp_pairs = spp_words(
            seed, set(men_pos), spp_dir, spp_per_level, pairs, allow_fewer=count is not None
        )
    if count is not None and men_corpus_min is not None:
        # MEN words added for their pairs need men_corpus_min sentences (a corpus source with
        # that many positives per concept); domain and SPP words keep corpus_min
        kept = seed | set(extra)
        pairs = [
            (a, b)
            for a, b in pairs
            if all(w in kept or n_sentences(w, men_pos[w]) >= men_corpus_min for w in (a, b))
        ]
    more, covered = greedy_men_words(seed | set(extra), pairs, min_pairs)
    extra += more
    for word in extra:
        rows.append(
            {
                "concept": concept_id(word),
                "word": word,
                "pos": men_pos[word],
                "domain": "",
                "broader": "false",
            }
        )
    for row in rows:
        row["definition"] = concept_definition(row["word"], row["pos"], wordnet_dir)
    return rows, covered, spp_pairs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--men-dir", type=Path, default=Path("../shared/data/MEN"))
    ap.add_argument("--wordnet-dir", type=Path, default=Path("/usr/share/wordnet"))
    ap.add_argument("--min-pairs", type=int, default=150)
    ap.add_argument("--spp-dir", type=Path, default=Path("../shared/data/SPP"))
    ap.add_argument(
        "--spp-per-level",
        type=int,
        default=4,
        help="SPP pairs per relation level to have in the table (0: none)",
    )
    ap.add_argument(
        "--corpus",
        default=None,
        help="keep only concepts with enough sentences in this corpus: brown, or a "
        "path to a .txt/.parquet corpus (untagged; default: no corpus check)",
    )
    ap.add_argument(
        "--corpus-min",
        type=int,
        default=24,
        help="sentences in the corpus each concept needs, in its part of speech",
    )
    ap.add_argument(
        "--men-corpus-min",
        type=int,
        default=None,
        help="corpus sentences a MEN word added for its pairs needs (default: --corpus-min); "
        "for a corpus source with more positives than the domain concepts have sentences",
    )
    ap.add_argument(
        "--corpus-min-words",
        type=int,
        default=5,
        help="shortest sentence counted (words; the workflow's corpus_min_words)",
    )
    ap.add_argument(
        "--corpus-max-words",
        type=int,
        default=40,
        help="longest sentence counted (words; the workflow's corpus_max_words)",
    )
    ap.add_argument(
        "--data-dir",
        type=Path,
        default=Path("../shared/data"),
        help="data dir holding nltk_data/ (for --corpus brown)",
    )
    ap.add_argument("--out", type=Path, default=Path("config/concepts.tsv"))
    ap.add_argument(
        "--spp-pairs-out",
        type=Path,
        default=None,
        help="where the SPP pairs the table was built for go (config spp.pairs; "
        "default: spp_pairs.tsv next to --out)",
    )
    args = ap.parse_args(argv)
    if args.spp_pairs_out is None:
        args.spp_pairs_out = args.out.with_name("spp_pairs.tsv")
    count = None
    dropped: list[str] = []
    if args.corpus is not None:
        from expertalign.corpus import load_corpus

        if args.corpus_min < 1:
            ap.error(f"--corpus-min must be >= 1, not {args.corpus_min}")
        corpus = load_corpus(args.corpus, data_dir=args.data_dir)

        def count(word: str, pos: str) -> int:
            return corpus.count(
                word, pos, min_words=args.corpus_min_words, max_words=args.corpus_max_words
            )

    rows, covered, spp_pairs = build_rows(
        args.men_dir,
        args.wordnet_dir,
        args.min_pairs,
        args.spp_dir,
        args.spp_per_level,
        count,
        args.corpus_min,
        dropped,
        args.men_corpus_min,
    )
    text = (
        "\t".join(COLUMNS) + "\n" + "".join("\t".join(r[c] for c in COLUMNS) + "\n" for r in rows)
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    load_concepts(tmp)  # refuse to write a table the pipeline would reject
    tmp.replace(args.out)
    if spp_pairs is not None:
        write_pairs(spp_pairs, args.spp_pairs_out)
        print(f"wrote {args.spp_pairs_out}: {len(spp_pairs)} SPP pairs", file=sys.stderr)
    if args.corpus is not None:
        print(
            f"corpus {corpus.name}: every concept has >= {args.corpus_min} sentences "
            f"({args.corpus_min_words}-{args.corpus_max_words} words) in its part of speech; "
            f"{len(dropped)} domain concept(s) left out"
            + "".join(f"\n  {line}" for line in dropped),
            file=sys.stderr,
        )
    n_extra = sum(1 for r in rows if not r["domain"])
    print(
        f"wrote {args.out}: {len(rows)} concepts ({n_extra} MEN extras), "
        f"{covered} MEN pairs (full set) with both words in the table",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
