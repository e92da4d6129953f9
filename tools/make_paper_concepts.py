#!/usr/bin/env python3
"""Write config/paper_concepts.tsv: the paper's full concept set.

The words of config/concepts.tsv first (the default run's concepts, in its order), then the 10
domains, every other MEN word (751 in all), then the words of the Semantic Priming Project pairs
sampled for the SPP analysis (100 per relation level, seed 0), which are written to
config/paper_spp_pairs.tsv (config key spp.pairs) for the analysis to read. Every row's part of
speech and definition are made here by the rules tools/make_concepts.py follows
(:mod:`expertalign.senses`: MEN's tag for a MEN word, also for a domain word such as *red*; the
shared sense-override table; for SPP words MEN's tag of the word as a lemma, else the first of
noun, verb, adjective that WordNet knows), never copied from config/concepts.tsv. Definitions
are empty only for a word WordNet lacks in its part of speech (MEN's *vintage*, adjective).

    .venv/bin/python tools/make_paper_concepts.py --data-dir ../shared/data \\
        --wordnet-dir /usr/share/wordnet --out config/paper_concepts.tsv \\
        --spp-pairs-out config/paper_spp_pairs.tsv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from make_concepts import COLUMNS, DOMAINS, concept_id, read_men_full  # noqa: E402

from expertalign.analysis.spp import relation_levels, write_pairs  # noqa: E402
from expertalign.concepts import load_concepts, wordnet_definition  # noqa: E402
from expertalign.judgments import men_lemma_forms  # noqa: E402
from expertalign.senses import SENSES, concept_definition, concept_pos  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    ap.add_argument("--wordnet-dir", type=Path, default=Path("/usr/share/wordnet"))
    ap.add_argument("--base", type=Path, default=Path("config/concepts.tsv"))
    ap.add_argument("--spp-per-level", type=int, default=100)
    ap.add_argument("--out", type=Path, default=Path("config/paper_concepts.tsv"))
    ap.add_argument(
        "--spp-pairs-out",
        type=Path,
        default=None,
        help="where the sampled SPP pairs go (config spp.pairs; default: "
        "paper_spp_pairs.tsv next to --out)",
    )
    args = ap.parse_args(argv)
    if args.spp_pairs_out is None:
        args.spp_pairs_out = args.out.with_name("paper_spp_pairs.tsv")

    _, men_pos = read_men_full(args.data_dir / "MEN")
    lemma_pos = {lemma: pos for lemma, pos in men_lemma_forms(args.data_dir / "MEN").values()}
    domain_of = {
        word: (domain, word == broader)
        for domain, (specific, broader) in DOMAINS.items()
        for word in [*specific, broader]
    }
    rows: list[dict[str, str]] = []
    ids: set[str] = set()
    words: set[str] = set()

    def add(word: str, fallback: str) -> None:
        cid = concept_id(word)
        if word.lower() in words or cid in ids:
            return
        pos = concept_pos(word, men_pos, lemma_pos, fallback)
        try:
            definition = concept_definition(word, pos, args.wordnet_dir)
        except ValueError:
            if word in domain_of or word.lower() in SENSES:
                raise
            definition = ""  # WordNet lacks the word in its POS (MEN's vintage, adjective)
        domain, broader = domain_of.get(word, ("", False))
        rows.append(
            {
                "concept": cid,
                "word": word,
                "pos": pos,
                "definition": definition,
                "domain": domain,
                "broader": "true" if broader else "false",
            }
        )
        ids.add(cid)
        words.add(word.lower())

    for word in load_concepts(args.base)["word"]:
        add(str(word), "noun")
    for word in domain_of:
        add(word, "noun")
    for word in sorted(men_pos):
        add(word, men_pos[word])
    levels = relation_levels(args.data_dir / "SPP", n_per_level=args.spp_per_level, seed=0)
    for word in levels.words:
        first = next(
            (
                p
                for p in ("noun", "verb", "adjective")
                if wordnet_definition(word, p, args.wordnet_dir)
            ),
            "noun",
        )
        add(word, first)
    text = (
        "\t".join(COLUMNS) + "\n" + "".join("\t".join(r[c] for c in COLUMNS) + "\n" for r in rows)
    )
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    load_concepts(tmp)
    tmp.replace(args.out)
    write_pairs(levels.pairs, args.spp_pairs_out)
    print(
        f"wrote {args.out}: {len(rows)} concepts; {args.spp_pairs_out}: "
        f"{len(levels.pairs)} SPP pairs",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
