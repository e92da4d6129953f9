"""Memory an expert job needs, estimated from the science of the run (model, shard, dtype).

    >>> from expertalign.resources import model_shape, expert_job_memory
    >>> shape = model_shape("EleutherAI/pythia-12b")        # units and parameters, no weights read
    >>> need = expert_job_memory(shape, n_concepts=12, n_positives=400, bank_rows=1100,
    ...                          device="cuda", dtype="bfloat16")
    >>> round(need.total_bytes / 2**30, 1), need.parts     # GiB, and what each part holds

An expert job (:func:`expertalign.extract.shard_expertise`) holds at its peak:

* ``weights``: parameters x bytes per value;
* ``responses``: the shard's unit-major response matrix, units x distinct sentences (the bank
  rows it uses plus every concept's positives) x bytes per value;
* ``bank``: the bank's rows sorted per unit, units x bank rows; on a GPU the gathered (unsorted)
  rows are kept too, to look up the rows a concept excludes, so twice that;
* ``concept``: one concept's positives gathered and sorted, units x positives (transient);
* ``sort``: on a GPU, one chunk of the bank being sorted (values, int64 indices and the
  contiguous copy; :data:`expertalign.ap._DEFAULT_CHUNK_ELEMENTS` elements);
* ``activations``: one token batch through the widest module (a few live copies);
* ``runtime``: a fixed allowance for the CUDA context and allocator slack on a GPU, or for the
  interpreter and libraries on a CPU.

Checked against measured peaks on the CPU at small shapes (``tests/test_resources.py``); on a
GPU the fixed allowance is an assumption until measured there.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from expertalign.atomic import atomic_path

log = logging.getLogger("expertalign")

__all__ = [
    "ModelShape",
    "JobMemory",
    "REFERENCE_CONFIGS",
    "model_shape",
    "shape_from_config",
    "shape_cache_dir",
    "expert_job_memory",
    "expert_job_runtime_minutes",
    "CausalWork",
    "causal_work",
    "causal_job_seconds",
    "causal_job_runtime_minutes",
    "DECODE_BYTES_PER_SECOND",
    "PAPER_SENTENCES_PER_CONCEPT",
    "host_memory_mb",
    "published_seconds_per_concept",
]

_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}
_SORT_CHUNK_ELEMENTS = 1 << 26  # expertalign.ap._DEFAULT_CHUNK_ELEMENTS, without importing torch
_GPU_RUNTIME_BYTES = 2 * 2**30
_CPU_RUNTIME_BYTES = 1 * 2**30
_LIVE_ACTIVATION_COPIES = 6

# Architecture of the reference models, so that a plan can be sized before any model is
# fetched (the values of their config.json files on the Hugging Face Hub).
_PYTHIA = {"model_type": "gpt_neox", "vocab_size": 50304}
REFERENCE_CONFIGS: dict[str, dict] = {
    "EleutherAI/pythia-70m": {
        **_PYTHIA,
        "hidden_size": 512,
        "num_hidden_layers": 6,
        "num_attention_heads": 8,
        "intermediate_size": 2048,
    },
    "EleutherAI/pythia-160m": {
        **_PYTHIA,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
    },
    "EleutherAI/pythia-410m": {
        **_PYTHIA,
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
    },
    "EleutherAI/pythia-1b": {
        **_PYTHIA,
        "hidden_size": 2048,
        "num_hidden_layers": 16,
        "num_attention_heads": 8,
        "intermediate_size": 8192,
    },
    "EleutherAI/pythia-1.4b": {
        **_PYTHIA,
        "hidden_size": 2048,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 8192,
    },
    "EleutherAI/pythia-2.8b": {
        **_PYTHIA,
        "hidden_size": 2560,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "intermediate_size": 10240,
    },
    "EleutherAI/pythia-6.9b": {
        **_PYTHIA,
        "vocab_size": 50432,
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "intermediate_size": 16384,
    },
    "EleutherAI/pythia-12b": {
        **_PYTHIA,
        "vocab_size": 50688,
        "hidden_size": 5120,
        "num_hidden_layers": 36,
        "num_attention_heads": 40,
        "intermediate_size": 20480,
    },
    "gpt2": {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "vocab_size": 50257},
    # the paper's generator (sentences.generator in config/paper.yaml): its GPU-hours and cache
    "mistralai/Mistral-7B-Instruct-v0.2": {
        "model_type": "mistral",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "intermediate_size": 14336,
        "vocab_size": 32000,
    },
    "embedded": {
        "model_type": "llama",
        "hidden_size": 576,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "intermediate_size": 1536,
        "vocab_size": 49152,
        "tie_word_embeddings": True,
    },
}
REFERENCE_CONFIGS["openai-community/gpt2"] = REFERENCE_CONFIGS["gpt2"]


@dataclass(frozen=True)
class ModelShape:
    n_units: int
    n_parameters: int
    #: widest recorded module output per token (the activations' width)
    widest: int


@dataclass(frozen=True)
class JobMemory:
    parts: dict[str, int]

    @property
    def total_bytes(self) -> int:
        return sum(self.parts.values())

    @property
    def total_mb(self) -> int:
        return -(-self.total_bytes // 10**6)

    def describe(self) -> str:
        shown = ", ".join(f"{k} {v / 2**30:.2f}" for k, v in self.parts.items())
        return f"{self.total_bytes / 2**30:.2f} GiB ({shown} GiB)"


def shape_from_config(config) -> ModelShape:
    """Units and parameters of a transformers config, from a skeleton on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    from expertalign.units import find_units

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    layout = find_units(skeleton)
    n_parameters = sum(p.numel() for p in skeleton.parameters())
    widest = max(module.width for module in layout.modules)
    return ModelShape(layout.n_units, n_parameters, widest)


def model_shape(source: str, revision: str | None = None) -> ModelShape:
    """The shape of a configured model: from its config in the local cache or folder, else from
    :data:`REFERENCE_CONFIGS`. Raises ``ValueError`` naming the source if neither knows it.

    Building the skeleton imports transformers and takes seconds, and the workflow asks for
    every model's shape whenever it loads (each dry run, each SLURM job's start), so a shape is
    kept in :func:`shape_cache_dir` under a key made of the model's config, the transformers
    version and this package's unit-counting code; any change to one of them computes it anew.
    """
    description = _config_description(source, revision)
    cached = _shape_cache_file(description) if description is not None else None
    if cached is not None:
        try:
            return ModelShape(**json.loads(cached.read_text()))
        except (OSError, ValueError, TypeError):
            pass  # absent, or unreadable: computed below and written again
    shape = _model_shape_uncached(source, revision)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cached) as tmp:
                tmp.write_text(json.dumps(dataclasses.asdict(shape)))
        except OSError as err:  # a read-only home costs time, not correctness
            log.debug("model shape of %s not cached in %s: %s", source, cached.parent, err)
    return shape


def shape_cache_dir() -> Path:
    """Where computed model shapes are kept: ``$EXPERTALIGN_CACHE_DIR/model-shapes``, else
    ``$XDG_CACHE_HOME/expertalign/model-shapes`` (``~/.cache`` by default)."""
    root = os.environ.get("EXPERTALIGN_CACHE_DIR")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(xdg) / "expertalign"
    return Path(root) / "model-shapes"


def _config_description(source: str, revision: str | None) -> dict | None:
    """The model's config as a plain dict, read without transformers (a reference config, a
    local folder's or the Hub cache's config.json), or None where only transformers can say."""
    if source in REFERENCE_CONFIGS:
        return {"reference": REFERENCE_CONFIGS[source]}
    folder = Path(source)
    path: Path | str | None = folder / "config.json" if folder.is_dir() else None
    if path is None:
        from huggingface_hub import try_to_load_from_cache

        try:
            path = try_to_load_from_cache(source, "config.json", revision=revision)
        except ValueError:  # not a repository id
            return None
    if not isinstance(path, (str, Path)):
        return None
    try:
        return {"config.json": json.loads(Path(path).read_text())}
    except (OSError, ValueError):
        return None


def _shape_cache_file(description: dict) -> Path:
    import importlib.metadata

    here = Path(__file__).parent
    code = b"".join((here / name).read_bytes() for name in ("resources.py", "units.py"))
    try:
        transformers_version = importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        transformers_version = "none"
    key = hashlib.sha256(
        json.dumps([description, transformers_version], sort_keys=True).encode()
        + hashlib.sha256(code).digest()
    ).hexdigest()
    return shape_cache_dir() / f"{key[:32]}.json"


def _model_shape_uncached(source: str, revision: str | None) -> ModelShape:
    from transformers import AutoConfig

    if source in REFERENCE_CONFIGS:
        values = dict(REFERENCE_CONFIGS[source])
        return shape_from_config(AutoConfig.for_model(values.pop("model_type"), **values))
    try:
        kwargs = {"revision": revision} if revision else {}
        config = AutoConfig.from_pretrained(source, local_files_only=True, **kwargs)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"model {source!r}: its config is neither in the local cache nor among the reference "
            f"models, so its memory cannot be estimated; fetch it first (expertalign prefetch "
            f"{source}) or give the rule's resources by hand ({err})"
        ) from err
    return shape_from_config(config)


def expert_job_memory(
    shape: ModelShape,
    *,
    n_concepts: int,
    n_positives: int,
    bank_rows: int,
    device: str = "cuda",
    dtype: str = "bfloat16",
    max_tokens: int = 4096,
) -> JobMemory:
    """Peak memory of one expert job, by part (see the module docstring)."""
    if dtype not in _BYTES:
        raise ValueError(f"dtype must be one of {sorted(_BYTES)}, got {dtype!r}")
    width = _BYTES[dtype]
    gpu = device != "cpu"
    sentences = bank_rows + n_concepts * n_positives
    parts = {
        "weights": shape.n_parameters * width,
        "responses": shape.n_units * sentences * width,
        "bank": shape.n_units * bank_rows * width * (2 if gpu else 1),
        "concept": shape.n_units * n_positives * width,
        "sort": min(_SORT_CHUNK_ELEMENTS, shape.n_units * bank_rows) * (2 * width + 8)
        if gpu
        else 0,
        "activations": max_tokens * shape.widest * width * _LIVE_ACTIVATION_COPIES,
        "runtime": _GPU_RUNTIME_BYTES if gpu else _CPU_RUNTIME_BYTES,
    }
    return JobMemory(parts)


# The paper's measured cost per concept on an A100 (seconds), by parameter count.
_PUBLISHED_SECONDS_PER_CONCEPT = ((70e6, 8.0), (1.0e9, 27.0), (12e9, 136.0))


def published_seconds_per_concept(n_parameters: int) -> float:
    """The paper's A100 cost per concept, interpolated log-log in the parameter count (and
    extrapolated along the nearest segment outside 70m-12b)."""
    import math

    points = [(math.log(p), math.log(s)) for p, s in _PUBLISHED_SECONDS_PER_CONCEPT]
    x = math.log(max(n_parameters, 1))
    (x0, y0), (x1, y1) = points[:2] if x < points[1][0] else points[1:]
    return math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0))


def expert_job_runtime_minutes(shape: ModelShape, n_concepts: int, margin: float = 3.0) -> int:
    """Wall-time limit of an expert job: loading the weights (at a conservative 200 MB/s from a
    shared file system) plus ``margin`` times the paper's own per-concept cost, at least 15 min."""
    load_s = shape.n_parameters * 2 / 200e6
    compute_s = margin * n_concepts * published_seconds_per_concept(shape.n_parameters)
    return max(15, -(-int(load_s + compute_s) // 60) + 5)


# The paper's sentences per concept behind its App. K costs (400 positives, 1,000 negatives).
PAPER_SENTENCES_PER_CONCEPT = 400 + 1000
# Effective bytes of weights per second a sampling step reads on an A100 (about half of its
# 2 TB/s HBM bandwidth; an assumption until a site's benchmark replaces it).
DECODE_BYTES_PER_SECOND = 1.0e12


@dataclass(frozen=True)
class CausalWork:
    """The forward passes of one causal job (:func:`expertalign.jobs.causal.causal`):
    ``recorded`` sentences run with every unit recorded (its concepts' selection positives and
    the negative bank), ``scored`` sentences whose token NLL is computed (held-out and neutral
    sentences per unit set and draw, the cross-concept matrix, the continuations), and
    ``decode_steps`` sampling steps (each one forward pass of one prompt's seeds)."""

    recorded: int
    scored: int
    decode_steps: int


def causal_work(
    settings: dict,
    *,
    n_part: int,
    n_concepts: int,
    n_positives: int,
    bank_rows: int,
    n_units: int,
    n_prompts: int,
) -> CausalWork:
    """What one causal job of ``n_part`` concepts (out of the check's ``n_concepts``) runs, at
    ``settings`` (:meth:`expertalign.plan.Campaign.causal_settings`), concepts of
    ``n_positives`` distinct positives, a bank of ``bank_rows``, a model of ``n_units`` and a
    prompt file of ``n_prompts`` lines. An upper bound: skipped concepts and empty sets count."""
    n_test = min(max(int(settings["test_fraction"] * n_positives + 0.5), 1), n_positives - 1)
    n_k_sets = len([k for k in settings["k"] if k <= n_units])
    n_sets = n_k_sets + len(settings["taus"])
    draws = 1 + settings["n_random"]
    forced = {"all": n_sets, "k": n_k_sets, "judged": 1, "none": 0}[settings["forcing"]]
    generations = 1 + forced * draws if forced else 0  # the unmodified model's too
    prompts = min(n_prompts, settings.get("n_prompts") or n_prompts)
    per_concept = (
        (1 + n_sets * draws) * (n_test + settings["n_neutral"])  # base and every set and draw
        + n_concepts * n_test  # its experts ablated, every concept's word scored
        + generations * prompts * settings["n_seeds"]  # continuations scored
    )
    return CausalWork(
        recorded=n_part * (n_positives - n_test) + bank_rows,
        scored=n_part * per_concept + n_concepts * n_test,  # every concept's unmodified NLL
        decode_steps=n_part * generations * prompts * settings["max_new_tokens"],
    )


def causal_job_seconds(shape: ModelShape, work: CausalWork) -> float:
    """GPU seconds of a causal job on an A100 at the paper's rate: every sentence (recorded or
    scored) at the App. K cost per sentence of an expert job (conservative: scoring records no
    unit), every sampling step reading the weights once at :data:`DECODE_BYTES_PER_SECOND`."""
    per_sentence = published_seconds_per_concept(shape.n_parameters) / PAPER_SENTENCES_PER_CONCEPT
    decode = work.decode_steps * shape.n_parameters * 2 / DECODE_BYTES_PER_SECOND
    return (work.recorded + work.scored) * per_sentence + decode


def causal_job_runtime_minutes(shape: ModelShape, work: CausalWork, margin: float = 3.0) -> int:
    """Wall-time limit of a causal job, as for an expert job: loading the weights at 200 MB/s
    plus ``margin`` times :func:`causal_job_seconds`, at least 15 min."""
    load_s = shape.n_parameters * 2 / 200e6
    compute_s = margin * causal_job_seconds(shape, work)
    return max(15, -(-int(load_s + compute_s) // 60) + 5)


def host_memory_mb(gpu_need: JobMemory) -> int:
    """Host memory of a GPU expert job: the weights pass through host memory while loading, and
    the AP results come back; 4 GB more for the interpreter, libraries and tokenised text."""
    return -(-(gpu_need.parts["weights"] + 4 * 10**9) // 10**6)
