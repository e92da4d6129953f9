"""Fetching models into the Hugging Face cache, and checking they arrived.

    >>> from expertalign.fetch import prefetch
    >>> [item.describe() for item in prefetch([("EleutherAI/pythia-70m", "step512")])]

Which models a config loads is :func:`expertalign.paths.config_models`; the workflow's
``prefetch`` rule and ``expertalign prefetch --configfile`` both fetch that list: every
configured (model, revision), the generator (transformers backend) and the pilot's model.
:func:`prefetch` downloads only what transformers loads (config,
tokenizer, one copy of the weights: safetensors, else pytorch ``.bin`` for revisions that have
only those) and raises :class:`~expertalign.models.ModelNotFoundError` naming the model, the
revision and the missing files unless all of them arrived, so a marker is never written for a
model that compute nodes (offline) could not load. A gated model (e.g. Mistral-7B-Instruct) that
this machine may not download raises :class:`~expertalign.models.ModelAccessError` saying how to
log in and where to accept its terms.

The workflow's prefetch job names the config key of a model that failed (:func:`config_keys`,
:func:`naming_config_keys`):

    >>> raise naming_config_keys(err, snakemake.config, source) from None
    ModelNotFoundError: config key models[0].source: prefetch EleutherAI/pythia-70mm@main: …
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from expertalign import paths

if TYPE_CHECKING:
    from expertalign.models import ModelNotFoundError

__all__ = [
    "FetchedModel",
    "config_keys",
    "naming_config_keys",
    "PREFETCH_PATTERNS",
    "PREFETCH_IGNORE",
    "PREFETCH_BIN_PATTERNS",
    "missing_files",
    "prefetch",
    "weight_files",
]

# What loading needs: configs, safetensors weights, tokenizer files and chat templates. Never
# code (*.py: trust_remote_code is never used) nor the duplicate pickled weights (*.bin, ...);
# only transformers' own safetensors names (model.safetensors, model-0000k-of-0000n.safetensors):
# some repos also hold a second full copy for other runtimes (e.g. consolidated.safetensors).
PREFETCH_PATTERNS = ["*.json", "model*.safetensors", "*.model", "*.txt", "*.jinja", "tokenizer*"]
PREFETCH_IGNORE = [
    "*.py",
    "*.pyc",
    "*.bin",
    "*.pt",
    "*.pth",
    "*.ckpt",
    "*.h5",
    "*.msgpack",
    "*.onnx",
    "*.gguf",
]
# Fetched only for a revision without safetensors weights (older checkpoints have only these).
PREFETCH_BIN_PATTERNS = ["pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*.bin"]

# (single file, index of shards) per format, in the order transformers looks for them.
_WEIGHT_FORMATS = (
    ("model.safetensors", "model.safetensors.index.json"),
    ("pytorch_model.bin", "pytorch_model.bin.index.json"),
)


@dataclass(frozen=True)
class FetchedModel:
    """A model that is in the cache with everything loading needs."""

    source: str
    revision: str
    folder: str
    weights: tuple[str, ...]

    def describe(self) -> str:
        return f"{self.source}@{self.revision}: {', '.join(self.weights)} in {self.folder}"

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "weights": list(self.weights)})


def _nonempty(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0  # is_file follows the cache's symlinks


def weight_files(folder: str | Path) -> tuple[list[str], list[str]]:
    """(weight files found, weight files missing) of a model folder, as transformers reads it:
    ``model.safetensors``, or the shards its index lists, else the same for pytorch ``.bin``.
    Nothing found and nothing missing means the folder has no weights at all."""
    folder = Path(folder)
    for single, index in _WEIGHT_FORMATS:
        if _nonempty(folder / single):
            return [single], []
        if (folder / index).is_file():
            shards = sorted(set(json.loads((folder / index).read_text())["weight_map"].values()))
            missing = [shard for shard in shards if not _nonempty(folder / shard)]
            return (
                ([index, *shards], [])
                if not missing
                else ([], [f"{m} (listed in {index})" for m in missing])
            )
    return [], []


def missing_files(folder: str | Path) -> list[str]:
    """What loading needs that ``folder`` lacks: config.json, a tokenizer, the weights."""
    from expertalign.models import TOKENIZER_FILES

    folder = Path(folder)
    missing = [] if (folder / "config.json").is_file() else ["config.json"]
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        missing.append(f"a tokenizer (one of {', '.join(TOKENIZER_FILES)})")
    found, absent = weight_files(folder)
    if absent:
        missing += absent
    elif not found:
        missing.append(
            "weights (model.safetensors, model-*-of-*.safetensors with "
            "model.safetensors.index.json, or pytorch_model*.bin)"
        )
    return missing


def _download(source: str, revision: str) -> Path:
    """Snapshot folder of (source, revision) in the cache: safetensors, else ``.bin`` weights."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import (
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from expertalign.models import ModelNotFoundError, error_line, hub_access_error

    hub_revision = paths.hub_revision(revision)
    try:
        folder = Path(
            snapshot_download(
                source,
                revision=hub_revision,
                allow_patterns=PREFETCH_PATTERNS,
                ignore_patterns=PREFETCH_IGNORE,
            )
        )
        if not weight_files(folder)[0] and not (folder / _WEIGHT_FORMATS[0][1]).is_file():
            folder = Path(
                snapshot_download(
                    source, revision=hub_revision, allow_patterns=PREFETCH_BIN_PATTERNS
                )
            )
    except OSError as err:  # the hub's HTTP errors are OSErrors
        # Raised ``from None``: the Hub's own chain (connection, HTTP, cache lookup) adds three or
        # four tracebacks of library frames; the message keeps the Hub's first line.
        access = hub_access_error(err, source, hub_revision)
        if access is not None:
            raise access from None
        if isinstance(err, RevisionNotFoundError):
            raise ModelNotFoundError(
                f"prefetch {source}@{revision}: the Hub has no revision {revision} of {source} "
                f"(its branches: https://huggingface.co/{source}/tree/main)"
            ) from None
        if isinstance(err, RepositoryNotFoundError):  # a 404: logged in, and no such model
            raise ModelNotFoundError(
                f"prefetch {source}@{revision}: the Hub has no model {source}; check the name "
                f"at https://huggingface.co/{source} ({error_line(err)})"
            ) from None
        if isinstance(err, LocalEntryNotFoundError):
            raise ModelNotFoundError(
                f"prefetch {source}@{revision}: the Hub cannot be reached and the model is not "
                f"in the cache ({constants.HF_HUB_CACHE}); prefetch where there is network (the "
                f"login node) with HF_HUB_OFFLINE unset, and check the name at "
                f"https://huggingface.co/{source} ({error_line(err)})"
            ) from None
        raise
    return folder


def prefetch(models: Sequence[tuple[str, str | None]]) -> list[FetchedModel]:
    """Put every (source, revision) into the cache and check that loading has all it needs.

    ``source`` is ``"embedded"`` (converted once), a local folder (only checked) or a Hugging
    Face id; a revision of ``None``, ``"main"`` or ``"final"`` is the default branch. Raises
    :class:`~expertalign.models.ModelNotFoundError` naming the model, the revision and what is
    missing; :class:`~expertalign.models.ModelAccessError` (a subclass) for a gated or private
    model this machine may not download."""
    from expertalign.models import (
        EMBEDDED,
        ModelNotFoundError,
        embedded_model_dir,
        looks_like_folder,
    )

    done = []
    for source, revision in models:
        revision = revision or "main"
        if source == EMBEDDED:
            folder = embedded_model_dir()
        elif looks_like_folder(source):
            folder = Path(source).expanduser()
            if not folder.is_dir():
                raise ModelNotFoundError(f"model folder {source} does not exist")
        else:
            folder = _download(source, revision)
        missing = missing_files(folder)
        if missing:
            raise ModelNotFoundError(
                f"prefetch {source}@{revision}: {folder} lacks {'; '.join(missing)}, so jobs "
                "could not load it offline (no marker written). Check that this revision has "
                "transformers weights (model*.safetensors or pytorch_model*.bin"
                + (
                    ""
                    if looks_like_folder(source) or source == EMBEDDED
                    else f": https://huggingface.co/{source}/tree/{revision}"
                )
                + ") and that the cache's disk or quota is not full (HF_HOME), then rerun."
            )
        done.append(FetchedModel(source, revision, str(folder), tuple(weight_files(folder)[0])))
    return done


def config_keys(config: Mapping[str, Any], source: str) -> list[str]:
    """The keys of a (validated) config that name the model ``source``, in config order:
    ``models[i].source``, ``sentences.generator``, ``sentences.sources.<name>.generator``,
    ``pilot.model`` (when it is not the name of a configured model, which is then the key)."""
    models = config.get("models") or []
    keys = [f"models[{i}].source" for i, model in enumerate(models) if model["source"] == source]
    sentences = config.get("sentences") or {}
    if sentences.get("generator") == source:
        keys.append("sentences.generator")
    for name, spec in (sentences.get("sources") or {}).items():
        if (spec or {}).get("generator") == source:
            keys.append(f"sentences.sources.{name}.generator")
    pilot = config.get("pilot") or {}
    if pilot.get("model") == source and source not in {model["name"] for model in models}:
        keys.append("pilot.model")
    return keys


def naming_config_keys(
    err: ModelNotFoundError, config: Mapping[str, Any], source: str
) -> ModelNotFoundError:
    """``err`` (the same type, and its traceback, for the job's log) with its message led by
    the config keys naming ``source``, so that the user knows which entry to correct; ``err``
    itself when no key names it (the default generator)."""
    keys = config_keys(config, source)
    if not keys:
        return err
    return type(err)(f"config key {', '.join(keys)}: {err}").with_traceback(err.__traceback__)
