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
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from expertalign import paths

__all__ = [
    "FetchedModel",
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
    from huggingface_hub.errors import LocalEntryNotFoundError, RevisionNotFoundError

    from expertalign.models import ModelNotFoundError, hub_access_error

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
        access = hub_access_error(err, source, hub_revision)
        if access is not None:
            raise access from err
        if isinstance(err, RevisionNotFoundError):
            raise ModelNotFoundError(
                f"prefetch {source}@{revision}: the Hub has no revision {revision} of {source} "
                f"(its branches: https://huggingface.co/{source}/tree/main)"
            ) from err
        if isinstance(err, LocalEntryNotFoundError):
            raise ModelNotFoundError(
                f"prefetch {source}@{revision}: the Hub cannot be reached and the model is not "
                f"in the cache ({constants.HF_HUB_CACHE}); prefetch where there is network (the "
                f"login node) with HF_HUB_OFFLINE unset ({err.__class__.__name__})"
            ) from err
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
