"""Command line: ``expertalign prefetch``, ``expertalign plan`` and ``expertalign experts``.

    $ expertalign plan --configfile config/paper.yaml            # what a campaign will cost
    $ expertalign plan --configfile config/paper.yaml --measured results   # from a calibration
    $ expertalign plan --configfile config/paper.yaml --calibration-targets
    $ expertalign preflight --configfile config/paper.yaml       # sbatch --test-only each request
    $ expertalign status --configfile config/paper.yaml          # where a campaign stands
    $ expertalign restore results     # outputs a killed run's failed jobs lost (after --unlock)

    $ expertalign prefetch --configfile config/paper.yaml        # on the login node, with network
    $ expertalign prefetch EleutherAI/pythia-70m --revision step512
    $ expertalign experts --model embedded --positives cat.txt --negatives other.txt --tau 0.5
    $ expertalign experts --model EleutherAI/pythia-1b --revision step143000 \\
          --positives cat.txt --negatives other.txt --slurm --partition gpu --gpus 1
    $ expertalign experts --model EleutherAI/pythia-1b --revision step143000 \\
          --concept cat --configfile config/config.yaml --slurm --partition gpu --gpus 1

``--concept`` takes the concept's sentences and negatives from the workflow's results (after its
``generate_sentences`` and ``negative_bank`` steps), exactly as the workflow's expert job does.

``experts`` writes the AP vector (Arrow, one row) with ``--output`` and prints the expert counts.

``prefetch`` checks that each model's config, tokenizer and weights arrived, goes on with the
other models when one fails, and exits 1 naming each failure (a gated model: how to log in).
"""

from __future__ import annotations

import argparse
import json
import sys

from expertalign.fetch import PREFETCH_IGNORE, PREFETCH_PATTERNS

__all__ = ["main", "prefetch", "PREFETCH_PATTERNS", "PREFETCH_IGNORE"]


def prefetch(models: list[tuple[str, str | None]]) -> list[str]:
    """Fetch every (model, revision) into the Hugging Face cache and check that loading has all
    it needs (:func:`expertalign.fetch.prefetch`); returns what was fetched, one line each."""
    from expertalign.fetch import prefetch as fetch

    return [item.describe() for item in fetch(models)]


def _default_taus() -> list[float]:
    """``experts.taus`` as the config schema defaults it (the workflow's thresholds)."""
    import yaml

    from expertalign.config import SCHEMA

    schema = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    return schema["properties"]["experts"]["properties"]["taus"]["default"]


def _read_lines(path: str) -> list[str]:
    from expertalign.sentences import read_provided_sentences

    return list(read_provided_sentences(path))


def _plan(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from expertalign.config import ConfigError, load_config
    from expertalign.forecast import calibration_targets, forecast, format_forecast
    from expertalign.plan import Campaign

    try:
        campaign = Campaign(load_config(args.configfile))
    except (ConfigError, ValueError) as err:
        parser.error(f"{args.configfile}: {err}")
    if args.calibration_targets:
        print(" ".join(calibration_targets(campaign)))
        return 0
    fc = forecast(campaign, measured=args.measured)
    print(format_forecast(fc))
    if args.csv:
        from expertalign.storage import write_frame_atomic

        write_frame_atomic(fc.table, args.csv)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="expertalign", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    pre = sub.add_parser("prefetch", help="download models into the Hugging Face cache")
    pre.add_argument("models", nargs="*", help="Hugging Face ids or 'embedded'")
    pre.add_argument(
        "--revision",
        action="append",
        default=None,
        help="revision(s) for the given models (repeatable)",
    )
    pre.add_argument(
        "--configfile",
        help="fetch every model and revision a config loads: "
        "its models, the generator and the pilot's model",
    )

    plan = sub.add_parser(
        "plan", help="jobs, submissions, GPU-hours, memory and disk a config's campaign needs"
    )
    plan.add_argument("--configfile", default="config/config.yaml")
    plan.add_argument(
        "--measured",
        help="a results folder whose expert benchmark files give measured per-concept costs "
        "(a calibration run; see --calibration-targets)",
    )
    plan.add_argument(
        "--calibration-targets",
        action="store_true",
        help="print the expert shards a calibration run makes (one per model), for "
        "`snakemake --profile ... $(expertalign plan --calibration-targets ...)`",
    )
    plan.add_argument("--csv", help="also write the table here")

    pre_flight = sub.add_parser(
        "preflight",
        help="sbatch --test-only for each distinct resource request of a config's campaign "
        "(attempts 1 and 2) with the SLURM profile; nothing is queued",
    )
    pre_flight.add_argument("--configfile", default="config/config.yaml")
    pre_flight.add_argument("--profile", default="profiles/slurm")

    status = sub.add_parser(
        "status",
        help="per rule x model x checkpoint: done, running, queued, failed; time spent and "
        "left; failed jobs with their log and first error line (run where snakemake runs)",
    )
    status.add_argument("--configfile", default="config/config.yaml")
    status.add_argument("--results", help="results folder (default: the config's)")
    status.add_argument(
        "--no-slurm", action="store_true", help="do not ask squeue/sacct (default: if found)"
    )

    restore = sub.add_parser(
        "restore",
        help="put back the previous outputs a run's failed jobs lost, when the run was killed "
        "before Snakemake's onerror hook could (expertalign.previous_results)",
    )
    restore.add_argument("results", help="the results folder (its .previous/ holds them)")
    restore.add_argument(
        "--from",
        dest="folder",
        help="one dated folder under <results>/.previous (default: the newest)",
    )

    exp = sub.add_parser("experts", help="experts of one concept")
    exp.add_argument("--model", required=True)
    exp.add_argument("--revision")
    exp.add_argument("--random-init", action="store_true")
    exp.add_argument("--positives", help="file: one sentence per line")
    exp.add_argument("--negatives", help="file: one sentence per line")
    exp.add_argument(
        "--concept",
        help="a concept of the workflow: its sentences and negatives "
        "from the results of --configfile (instead of --positives/--negatives)",
    )
    exp.add_argument(
        "--configfile",
        default="config/config.yaml",
        help="workflow config for --concept (default: %(default)s)",
    )
    exp.add_argument(
        "--source",
        help="the sentence source of --concept (sentences.sources; default: the config's first)",
    )
    exp.add_argument("--tau", type=float, action="append", default=None)
    exp.add_argument("--output", help="write the AP vector here (.arrow or .parquet)")
    exp.add_argument("--slurm", action="store_true", help="run as a SLURM job through submitit")
    exp.add_argument("--partition")
    exp.add_argument("--gpus", type=int, default=0)
    exp.add_argument("--timeout-min", type=int, default=60)
    exp.add_argument("--submitit-folder", default="submitit")
    args = parser.parse_args(argv)

    if args.command == "prefetch":
        from expertalign.config import ConfigError, load_config
        from expertalign.paths import config_models, hub_revision

        pairs = []
        try:
            if args.configfile:  # what the workflow's prefetch rule fetches for this config
                config = load_config(args.configfile)
                pairs = [(source, hub_revision(rev)) for source, rev in config_models(config)]
        except ConfigError as err:
            parser.error(f"{args.configfile}: {err}")
        revisions = args.revision or [None]
        pairs += [(m, r) for m in args.models for r in revisions]
        if not pairs:
            parser.error("name models or give --configfile")
        from expertalign.models import ModelNotFoundError

        failed = []
        for pair in pairs:  # every model, so that one gated model does not hide the others
            try:
                for item in prefetch([pair]):
                    print(f"fetched {item}", flush=True)
            except ModelNotFoundError as err:
                failed.append(str(err))
                print(f"FAILED {pair[0]}@{pair[1] or 'main'}: {err}", file=sys.stderr, flush=True)
        if failed:
            parser.exit(
                1,
                f"expertalign prefetch: {len(failed)} of {len(pairs)} models could not "
                "be fetched (see above)\n",
            )
        return 0

    if args.command == "plan":
        return _plan(parser, args)
    if args.command == "preflight":
        from expertalign.config import ConfigError
        from expertalign.preflight import main_preflight

        try:
            text, ok = main_preflight(args.configfile, args.profile)
        except (ConfigError, ValueError, FileNotFoundError) as err:
            parser.error(str(err))
        print(text)
        return 0 if ok else 1
    if args.command == "status":
        from expertalign.config import ConfigError
        from expertalign.status import main_status

        try:
            text = main_status(
                args.configfile, results=args.results, slurm=False if args.no_slurm else None
            )
        except (ConfigError, ValueError) as err:
            parser.error(f"{args.configfile}: {err}")
        print(text)
        return 0

    if args.command == "restore":
        from expertalign.previous_results import PreviousResultsError, restore_command

        try:
            restore_command(args.results, args.folder)
        except PreviousResultsError as err:
            parser.exit(1, f"expertalign restore: {err}\n")
        return 0

    from expertalign.submit import ExpertsRequest, run_experts, workflow_request

    if args.concept and (args.positives or args.negatives):
        parser.error("give --concept or --positives/--negatives, not both")
    if args.concept:
        request = workflow_request(
            args.concept,
            args.configfile,
            model=args.model,
            source=args.source,
            revision=args.revision,
            random_init=args.random_init,
        )
    elif args.positives and args.negatives:
        request = ExpertsRequest(
            model=args.model,
            revision=args.revision,
            random_init=args.random_init,
            positives=_read_lines(args.positives),
            negatives=_read_lines(args.negatives),
        )
    else:
        parser.error("give --concept, or both --positives and --negatives")
    slurm = None
    if args.slurm:
        slurm = {"timeout_min": args.timeout_min}
        if args.partition:
            slurm["slurm_partition"] = args.partition
        if args.gpus:
            slurm["gpus_per_node"] = args.gpus
    result = run_experts(request, slurm=slurm, folder=args.submitit_folder)
    if args.output:
        from expertalign.storage import expertise_table, write_table_atomic

        table = expertise_table(
            [args.concept or "concept"],
            result.ap[None, :],
            n_pos=[len(request.positives)],
            n_neg=[len(request.negatives)],
            metadata={"model": args.model, "revision": args.revision or ""},
        )
        write_table_atomic(table, args.output)
    taus = args.tau or _default_taus()
    summary = {f"experts@{t:g}": int(result.experts(t).size) for t in taus}
    summary["n_units"] = int(result.ap.size)
    json.dump(summary, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
