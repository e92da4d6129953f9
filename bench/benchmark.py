"""Seconds per concept: expertalign's shard job vs the published finding-experts pipeline vs the floor.

    .venv/bin/python bench/benchmark.py                  # embedded model, 12 concepts x 400 / 1000
    .venv/bin/python bench/benchmark.py --quick          # small run (40 / 100, 2 concepts)
    .venv/bin/python bench/benchmark.py --quick --model-shape tiny-neox   # seconds; what the test runs
    .venv/bin/python bench/benchmark.py --device cuda --model-shape pythia-12b  # on a GPU
    .venv/bin/python bench/benchmark.py --mode per_concept --pool 1250   # one negatives mode only

Measured side by side, on one machine, model and set of sentences:

1. **ours** — ``expertalign.extract.shard_expertise``, the workflow's code path: one shard job with the
   model loaded, every distinct sentence run once, the shared negative bank sorted once. Seconds
   per concept = total shard seconds / concepts; the breakdown (forward, bank sort, AP) comes from
   the function's own timings. Measured in each negatives mode (``--mode``, default both):
   ``shared`` (a bank of ``--negatives`` other sentences, every concept takes the first
   ``--negatives`` not its own) and ``per_concept`` (a pool of ``--pool`` other sentences, each
   concept takes its own seeded sample of ``--negatives``); both pick their negatives with
   ``expertalign.negatives.negative_rows``, as the workflow does.
2. **reference** — the published finding-experts design (apple/ml-selfcond ``compute_responses.py``
   + ``compute_expertise.py``), written here: per concept, its positives and negatives padded to a
   fixed 128 tokens, run through the model in batches of 30 (the published default), forward hooks
   max-pooling every unit of the same modules over the non-padding tokens, then
   ``sklearn.metrics.average_precision_score`` per unit in a ``multiprocessing.Pool`` with one
   worker per core. Favours to it, so its numbers are a lower bound: only the base model runs (the
   published code loads ``AutoModelForPreTraining`` and computes the LM head's logits too;
   ``--reference-lm-head`` does that), pooling runs on the model's device inside the hook (the
   original copies whole activations to NumPy first), and the pickle round-trip to disk between
   the two scripts is skipped. If ``--sklearn-units`` is below the unit count, the pool's AP time
   is measured on that fixed random subset of units and scaled linearly (printed as such).
3. **floor** — the bare base-model forward over each concept's positives, no hooks, batched as ours.
4. **kernel** — ``expertalign.ap.average_precision`` on the reference's response matrix of one
   concept vs the per-unit sklearn loop (one process) on the same matrix, with the max |difference|.

Each of 1-2 runs in its own process, so each reports its own peak RSS (``ru_maxrss``). Sentences
are synthesised deterministically from templates and word lists (no data needed). The last line
printed is one JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

# ----------------------------------------------------------------------------- sentences

CONCEPTS = [
    "cat", "river", "guitar", "doctor", "bread", "mountain", "train", "garden", "computer",
    "ocean", "teacher", "horse", "coffee", "church", "winter", "football",
]
_NOUNS = [
    "committee", "bridge", "printer", "violin", "tractor", "museum", "senator", "recipe",
    "laptop", "harbour", "factory", "lawyer", "bicycle", "volcano", "library", "orchestra",
    "airport", "budget", "engine", "newspaper", "tomato", "umbrella", "hospital", "jacket",
    "pilot", "festival", "carpet", "telescope", "wallet", "kitchen", "village", "theatre",
    "ladder", "battery", "farmer", "painting", "helmet", "candle", "mirror", "highway",
    "student", "island", "camera", "blanket", "bakery", "castle", "rocket", "sandwich",
]
_ADJS = [
    "old", "new", "small", "enormous", "quiet", "noisy", "famous", "ordinary", "beautiful",
    "strange", "local", "expensive", "cheap", "broken", "bright", "dusty", "friendly",
    "mysterious", "familiar", "modern", "ancient", "tiny", "heavy", "colourful", "elegant",
]
_PLACES = [
    "the town square", "the edge of the forest", "the train station", "a crowded market",
    "the back of the house", "the city centre", "a small village in the north", "the harbour",
    "the university campus", "the old factory", "the top of the hill", "the public library",
]
_TIMES = [
    "last Tuesday", "every morning", "during the long summer holidays", "late at night",
    "before the storm arrived", "on a cold afternoon in January", "after the meeting",
    "at the end of the year", "once a week", "just before sunrise", "for several hours",
]
_PEOPLE = [
    "My grandmother", "The mayor", "A young engineer", "Our neighbour", "The new manager",
    "A tired student", "My older brother", "The journalist", "A local farmer", "The nurse",
]
_VERBS = [
    "appeared", "was spotted", "stood", "remained", "was left", "was found", "waited",
    "was photographed", "was discussed", "became famous",
]
_TEMPLATES = [
    "The {adj} {noun} {verb} near {place} {time}.",
    "{person} said that the {noun} {verb} near {place} {time}.",
    "Yesterday, {lperson} noticed {a_adj} {noun} at {place} and could not stop talking about it.",
    "Have you ever seen {a_noun} as {adj} as the one at {place}?",
    "{person} wrote a long article about the {adj} {noun} that {verb} {time}.",
    "According to the report, the {noun} at {place} is more {adj} than anyone expected.",
    "When the weather changed {time}, the {adj} {noun} {verb} for a while.",
    "Nobody at {place} could explain why the {noun} looked so {adj} {time}.",
    "{person} bought {a_adj} {noun} {time} and told everyone at {place}.",
    "In the story, {a_adj} {noun} {verb} at {place} and changed the life of the whole family.",
]


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def make_sentences(word: str | None, n: int, seed: int, exclude=frozenset()) -> list[str]:
    """``n`` distinct English sentences of ~10-25 tokens from templates x word lists; each contains
    ``word`` if given, else a noun from a list that avoids ``exclude``. Deterministic."""
    rng = random.Random(f"{seed}:{word}")
    nouns = [x for x in _NOUNS if x not in exclude]
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        person = rng.choice(_PEOPLE)
        adj = rng.choice(_ADJS)
        noun = word or rng.choice(nouns)
        text = rng.choice(_TEMPLATES).format(
            adj=adj, a_adj=_a(adj), noun=noun, a_noun=_a(noun), verb=rng.choice(_VERBS),
            place=rng.choice(_PLACES), time=rng.choice(_TIMES), person=person,
            lperson=person[0].lower() + person[1:],
        )
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def make_shard(n_concepts: int, n_pos: int, n_neg: int, own: int, seed: int):
    """Concepts' positives, and a bank of ``n_neg`` other sentences plus ``own`` of each concept's
    positives, shuffled: a concept's negatives are bank rows not its own (``concept_negatives``)."""
    if n_concepts > len(CONCEPTS):
        raise SystemExit(f"at most {len(CONCEPTS)} concepts")
    concepts = CONCEPTS[:n_concepts]
    positives = {c: make_sentences(c, n_pos, seed) for c in concepts}
    bank = [(f"other:{i:05d}", t) for i, t in enumerate(make_sentences(None, n_neg, seed, set(CONCEPTS)))]
    for c in concepts:
        bank += [(f"{c}:{i:04d}", positives[c][i]) for i in range(min(own, n_pos))]
    random.Random(seed).shuffle(bank)
    return concepts, positives, [i for i, _ in bank], [t for _, t in bank]


MODES = ("shared", "per_concept")


def own_ids(bank_ids, concept) -> set[str]:
    return {i for i in bank_ids if i.startswith(f"{concept}:")}


def concept_negatives(bank_ids, bank_texts, concept, positives, n_neg, mode, seed):
    """The concept's negatives exactly as ``shard_expertise`` picks them (for the reference)."""
    from expertalign.negatives import negative_rows

    keep, _ = negative_rows(bank_ids, bank_texts, own_ids(bank_ids, concept), set(positives),
                            n_neg, concept, mode=mode, seed=seed)
    return [bank_texts[row] for row in keep]


def modes_of(args) -> list[str]:
    return list(MODES) if args.mode == "both" else [args.mode]


def primary_mode(args) -> str:
    """The mode the reference and the top-level JSON keys use: per_concept when both run."""
    return "per_concept" if args.mode in ("both", "per_concept") else "shared"


# ----------------------------------------------------------------------------- measurement helpers

def peak_rss_mb(who=resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def cpu_seconds(children: bool = False) -> float:
    """User + system CPU seconds of this process (all threads), plus waited-for children."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    total = usage.ru_utime + usage.ru_stime
    if children:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        total += usage.ru_utime + usage.ru_stime
    return total


def current_rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_model(args):
    """The embedded (or a given) model, or a random GPT-NeoX of a named shape made on the device."""
    import torch

    from expertalign.models import LoadedModel, embedded_model_dir, load_model, resolve_device

    device = resolve_device(args.device)
    if not args.model_shape:
        return load_model(args.model, device=str(device))
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPTNeoXConfig

    shapes = {
        # Pythia-12b's sizes (its vocabulary padded to 50688, as in the released checkpoints)
        "pythia-12b": dict(hidden_size=5120, num_hidden_layers=36, num_attention_heads=40,
                           intermediate_size=20480),
        "tiny-neox": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=256),
    }
    config = GPTNeoXConfig(
        vocab_size=50688, max_position_embeddings=2048, use_parallel_residual=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                         "partial_rotary_factor": 0.25},
        **shapes[args.model_shape],
    )
    # bf16 on GPUs (as the workflow runs big models), fp32 on CPU (exact ranking, fast kernels)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(args.seed)
    with torch.device(device):  # parameters are created and initialised on the device
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.eval()
    # Any tokenizer whose ids fit the vocabulary will do for random weights: the embedded one
    # (49152 ids) is available offline.
    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_dir()))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model, tokenizer, f"random {args.model_shape}", None, random_init=True)


def setup(args, mode=None):
    import numba
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    from expertalign.units import find_units

    lm = build_model(args)
    layout = find_units(lm.model)
    return lm, layout, shard_of(args, mode or primary_mode(args))


def shard_of(args, mode: str):
    """The shard of ``mode``: shared - a bank of ``--negatives`` other sentences; per_concept - a
    pool of ``--pool`` (plus each concept's ``--own`` in both)."""
    n_other = args.pool if mode == "per_concept" else args.negatives
    return make_shard(args.concepts, args.positives, n_other, args.own, args.seed)


def bare_forward(lm, texts, max_tokens, max_length) -> None:
    """The floor: the base model over ``texts``, batched and padded exactly as ours, no hooks."""
    import torch

    from expertalign.responses import _tokenize, token_batches

    ids, _ = _tokenize(lm.tokenizer, texts, max_length)
    pad_id = lm.tokenizer.pad_token_id or 0
    base = getattr(lm.model, "base_model", lm.model)
    device = lm.device
    with torch.inference_mode():
        for batch in token_batches([len(x) for x in ids], max_tokens):
            longest = max(len(ids[i]) for i in batch)
            input_ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), longest), dtype=torch.long)
            for row, index in enumerate(batch):
                input_ids[row, : len(ids[index])] = torch.tensor(ids[index])
                attention[row, : len(ids[index])] = 1
            positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
            base(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                 position_ids=positions.to(device), use_cache=False)
    sync(device)


# ----------------------------------------------------------------------------- phase: ours + floor

def phase_ours(args) -> dict:
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
            mode_ids, mode_texts,
        )
    options = dict(max_tokens=args.max_tokens, max_length=args.max_length)
    # warm-up: compiled kernels load, allocator and thread pools start (not timed)
    warm = [ConceptSentences(concepts[0], positives[concepts[0]][:3], own_ids(bank_ids, concepts[0]))]
    warm_bank = [(i, t) for i, t in zip(bank_ids, bank_texts) if not i.startswith(f"{concepts[0]}:")][:8]
    shard_expertise(lm, layout, warm, [i for i, _ in warm_bank], [t for _, t in warm_bank], 5,
                    **options)
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
            result = shard_expertise(lm, layout, shard, mode_ids, mode_texts, args.negatives,
                                     negatives_mode=mode, negatives_seed=args.seed, **options)
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
            **_token_counts(lm, positives, concepts, mode_texts[: int(timings["bank_rows"])],
                            args.max_length),
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
        **_threads(),
    }
    if lm.device.type == "cuda":
        out["gpu_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _token_counts(lm, positives, concepts, bank_texts, max_length) -> dict:
    from expertalign.responses import _tokenize

    pos = [len(x) for c in concepts for x in _tokenize(lm.tokenizer, positives[c], max_length)[0]]
    seen = set(t for c in concepts for t in positives[c])
    bank = [len(x) for x in _tokenize(lm.tokenizer, [t for t in dict.fromkeys(bank_texts)
                                                      if t not in seen], max_length)[0]]
    return {
        "mean_tokens": (sum(pos) + sum(bank)) / (len(pos) + len(bank)),
        "positive_tokens": sum(pos),
        "bank_only_tokens": sum(bank),
    }


def _threads() -> dict:
    import numba
    import torch

    return {"torch_threads": torch.get_num_threads(), "numba_threads": numba.get_num_threads(),
            "cpu_count": os.cpu_count()}


# ----------------------------------------------------------------------------- phase: reference

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
                enc = tokenizer(texts[start : start + batch_size], padding="max_length",
                                max_length=seq_len, truncation=True, return_tensors="pt")
                state["mask"] = enc["attention_mask"].bool().unsqueeze(-1).to(device)
                state["rows"] = slice(start, start + len(enc["input_ids"]))
                model(input_ids=enc["input_ids"].to(device),
                      attention_mask=enc["attention_mask"].to(device))
    finally:
        for h in handles:
            h.remove()
    sync(device)
    return {name: values.transpose() for name, values in store.items()}  # [units, sentences] views


def phase_reference(args) -> dict:
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
        negatives = concept_negatives(bank_ids, bank_texts, c, positives[c], args.negatives,
                                      primary_mode(args), args.seed)
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
        per_concept.append({
            "forward_s": forward, "forward_cpu_s": forward_cpu,
            "ap_s": pool_start + mapped * scale, "ap_cpu_s": ap_cpu * scale,
            "ap_measured_s": mapped, "pool_start_s": pool_start,
        })
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
        "reference_s_per_concept": float(np.mean([r["forward_s"] + r["ap_s"] for r in per_concept])),
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


# ----------------------------------------------------------------------------- orchestration

def _run_phase(name: str, argv: list[str], workdir: str) -> dict:
    cmd = [sys.executable, __file__, "--phase", name, "--workdir", workdir, *argv]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small run: 40 positives, 100 negatives, 2 concepts, 2000 sklearn units")
    parser.add_argument("--model", default="embedded", help="embedded, a folder or a HF id")
    parser.add_argument("--model-shape", choices=["tiny-neox", "pythia-12b"],
                        help="a random GPT-NeoX of this shape instead of --model")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--positives", type=int, help="per concept (default 400, quick 40)")
    parser.add_argument("--negatives", type=int, help="per concept (default 1000, quick 100)")
    parser.add_argument("--mode", choices=[*MODES, "both"], default="both",
                        help="negatives mode(s) ours runs in (default both; the reference uses "
                        "per_concept's negatives unless --mode shared)")
    parser.add_argument("--pool", type=int, help="per_concept mode: other sentences in the pool "
                        "each concept samples its negatives from (default 1.25 x --negatives, as "
                        "config/paper.yaml: 1250 for 1000)")
    parser.add_argument("--concepts", type=int, help="concepts in the shard (default 12, the "
                        "shard size of config/paper.yaml; quick 2)")
    parser.add_argument("--own", type=int, help="bank sentences that are each concept's own "
                        "(excluded from its negatives; default 10, quick 4)")
    parser.add_argument("--reference-concepts", type=int, default=1,
                        help="concepts the reference runs (each costs the same; default 1)")
    parser.add_argument("--skip-reference", action="store_true",
                        help="measure only ours and the floor (e.g. a large shard); the "
                        "reference and kernel keys of the JSON are then null")
    parser.add_argument("--reference-lm-head", action="store_true",
                        help="the reference also computes the LM head's logits, as published")
    parser.add_argument("--sklearn-units", type=int,
                        help="units sklearn runs on, then scaled; 0 = all (default 20000, quick 2000)")
    parser.add_argument("--repeats", type=int, default=1, help="floor+ours repeats, best kept")
    parser.add_argument("--threads", type=int, default=0, help="torch/numba threads (0: default)")
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phase", choices=["ours", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    for key, full, small in (("positives", 400, 40), ("negatives", 1000, 100), ("concepts", 12, 2),
                             ("own", 10, 4), ("sklearn_units", 20000, 2000)):
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


def _mode_numbers(k: int, run: dict) -> dict:
    """Per-concept seconds of one mode's run; the bank runs in the same batches as the positives,
    so its share of the forward is estimated by tokens; "marginal" is what one more concept in
    the shard adds."""
    t = run["timings"]
    bank_share = run["bank_only_tokens"] / (run["bank_only_tokens"] + run["positive_tokens"])
    fixed = t["forward_s"] * bank_share + t["bank_sort_s"]
    marginal = (t["forward_s"] * (1 - bank_share) + t["ap_s"]) / k
    return {"pc": run["ours_total_s"] / k, "cpu": run["ours_total_cpu_s"] / k, "t": t,
            "marginal": marginal, "at16": (fixed + 16 * marginal) / 16}


def report(args, ours, ref, load_before, load_after, wall) -> None:
    k = args.concepts
    modes = list(ours["modes"])
    numbers = {mode: _mode_numbers(k, ours["modes"][mode]) for mode in modes}
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
            (f"  forward ({ref['reference_sentences']} sentences x 128 tokens"
             f"{', +LM head' if args.reference_lm_head else ''})",
             rr["forward_s"], rr["forward_cpu_s"]),
            (f"  sklearn AP, {ref['pool_workers']} workers"
             f"{' (extrapolated)' if extrapolated else ''}", rr["ap_s"], rr["ap_cpu_s"]),
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
        *[f"{label:<50}{wall_s:>9.2f}" + (f"{cpu_s:>9.1f}" if cpu_s is not None else "")
          for label, wall_s, cpu_s in rows],
        "",
    ]
    for mode in modes:
        n = numbers[mode]
        if ref:
            lines.append(f"reference / ours [{mode}]{'':<{11 - len(mode)}}{ref_pc / n['pc']:8.1f}x   "
                         f"(target >= 20; cpu seconds {ref_cpu / n['cpu']:.1f}x)")
        lines.append(
            f"ours / floor [{mode}]{'':<{11 - len(mode)}}{n['pc'] / floor_pc:8.2f}x   (target <= 1.3; "
            f"marginal concept {n['marginal'] / floor_pc:.2f}x, at 16 concepts "
            f"{n['at16'] / floor_pc:.2f}x; cpu seconds {n['cpu'] / floor_cpu:.2f}x)"
        )
    if ref:
        lines += [
            f"AP kernel                 {ref['kernel_s']:8.3f} s  (all {ours['n_units']:,} units, "
            f"{ref['reference_sentences']} sentences; median of 6 runs interleaved with the loop)",
            f"sklearn per-unit loop     {ref['sklearn_loop_s']:8.1f} s  "
            + (f"(extrapolated from {ref['sklearn_units']:,} units: "
               f"{ref['sklearn_loop_measured_s']:.1f} s)" if extrapolated else "(all units)"),
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
        + (f", reference {ref['peak_rss_mb']:,.0f} MB (+ pool workers up to "
           f"{ref['pool_worker_peak_rss_mb']:,.0f} MB each)" if ref else ""),
    ]
    if "gpu_peak_mb" in ours:
        lines.append(f"GPU peak allocated (ours): {ours['gpu_peak_mb']:,.0f} MB")
    if ref and ref["reference_concept_count"] < k:
        lines.append(f"reference measured on {ref['reference_concept_count']} of {k} concepts "
                     "(its cost per concept is the same for every concept)")
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
        summary.update({
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
        })
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
