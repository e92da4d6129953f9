"""Seconds per concept: expertalign's shard job vs the published finding-experts pipeline vs
the floor.

    .venv/bin/python bench/benchmark.py                  # embedded model, 12 concepts x 400 / 1000
    .venv/bin/python bench/benchmark.py --quick          # small run (40 / 100, 2 concepts)
    .venv/bin/python bench/benchmark.py --quick --model-shape tiny-neox   # seconds; the test's
    .venv/bin/python bench/benchmark.py --device cuda --model-shape pythia-12b  # on a GPU
    .venv/bin/python bench/benchmark.py --mode per_concept --pool 1250   # one negatives mode only

Measured side by side, on one machine, model and set of sentences:

1. **ours** — ``expertalign.extract.shard_expertise``, the workflow's code path: one shard job
   with the model loaded, every distinct sentence run once, the shared negative bank sorted once.
   Seconds per concept = total shard seconds / concepts; the breakdown (forward, bank sort, AP)
   comes from the function's own timings. Measured in each negatives mode (``--mode``, default
   both): ``shared`` (a bank of ``--negatives`` other sentences, every concept takes the first
   ``--negatives`` not its own) and ``per_concept`` (a pool of ``--pool`` other sentences, each
   concept takes its own seeded sample of ``--negatives``); both pick their negatives with
   ``expertalign.negatives``, as the workflow does.
2. **reference** — the published finding-experts design (apple/ml-selfcond
   ``compute_responses.py`` + ``compute_expertise.py``), written here (``reference.py``): per
   concept, its positives and negatives padded to a fixed 128 tokens, run through the model in
   batches of 30 (the published default), forward hooks max-pooling every unit of the same
   modules over the non-padding tokens, then ``sklearn.metrics.average_precision_score`` per unit
   in a ``multiprocessing.Pool`` with one worker per core. Favours to it, so its numbers are a
   lower bound: only the base model runs (the published code loads ``AutoModelForPreTraining``
   and computes the LM head's logits too; ``--reference-lm-head`` does that), pooling runs on the
   model's device inside the hook (the original copies whole activations to NumPy first), and the
   pickle round-trip to disk between the two scripts is skipped. If ``--sklearn-units`` is below
   the unit count, the pool's AP time is measured on that fixed random subset of units and
   scaled linearly (printed as such).
3. **floor** — the bare base-model forward over each concept's positives, no hooks, batched as
   ours.
4. **kernel** — ``expertalign.ap.average_precision`` on the reference's response matrix of one
   concept vs the per-unit sklearn loop (one process) on the same matrix, with the max
   |difference|.

Each of 1-2 runs in its own process (this script with ``--phase ours`` / ``--phase reference``),
so each reports its own peak RSS (``ru_maxrss``). Sentences are synthesised deterministically
from templates and word lists (no data needed). The last line printed is one JSON object with
every number.

The parts, next to this file: ``corpus.py`` (the synthetic shard and each concept's negatives),
``measure.py`` (model, timers, memory, the floor's forward), ``reference.py`` (the published
pipeline and the kernel comparison), ``report.py`` (the printed table and the JSON summary);
this file holds the command line, the ours + floor phase and the orchestration.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from corpus import MODES, modes_of, own_ids, primary_mode, shard_of
from measure import (
    bare_forward,
    cpu_seconds,
    current_rss_mb,
    peak_rss_mb,
    setup,
    sync,
    threads,
    token_counts,
)
from reference import phase_reference
from report import report


def phase_ours(args) -> dict:
    """``--phase ours``: the floor and ours (each negatives mode) interleaved ``--repeats``
    times, the best run of each kept; the numbers as a JSON-able dict. Each mode's AP matrix of
    its best run goes to ``--workdir`` for the reference phase to compare with."""
    import numpy as np
    import torch

    from expertalign.extract import ConceptSentences, shard_expertise

    modes = modes_of(args)
    lm, layout, (concepts, positives, bank_ids, bank_texts) = setup(args, "shared")
    shards = {}
    for mode in modes:
        _, mode_positives, mode_ids, mode_texts = shard_of(args, mode)
        shards[mode] = (
            [ConceptSentences(c, mode_positives[c], own_ids(mode_ids, c)) for c in concepts],
            mode_ids,
            mode_texts,
        )
    options = dict(max_tokens=args.max_tokens, max_length=args.max_length)
    # warm-up: compiled kernels load, allocator and thread pools start (not timed)
    warm = [
        ConceptSentences(concepts[0], positives[concepts[0]][:3], own_ids(bank_ids, concepts[0]))
    ]
    warm_bank = [
        (i, t) for i, t in zip(bank_ids, bank_texts) if not i.startswith(f"{concepts[0]}:")
    ][:8]
    shard_expertise(
        lm, layout, warm, [i for i, _ in warm_bank], [t for _, t in warm_bank], 5, **options
    )
    bare_forward(lm, positives[concepts[0]][:3], **options)
    rss_loaded = current_rss_mb()
    if lm.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    floors, runs = [], {mode: [] for mode in modes}
    for _ in range(args.repeats):  # floor and ours interleaved, so load changes hit both
        per_concept = []
        cpu = cpu_seconds()
        for c in concepts:
            start = time.perf_counter()
            bare_forward(lm, positives[c], **options)
            per_concept.append(time.perf_counter() - start)
        floors.append((float(np.mean(per_concept)), (cpu_seconds() - cpu) / len(concepts)))
        for mode in modes:
            shard, mode_ids, mode_texts = shards[mode]
            start, cpu = time.perf_counter(), cpu_seconds()
            result = shard_expertise(
                lm,
                layout,
                shard,
                mode_ids,
                mode_texts,
                args.negatives,
                negatives_mode=mode,
                negatives_seed=args.seed,
                **options,
            )
            sync(lm.device)
            total = time.perf_counter() - start
            runs[mode].append((total, cpu_seconds() - cpu, result.timings))
            if len(runs[mode]) == 1 or total < min(r[0] for r in runs[mode][:-1]):
                np.save(Path(args.workdir) / f"ours_ap_{mode}.npy", result.ap)
    floor, floor_cpu = min(floors)
    bytes_per = torch.empty(0, dtype=next(lm.model.parameters()).dtype).element_size()
    per_mode = {}
    for mode in modes:
        total, total_cpu, timings = min(runs[mode], key=lambda r: r[0])
        _, mode_ids, mode_texts = shards[mode]
        per_mode[mode] = {
            "ours_total_s": total,
            "ours_total_cpu_s": total_cpu,
            "ours_runs_s": [r[0] for r in runs[mode]],
            "timings": {k: float(v) for k, v in timings.items()},
            "response_matrix_mb": layout.n_units * timings["sentences"] * bytes_per / 2**20,
            "bank_rows": len(mode_ids),
            **token_counts(
                lm, positives, concepts, mode_texts[: int(timings["bank_rows"])], args.max_length
            ),
        }
    out = {
        **per_mode[primary_mode(args)],
        "modes": per_mode,
        "floor_s_per_concept": floor,
        "floor_cpu_s_per_concept": floor_cpu,
        "floor_runs_s": [f[0] for f in floors],
        "rss_after_load_mb": rss_loaded,
        "peak_rss_mb": peak_rss_mb(),
        "n_units": layout.n_units,
        "bytes_per_value": bytes_per,
        "model": lm.name,
        "device": str(lm.device),
        "dtype": str(next(lm.model.parameters()).dtype).replace("torch.", ""),
        **threads(),
    }
    if lm.device.type == "cuda":
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _run_phase(name: str, argv: list[str], workdir: str) -> dict:
    cmd = [sys.executable, __file__, "--phase", name, "--workdir", workdir, *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"phase {name} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> None:
    # the first paragraph of the docstring, on one line
    description = " ".join(__doc__.split("\n\n")[0].split())
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small run: 40 positives, 100 negatives, 2 concepts, 2000 sklearn units",
    )
    parser.add_argument("--model", default="embedded", help="embedded, a folder or a HF id")
    parser.add_argument(
        "--model-shape",
        choices=["tiny-neox", "pythia-12b"],
        help="a random GPT-NeoX of this shape instead of --model",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--positives", type=int, help="per concept (default 400, quick 40)")
    parser.add_argument("--negatives", type=int, help="per concept (default 1000, quick 100)")
    parser.add_argument(
        "--mode",
        choices=[*MODES, "both"],
        default="both",
        help="negatives mode(s) ours runs in (default both; the reference uses "
        "per_concept's negatives unless --mode shared)",
    )
    parser.add_argument(
        "--pool",
        type=int,
        help="per_concept mode: other sentences in the pool "
        "each concept samples its negatives from (default 1.25 x --negatives, as "
        "config/paper.yaml: 1250 for 1000)",
    )
    parser.add_argument(
        "--concepts",
        type=int,
        help="concepts in the shard (default 12, the shard size of config/paper.yaml; quick 2)",
    )
    parser.add_argument(
        "--own",
        type=int,
        help="bank sentences that are each concept's own "
        "(excluded from its negatives; default 10, quick 4)",
    )
    parser.add_argument(
        "--reference-concepts",
        type=int,
        default=1,
        help="concepts the reference runs (each costs the same; default 1)",
    )
    parser.add_argument(
        "--skip-reference",
        action="store_true",
        help="measure only ours and the floor (e.g. a large shard); the "
        "reference and kernel keys of the JSON are then null",
    )
    parser.add_argument(
        "--reference-lm-head",
        action="store_true",
        help="the reference also computes the LM head's logits, as published",
    )
    parser.add_argument(
        "--sklearn-units",
        type=int,
        help="units sklearn runs on, then scaled; 0 = all (default 20000, quick 2000)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="floor+ours repeats, best kept")
    parser.add_argument("--threads", type=int, default=0, help="torch/numba threads (0: default)")
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phase", choices=["ours", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    for key, full, small in (
        ("positives", 400, 40),
        ("negatives", 1000, 100),
        ("concepts", 12, 2),
        ("own", 10, 4),
        ("sklearn_units", 20000, 2000),
    ):
        if getattr(args, key) is None:
            setattr(args, key, small if quick else full)
    args.reference_concepts = max(1, min(args.reference_concepts, args.concepts))
    if args.pool is None:
        args.pool = round(1.25 * args.negatives)
    if args.pool < args.negatives:
        raise SystemExit(f"--pool {args.pool} < --negatives {args.negatives}")

    if args.phase:
        result = phase_ours(args) if args.phase == "ours" else phase_reference(args)
        print(json.dumps(result))
        return

    passthrough = [a for a in (argv if argv is not None else sys.argv[1:])]
    load_before = _load()
    with tempfile.TemporaryDirectory(prefix="expertalign-bench-") as workdir:
        started = time.perf_counter()
        ours = _run_phase("ours", passthrough, workdir)
        ref = None if args.skip_reference else _run_phase("reference", passthrough, workdir)
        wall = time.perf_counter() - started
    report(args, ours, ref, load_before, _load(), wall)


if __name__ == "__main__":
    main()
