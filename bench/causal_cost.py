"""Causal jobs' seconds against the forward passes they count, on the machine of a finished run.

    .venv/bin/python bench/causal_cost.py                  # results/ of the default run
    .venv/bin/python bench/causal_cost.py --results RUN/results

The forecast and the causal jobs' time limits count a job's work with
``expertalign.resources.causal_work`` (sentences run with every unit recorded, sentences
scored, sampling steps) and price every sentence at an expert job's App. K rate on an A100, with
3x that as the limit. This checks the count against a run: each causal job's measured seconds
(its benchmark file) against its count priced at the seconds per sentence of the same run's
expert jobs of that (source, model, checkpoint) (their benchmark files: seconds over the
distinct sentences each ran, loading included). Sampling steps are priced twice: at nothing
(a lower bound) and at a whole sentence each (an upper bound). A measured/predicted ratio well
under 3 means the limit's margin holds on this machine. Run from the repository root (the
config's relative paths); the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def main() -> None:
    from expertalign import paths
    from expertalign.config import load_config
    from expertalign.plan import Campaign
    from expertalign.resources import causal_work, model_shape

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", default="results", type=Path)
    args = parser.parse_args()
    config = load_config(str(args.results / "config" / "effective.yaml"))
    campaign = Campaign({**config, "results": str(args.results)})
    parts = campaign.causal_parts()
    rows = []
    for path in sorted((args.results / "benchmarks" / "causal").glob("*/*/*/*.tsv")):
        source, model, revision, part = path.relative_to(path.parents[3]).with_suffix("").parts
        spent, sentences = 0.0, 0
        for shard in campaign.shard_ids(model):
            bench = Path(paths.expert_benchmark(args.results, source, model, revision, shard))
            if bench.is_file():
                spent += float(pd.read_csv(bench, sep="\t")["s"].mean())
                n_concepts = len(campaign.shard_concepts(shard, model))
                sentences += n_concepts * campaign.n_positives(source)
                sentences += campaign.bank_rows(source)
        if not sentences:
            print(f"{path}: no expert benchmark of {source}/{model}/{revision}; skipped")
            continue
        per_sentence = spent / sentences
        work = causal_work(
            campaign.causal_settings(),
            n_part=len(parts[part]),
            n_concepts=len(campaign.causal_concepts()),
            n_positives=campaign.n_positives(source),
            bank_rows=campaign.bank_rows(source),
            n_units=model_shape(campaign.models[model]["source"]).n_units,
            n_prompts=campaign.n_causal_prompts(),
        )
        low = (work.recorded + work.scored) * per_sentence
        high = low + work.decode_steps * per_sentence
        measured = float(pd.read_csv(path, sep="\t")["s"].mean())
        rows.append(
            {
                "job": f"{source}/{model}/{revision}/{part}",
                "recorded": work.recorded,
                "scored": work.scored,
                "decode_steps": work.decode_steps,
                "expert_s_per_sentence": per_sentence,
                "predicted_low_s": low,
                "predicted_high_s": high,
                "measured_s": measured,
                "measured_over_high": measured / high,
                "measured_over_low": measured / low,
            }
        )
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.precision", 3):
        print(table.to_string(index=False))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
