"""The published finding-experts pipeline, re-implemented as the benchmark's reference.

    >>> from reference import reference_responses, phase_reference
    >>> responses = reference_responses(lm, layout, texts)  # {module: [units, sentences]}
    >>> numbers = phase_reference(args)  # the JSON of benchmark.py --phase reference

The design of apple/ml-selfcond (``compute_responses.py`` + ``compute_expertise.py``): per
concept, its positives and negatives padded to a fixed 128 tokens, run through the model in
batches of 30 (the published default), forward hooks max-pooling every unit of the same modules
over the non-padding tokens, then ``sklearn.metrics.average_precision_score`` per unit in a
``multiprocessing.Pool`` with one worker per core. Favours to it, so its numbers are a lower
bound: only the base model runs (``lm_head=True`` / ``--reference-lm-head`` adds the LM head's
logits, as published), pooling runs on the model's device inside the hook, and the pickle
round-trip to disk between the two scripts is skipped.

:func:`phase_reference` also times ``expertalign.ap.average_precision`` against the per-unit
sklearn loop on one concept's matrix (the "kernel" numbers) and compares the reference's AP with
ours (``ours_ap_<mode>.npy`` in ``--workdir``, written by the ours phase).
"""

from __future__ import annotations

import os
import resource
import time
from functools import partial
from pathlib import Path

from corpus import concept_negatives, primary_mode
from measure import cpu_seconds, current_rss_mb, peak_rss_mb, setup, sync


def _single_response_ap(unit_response, labels):
    """What the published code maps over units (selfcond.expertise._single_response_ap)."""
    from sklearn.metrics import average_precision_score

    return average_precision_score(y_true=labels, y_score=unit_response)


def reference_responses(lm, layout, texts, batch_size=30, seq_len=128, lm_head=False):
    """Published design: fixed-length padding, hooks on every recorded module, pooled per batch,
    concatenated to {module: [units, sentences]} (selfcond.responses / selfcond.models)."""
    import numpy as np
    import torch

    # the published code runs the causal LM with its head (AutoModelForPreTraining)
    model = lm.model if lm_head else getattr(lm.model, "base_model", lm.model)
    device = lm.device
    modules = dict(lm.model.named_modules())
    # per module [sentences, units], filled batch by batch (the published code appends per-batch
    # arrays and concatenates; filling in place gives the same matrix without heap fragmentation)
    store = {m.name: np.empty((len(texts), m.width), dtype=np.float32) for m in layout.modules}
    state = {}

    def make_hook(name):
        def hook(_module, _inputs, output):
            hidden = output[0] if isinstance(output, tuple) else output
            pooled = hidden.masked_fill(~state["mask"], float("-inf")).amax(dim=1)
            store[name][state["rows"]] = pooled.float().cpu().numpy()

        return hook

    handles = [modules[m.name].register_forward_hook(make_hook(m.name)) for m in layout.modules]
    tokenizer = lm.tokenizer
    try:
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                enc = tokenizer(
                    texts[start : start + batch_size],
                    padding="max_length",
                    max_length=seq_len,
                    truncation=True,
                    return_tensors="pt",
                )
                state["mask"] = enc["attention_mask"].bool().unsqueeze(-1).to(device)
                state["rows"] = slice(start, start + len(enc["input_ids"]))
                model(
                    input_ids=enc["input_ids"].to(device),
                    attention_mask=enc["attention_mask"].to(device),
                )
    finally:
        for h in handles:
            h.remove()
    sync(device)
    return {name: values.transpose() for name, values in store.items()}  # [units, sentences] views


def phase_reference(args) -> dict:
    """``--phase reference``: the reference on ``--reference-concepts`` concepts, then the AP
    kernel vs the sklearn loop on the first one's matrix; the numbers as a JSON-able dict."""
    import multiprocessing

    import numpy as np
    import torch

    from expertalign.ap import average_precision

    lm, layout, (concepts, positives, bank_ids, bank_texts) = setup(args)
    n_units = layout.n_units
    rng = np.random.default_rng(args.seed)
    n_subset = n_units if args.sklearn_units <= 0 else min(args.sklearn_units, n_units)
    subset = np.sort(rng.choice(n_units, n_subset, replace=False))
    by_module = {}
    for m in layout.modules:
        lo = np.searchsorted(subset, m.offset)
        hi = np.searchsorted(subset, m.offset + m.width)
        by_module[m.name] = subset[lo:hi] - m.offset
    workers = os.cpu_count()
    reference_responses(lm, layout, positives[concepts[0]][:2])  # warm-up, not timed
    rss_loaded = current_rss_mb()
    per_concept, first = [], None
    for c in concepts[: args.reference_concepts]:
        negatives = concept_negatives(
            bank_ids, bank_texts, c, positives[c], args.negatives, primary_mode(args), args.seed
        )
        texts = positives[c] + negatives
        labels = np.array([1] * len(positives[c]) + [0] * len(negatives), dtype=int)
        start, cpu = time.perf_counter(), cpu_seconds()
        responses = reference_responses(lm, layout, texts, lm_head=args.reference_lm_head)
        forward, forward_cpu = time.perf_counter() - start, cpu_seconds() - cpu
        # AP per unit in a process pool, layer by layer (selfcond.expertise.average_precision)
        start, cpu = time.perf_counter(), cpu_seconds(children=True)
        pool = multiprocessing.Pool(processes=workers)
        pool_start = time.perf_counter() - start
        start = time.perf_counter()
        aps = {}
        for name in sorted(responses):
            rows = responses[name][by_module[name]]
            aps[name] = pool.map(partial(_single_response_ap, labels=labels), rows)
        mapped = time.perf_counter() - start
        pool.close()
        pool.join()
        ap_cpu = cpu_seconds(children=True) - cpu  # parent pickling + workers, pool start included
        scale = n_units / n_subset
        per_concept.append(
            {
                "forward_s": forward,
                "forward_cpu_s": forward_cpu,
                "ap_s": pool_start + mapped * scale,
                "ap_cpu_s": ap_cpu * scale,
                "ap_measured_s": mapped,
                "pool_start_s": pool_start,
            }
        )
        if first is None:
            ap_subset = np.empty(n_subset)
            for m in layout.modules:
                lo = np.searchsorted(subset, m.offset)
                ap_subset[lo : lo + len(by_module[m.name])] = aps[m.name]
            first = (c, responses, labels, ap_subset)
        del responses
    rss_reference = peak_rss_mb()
    children_rss = peak_rss_mb(resource.RUSAGE_CHILDREN)

    # 4. the AP kernel alone vs the per-unit sklearn loop, on the first concept's matrix
    c, responses, labels, ref_ap = first
    matrix = np.concatenate([responses[m.name] for m in layout.modules], axis=0)  # [units, n]
    del responses
    scores = torch.from_numpy(matrix).to(lm.device).T  # [sentences, units] view
    label_t = torch.from_numpy(labels.astype(bool)).to(lm.device)
    average_precision(scores[:, :64], label_t)  # warm-up
    # kernel runs interleaved with five slices of the sklearn loop, so both see the same load
    kernel_runs, kernel_cpu, loop_ap, loop_measured, loop_cpu = [], [], [], 0.0, 0.0
    for part in [*np.array_split(subset, 5), None]:
        start, cpu = time.perf_counter(), cpu_seconds()
        kernel_ap = average_precision(scores, label_t)
        sync(lm.device)
        kernel_runs.append(time.perf_counter() - start)
        kernel_cpu.append(cpu_seconds() - cpu)
        if part is not None:
            start, cpu = time.perf_counter(), cpu_seconds()
            loop_ap += [_single_response_ap(matrix[u], labels) for u in part]
            loop_measured += time.perf_counter() - start
            loop_cpu += cpu_seconds() - cpu
    kernel_ap = kernel_ap.cpu().numpy()
    loop_ap = np.array(loop_ap)
    ours_ap = np.load(Path(args.workdir) / f"ours_ap_{primary_mode(args)}.npy")[0]
    ours_ap = ours_ap.astype(np.float64)
    return {
        "reference_s_per_concept": float(
            np.mean([r["forward_s"] + r["ap_s"] for r in per_concept])
        ),
        "reference_cpu_s_per_concept": float(
            np.mean([r["forward_cpu_s"] + r["ap_cpu_s"] for r in per_concept])
        ),
        "reference_runs": per_concept,
        "reference_concept_count": len(per_concept),
        "reference_sentences": int(len(labels)),
        "sklearn_units": int(n_subset),
        "pool_workers": workers,
        "rss_after_load_mb": rss_loaded,
        "peak_rss_mb": rss_reference,
        "pool_worker_peak_rss_mb": children_rss,
        "kernel_s": float(np.median(kernel_runs)),
        "kernel_cpu_s": float(np.median(kernel_cpu)),
        "kernel_runs_s": kernel_runs,
        "sklearn_loop_s": loop_measured * n_units / n_subset,
        "sklearn_loop_cpu_s": loop_cpu * n_units / n_subset,
        "sklearn_loop_measured_s": loop_measured,
        "ap_max_abs_diff": float(np.abs(kernel_ap[subset] - loop_ap).max()),
        "pool_vs_loop_max_abs_diff": float(np.abs(ref_ap - loop_ap).max()),
        "reference_vs_ours_ap_max_abs_diff": float(np.abs(ref_ap - ours_ap[subset]).max()),
        "reference_vs_ours_ap_mean_abs_diff": float(np.abs(ref_ap - ours_ap[subset]).mean()),
        "kernel_concept": c,
    }
