#!/usr/bin/env python3
"""Write config/paper_concepts.tsv: the paper's full concept set.

The rows of config/concepts.tsv first (the 10 domains and the default MEN words, so that the
default run's concepts keep their shards), then every other MEN word (751 in all), then the words
of the Semantic Priming Project pairs sampled for the SPP analysis (100 per relation level, seed 0),
which are written to config/paper_spp_pairs.tsv (config key spp.pairs) for the analysis to read.
POS: MEN's lemma tag; for SPP words the first of noun, verb, adjective that WordNet knows.
Definitions: WordNet's first sense of that POS (empty when WordNet has none).

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

from make_concepts import COLUMNS, concept_id, read_men_full  # noqa: E402

from expertalign.analysis.spp import relation_levels, write_pairs  # noqa: E402
from expertalign.concepts import load_concepts, wordnet_definition  # noqa: E402


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

    base = load_concepts(args.base)
    rows = [
        {c: str(r[c]).lower() if c == "broader" else str(r[c]) for c in COLUMNS}
        for _, r in base.iterrows()
    ]
    ids = {r["concept"] for r in rows}
    words = {r["word"].lower() for r in rows}
    pairs, men_pos = read_men_full(args.data_dir / "MEN")

    def add(word: str, pos: str) -> None:
        cid = concept_id(word)
        if word.lower() in words or cid in ids:
            return
        definition = wordnet_definition(word, pos, args.wordnet_dir) or ""
        rows.append(
            {
                "concept": cid,
                "word": word,
                "pos": pos,
                "definition": " ".join(definition.split()),
                "domain": "",
                "broader": "false",
            }
        )
        ids.add(cid)
        words.add(word.lower())

    for word in sorted(men_pos):
        add(word, men_pos[word])
    levels = relation_levels(args.data_dir / "SPP", n_per_level=args.spp_per_level, seed=0)
    for word in levels.words:
        pos = next(
            (
                p
                for p in ("noun", "verb", "adjective")
                if wordnet_definition(word, p, args.wordnet_dir)
            ),
            "noun",
        )
        add(word, pos)
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
