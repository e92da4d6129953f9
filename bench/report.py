"""The benchmark's printed report: a table of seconds per concept, ratios, memory, then JSON.

    >>> from report import report
    >>> report(args, ours, ref, load_before, load_after, wall)  # prints; the last line is JSON

``ours`` and ``ref`` are the JSON objects the ``ours`` and ``reference`` phases of
``bench/benchmark.py`` print (``ref`` is None with ``--skip-reference``); ``load_*`` are the
load averages before and after, ``wall`` the benchmark's wall seconds.
"""

from __future__ import annotations

import json

from corpus import primary_mode


def mode_numbers(k: int, run: dict) -> dict:
    """Per-concept seconds of one mode's run; the bank runs in the same batches as the positives,
    so its share of the forward is estimated by tokens; "marginal" is what one more concept in
    the shard adds."""
    t = run["timings"]
    bank_share = run["bank_only_tokens"] / (run["bank_only_tokens"] + run["positive_tokens"])
    fixed = t["forward_s"] * bank_share + t["bank_sort_s"]
    marginal = (t["forward_s"] * (1 - bank_share) + t["ap_s"]) / k
    return {
        "pc": run["ours_total_s"] / k,
        "cpu": run["ours_total_cpu_s"] / k,
        "t": t,
        "marginal": marginal,
        "at16": (fixed + 16 * marginal) / 16,
    }


def report(args, ours, ref, load_before, load_after, wall) -> None:
    """Print the table, the ratios against their targets and memory, then one JSON line."""
    k = args.concepts
    modes = list(ours["modes"])
    numbers = {mode: mode_numbers(k, ours["modes"][mode]) for mode in modes}
    primary = primary_mode(args)
    t = ours["timings"]
    ours_pc, ours_cpu = numbers[primary]["pc"], numbers[primary]["cpu"]
    marginal, at16 = numbers[primary]["marginal"], numbers[primary]["at16"]
    floor_pc, floor_cpu = ours["floor_s_per_concept"], ours["floor_cpu_s_per_concept"]
    rows = []
    for mode in modes:
        n, run = numbers[mode], ours["modes"][mode]
        rows += [
            (f"ours [{mode}, {run['bank_rows']} bank rows] / concepts", n["pc"], n["cpu"]),
            ("  forward (all distinct sentences)", n["t"]["forward_s"] / k, None),
            ("  bank sort (once per shard)", n["t"]["bank_sort_s"] / k, None),
            ("  AP (gather + sort positives + merge)", n["t"]["ap_s"] / k, None),
            ("  marginal concept (est.: bank by tokens)", n["marginal"], None),
            ("  projected at 16 concepts per shard", n["at16"], None),
        ]
    if ref:
        rr = ref["reference_runs"][0]
        extrapolated = ref["sklearn_units"] < ours["n_units"]
        ref_pc, ref_cpu = ref["reference_s_per_concept"], ref["reference_cpu_s_per_concept"]
        rows += [
            ("reference (padded 128, hooks, sklearn pool)", ref_pc, ref_cpu),
            (
                f"  forward ({ref['reference_sentences']} sentences x 128 tokens"
                f"{', +LM head' if args.reference_lm_head else ''})",
                rr["forward_s"],
                rr["forward_cpu_s"],
            ),
            (
                f"  sklearn AP, {ref['pool_workers']} workers"
                f"{' (extrapolated)' if extrapolated else ''}",
                rr["ap_s"],
                rr["ap_cpu_s"],
            ),
        ]
    rows.append(("floor (bare forward over the positives)", floor_pc, floor_cpu))
    lines = [
        f"model {ours['model']} ({ours['dtype']}, {ours['device']}): {ours['n_units']:,} units; "
        f"{k} concepts x {args.positives} positives, {args.negatives} negatives "
        f"(+{args.own} own bank sentences each; per_concept pool {args.pool}); "
        f"mean {ours['mean_tokens']:.1f} tokens/sentence",
        f"threads: torch {ours['torch_threads']}, numba {ours['numba_threads']}, "
        f"cpus {ours['cpu_count']}; load average before {load_before}, after {load_after}",
        "",
        f"{'seconds per concept':<50}{'wall':>9}{'cpu':>9}",
        *[
            f"{label:<50}{wall_s:>9.2f}" + (f"{cpu_s:>9.1f}" if cpu_s is not None else "")
            for label, wall_s, cpu_s in rows
        ],
        "",
    ]
    for mode in modes:
        n = numbers[mode]
        if ref:
            lines.append(
                f"reference / ours [{mode}]{'':<{11 - len(mode)}}{ref_pc / n['pc']:8.1f}x   "
                f"(target >= 20; cpu seconds {ref_cpu / n['cpu']:.1f}x)"
            )
        lines.append(
            f"ours / floor [{mode}]{'':<{11 - len(mode)}}{n['pc'] / floor_pc:8.2f}x   "
            f"(target <= 1.3; marginal concept {n['marginal'] / floor_pc:.2f}x, at 16 concepts "
            f"{n['at16'] / floor_pc:.2f}x; cpu seconds {n['cpu'] / floor_cpu:.2f}x)"
        )
    if ref:
        lines += [
            f"AP kernel                 {ref['kernel_s']:8.3f} s  (all {ours['n_units']:,} units, "
            f"{ref['reference_sentences']} sentences; median of 6 runs interleaved with the loop)",
            f"sklearn per-unit loop     {ref['sklearn_loop_s']:8.1f} s  "
            + (
                f"(extrapolated from {ref['sklearn_units']:,} units: "
                f"{ref['sklearn_loop_measured_s']:.1f} s)"
                if extrapolated
                else "(all units)"
            ),
            f"sklearn / kernel          {ref['sklearn_loop_s'] / ref['kernel_s']:8.0f}x   "
            f"(target >= 100; cpu seconds {ref['sklearn_loop_cpu_s'] / ref['kernel_cpu_s']:.0f}x)",
            f"max |kernel - sklearn|    {ref['ap_max_abs_diff']:8.1e}     (target <= 1e-9)",
            f"reference AP vs ours      max {ref['reference_vs_ours_ap_max_abs_diff']:.1e}, mean "
            f"{ref['reference_vs_ours_ap_mean_abs_diff']:.1e} (padding changes float rounding only;"
            f" {primary} negatives)",
        ]
    lines += [
        "",
        f"peak RSS: ours {ours['peak_rss_mb']:,.0f} MB, {primary} (after model load "
        f"{ours['rss_after_load_mb']:,.0f} MB; response matrix {ours['n_units']:,} units x "
        f"{int(t['sentences']):,} sentences x {ours['bytes_per_value']} B = "
        f"{ours['response_matrix_mb']:,.0f} MB)"
        + (
            f", reference {ref['peak_rss_mb']:,.0f} MB (+ pool workers up to "
            f"{ref['pool_worker_peak_rss_mb']:,.0f} MB each)"
            if ref
            else ""
        ),
    ]
    if "gpu_peak_mb" in ours:
        lines.append(f"GPU peak allocated (ours): {ours['gpu_peak_mb']:,.0f} MB")
    if ref and ref["reference_concept_count"] < k:
        lines.append(
            f"reference measured on {ref['reference_concept_count']} of {k} concepts "
            "(its cost per concept is the same for every concept)"
        )
    if not ref:
        lines.append("reference and kernel comparison skipped (--skip-reference)")
    lines.append(f"benchmark wall time {wall:.0f} s")
    print("\n".join(lines))
    summary = {
        "ours_s_per_concept": ours_pc,
        "reference_s_per_concept": ref_pc if ref else None,
        "floor_s_per_concept": floor_pc,
        "reference_over_ours": ref_pc / ours_pc if ref else None,
        "ours_over_floor": ours_pc / floor_pc,
        "sklearn_over_kernel": ref["sklearn_loop_s"] / ref["kernel_s"] if ref else None,
        "ap_max_abs_diff": ref["ap_max_abs_diff"] if ref else None,
        "peak_rss_mb": ours["peak_rss_mb"],
        "ours_cpu_s_per_concept": ours_cpu,
        "floor_cpu_s_per_concept": floor_cpu,
        "ours_marginal_over_floor": marginal / floor_pc,
        "ours_over_floor_at_16_concepts": at16 / floor_pc,
        "ours_forward_s": t["forward_s"],
        "ours_bank_sort_s": t["bank_sort_s"],
        "ours_ap_s": t["ap_s"],
        "response_matrix_mb": ours["response_matrix_mb"],
        "model": ours["model"],
        "device": ours["device"],
        "dtype": ours["dtype"],
        "n_units": ours["n_units"],
        "concepts": k,
        "positives": args.positives,
        "negatives": args.negatives,
        "negatives_mode": primary,
        "pool": args.pool,
        "modes": {
            mode: {
                "ours_s_per_concept": numbers[mode]["pc"],
                "ours_over_floor": numbers[mode]["pc"] / floor_pc,
                "reference_over_ours": ref_pc / numbers[mode]["pc"] if ref else None,
                "ours_forward_s": numbers[mode]["t"]["forward_s"],
                "ours_bank_sort_s": numbers[mode]["t"]["bank_sort_s"],
                "ours_ap_s": numbers[mode]["t"]["ap_s"],
                "sentences": int(numbers[mode]["t"]["sentences"]),
                "bank_rows": ours["modes"][mode]["bank_rows"],
            }
            for mode in modes
        },
        "sentences": int(t["sentences"]),
        "mean_tokens": ours["mean_tokens"],
        "torch_threads": ours["torch_threads"],
        "numba_threads": ours["numba_threads"],
    }
    if "gpu_peak_mb" in ours:
        summary["gpu_peak_mb"] = ours["gpu_peak_mb"]
    if ref:
        summary.update(
            {
                "reference_cpu_s_per_concept": ref_cpu,
                "reference_forward_s": rr["forward_s"],
                "reference_ap_s": rr["ap_s"],
                "reference_peak_rss_mb": ref["peak_rss_mb"],
                "reference_lm_head": args.reference_lm_head,
                "kernel_s": ref["kernel_s"],
                "kernel_cpu_s": ref["kernel_cpu_s"],
                "sklearn_loop_s": ref["sklearn_loop_s"],
                "sklearn_loop_cpu_s": ref["sklearn_loop_cpu_s"],
                "sklearn_units": ref["sklearn_units"],
                "sklearn_extrapolated": extrapolated,
                "reference_vs_ours_ap_max_abs_diff": ref["reference_vs_ours_ap_max_abs_diff"],
            }
        )
    print(json.dumps(summary))
