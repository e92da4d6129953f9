"""Measuring tools of the benchmark: the model, time and memory, the floor's bare forward.

    >>> from measure import build_model, setup, bare_forward, cpu_seconds, peak_rss_mb
    >>> lm, layout, (concepts, positives, bank_ids, bank_texts) = setup(args, "shared")
    >>> cpu = cpu_seconds()
    >>> bare_forward(lm, positives[concepts[0]], max_tokens=4096, max_length=128)
    >>> print(cpu_seconds() - cpu, peak_rss_mb())

``args`` are the parsed arguments of ``bench/benchmark.py`` (``--model``, ``--model-shape``,
``--device``, ``--threads``, the shard sizes). torch and numba are imported only when needed, so
the orchestrating process stays light.
"""

from __future__ import annotations

import os
import resource

from corpus import primary_mode, shard_of

#: random GPT-NeoX shapes of ``--model-shape``; Pythia-12b's sizes (its vocabulary padded to
#: 50688, as in the released checkpoints)
SHAPES = {
    "pythia-12b": dict(
        hidden_size=5120, num_hidden_layers=36, num_attention_heads=40, intermediate_size=20480
    ),
    "tiny-neox": dict(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256
    ),
}


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


def threads() -> dict:
    """Threads torch and numba use, and the machine's CPUs."""
    import numba
    import torch

    return {
        "torch_threads": torch.get_num_threads(),
        "numba_threads": numba.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }


def build_model(args):
    """The embedded (or a given) model, or a random GPT-NeoX of a named shape made on the
    device."""
    import torch

    from expertalign.models import LoadedModel, embedded_model_dir, load_model, resolve_device

    device = resolve_device(args.device)
    if not args.model_shape:
        return load_model(args.model, device=str(device))
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPTNeoXConfig

    config = GPTNeoXConfig(
        vocab_size=50688,
        max_position_embeddings=2048,
        use_parallel_residual=True,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "partial_rotary_factor": 0.25,
        },
        **SHAPES[args.model_shape],
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
    """Threads set, the model loaded, its units found, and the shard of ``mode`` (default: the
    primary mode): ``lm, layout, (concepts, positives, bank_ids, bank_texts)``."""
    import numba
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    from expertalign.units import find_units

    lm = build_model(args)
    layout = find_units(lm.model)
    return lm, layout, shard_of(args, mode or primary_mode(args))


def bare_forward(lm, texts, max_tokens, max_length) -> None:
    """The floor: the base model over ``texts``, batched and padded exactly as ours, no hooks."""
    import torch

    from expertalign.responses import token_batches, tokenize_sentences

    ids, _ = tokenize_sentences(lm.tokenizer, texts, max_length)
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
            base(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                position_ids=positions.to(device),
                use_cache=False,
            )
    sync(device)


def token_counts(lm, positives, concepts, bank_texts, max_length) -> dict:
    """Tokens of the positives and of the bank sentences that are no positive, and the mean."""
    from expertalign.responses import tokenize_sentences

    pos = [
        len(x)
        for c in concepts
        for x in tokenize_sentences(lm.tokenizer, positives[c], max_length)[0]
    ]
    seen = set(t for c in concepts for t in positives[c])
    bank_only = [t for t in dict.fromkeys(bank_texts) if t not in seen]
    bank = [len(x) for x in tokenize_sentences(lm.tokenizer, bank_only, max_length)[0]]
    return {
        "mean_tokens": (sum(pos) + sum(bank)) / (len(pos) + len(bank)),
        "positive_tokens": sum(pos),
        "bank_only_tokens": sum(bank),
    }
