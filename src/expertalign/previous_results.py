"""The previous outputs of the jobs a run is about to rerun, kept until the run ends and put back
where a job failed, so that a failed rerun never leaves neither the old nor the new result.

In the Snakefile (hooks run in the main Snakemake process, on real runs only, not on ``-n``):

    onstart:
        keep_previous(workflow, RESULTS)    # hard links in <results>/.previous/<UTC time>/
    onsuccess:
        discard_previous(RESULTS)           # every job finished: the folder goes
    onerror:
        restore_previous(RESULTS)           # what failed jobs lost comes back, one line each

After a run whose controller was killed before its ``onerror`` hook (SIGKILL, a node crash):

    $ snakemake --unlock --configfile my.yaml
    $ expertalign restore results [--from results/.previous/2025-01-31T120000Z]

Why it works: before a job runs, Snakemake unlinks its old outputs, and after a failure it
unlinks whatever the job left; a hard link made at ``onstart`` keeps the old file's data alive,
and every writer of this workflow writes a new file and renames it (:mod:`expertalign.atomic`),
so no kept file is ever changed in place. A failed job also leaves Snakemake a metadata record
with its new params, which would make a restored old file pass for the new result; so each
output's record (``.snakemake/metadata``) is kept too and put back with the file, and the next
run still reruns the job (its params, inputs or code still differ from the old record's).

On a file system without hard links (or where the kernel refuses a link to another user's
file), outputs are copied instead, which costs their size in disk for the length of the run.
After a failed run, the folder keeps only the old versions of outputs the run replaced with new
ones; remove it when they are not wanted. ``temp()`` outputs are not kept: nothing needs them
back once their consumers ran.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from base64 import urlsafe_b64encode
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from expertalign.atomic import atomic_path

__all__ = [
    "PREVIOUS",
    "PreviousResultsError",
    "Saved",
    "discard_previous",
    "keep_previous",
    "latest_folder",
    "record_path",
    "restore",
    "restore_command",
    "restore_previous",
]

# <results>/.previous/<UTC time>/: a hidden folder no rule's output pattern names.
PREVIOUS = ".previous"
MANIFEST = "manifest.json"
# os.link's errors that mean "no hard link here" (not "no such file"): copy instead.
_NO_LINK = {errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}

# The folder of the run in this process, per results folder (onstart -> onerror/onsuccess).
_CURRENT: dict[str, Path] = {}


class PreviousResultsError(Exception):
    """Previous outputs that cannot be kept or restored (one line)."""


@dataclass
class Saved:
    """One kept output: where it belongs, where its old version is, and Snakemake's record."""

    output: str  # absolute path of the output
    saved: str  # path inside the dated folder
    rule: str
    job: str
    kind: str  # "file" or "dir"
    size: int
    linked: bool  # a hard link (False: a copy)
    record: str | None  # Snakemake's metadata record of the output (None: no file backend)
    record_text: str | None  # the record before the run (None: there was none)
    incomplete: str | None  # Snakemake's incomplete marker of the output


def record_path(snakemake_dir: str | os.PathLike[str], subject: str, key: str) -> Path:
    """Snakemake's record file of output ``key`` under ``<snakemake_dir>/<subject>``: the key in
    URL-safe base64, split into folders past NAME_MAX, every part but the last prefixed with '@'
    (``snakemake.persistence.file.FilePersistence._record_path``)."""
    folder = Path(snakemake_dir) / subject
    size = (os.pathconf(folder, "PC_NAME_MAX") or 255) - 1
    encoded = urlsafe_b64encode(key.encode()).decode()
    chunks = [encoded[i : i + size] for i in range(0, len(encoded), size)]
    return folder.joinpath(*(["@" + c for c in chunks[:-1]] + [chunks[-1]]))


def _link_or_copy(source: Path, target: Path) -> bool:
    """``target`` becomes ``source``'s file (a hard link: True) or a copy with its times."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
        return True
    except OSError as err:
        if err.errno not in _NO_LINK:
            raise
    with atomic_path(target) as tmp:
        shutil.copy2(source, tmp)
    return False


def _files(path: Path) -> list[Path]:
    """A file, or a folder's files (relative to it)."""
    if path.is_dir():
        return sorted(p.relative_to(path) for p in path.rglob("*") if p.is_file())
    return [Path()]


def _same(saved: Path, output: Path, linked: bool) -> bool:
    """Whether ``output`` is still the file kept as ``saved`` (the run left it alone)."""
    try:
        a, b = saved.stat(), output.stat()
    except OSError:
        return False
    if linked:
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
    return (a.st_size, a.st_mtime_ns) == (b.st_size, b.st_mtime_ns)


def _unchanged(entry: Saved, folder: Path) -> bool:
    saved = folder / entry.saved
    output = Path(entry.output)
    if entry.kind == "file":
        return _same(saved, output, entry.linked)
    files = _files(saved)
    return (
        output.is_dir()
        and _files(output) == files
        and all(_same(saved / f, output / f, entry.linked) for f in files)
    )


def _flagged(output: Any, flag: str) -> bool:
    return flag in getattr(output, "flags", {})


def _write_manifest(
    folder: Path, state: str, results: str, snakemake_dir: str, entries: list[Saved]
) -> None:
    manifest = {
        "state": state,  # running: its run has not ended (or was killed); kept: after onerror
        "results": results,
        "snakemake_dir": snakemake_dir,  # whose locks `expertalign restore` checks
        "files": [asdict(e) for e in entries],
    }
    with atomic_path(folder / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def _read_manifest(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PreviousResultsError(f"{folder}: no readable {MANIFEST} ({err})") from err


def _new_folder(results: Path) -> Path:
    stamp = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime())
    for n in range(1, 1000):  # two runs started in the same second get -2, -3, ...
        folder = results / PREVIOUS / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise PreviousResultsError(f"{results / PREVIOUS}: no free folder name for {stamp}")


def _unfinished(results: Path, current: Path | None = None) -> list[Path]:
    """Folders of runs that never reached their onsuccess/onerror hook."""
    found = []
    for manifest in sorted((results / PREVIOUS).glob(f"*/{MANIFEST}")):
        try:
            state = _read_manifest(manifest.parent).get("state")
        except PreviousResultsError:
            continue  # not this module's to judge: `expertalign restore --from` says why
        if manifest.parent != current and state == "running":
            found.append(manifest.parent)
    return found


def keep_previous(workflow: Any, results: str | os.PathLike[str]) -> Path | None:
    """Hard-link (or copy) the existing outputs of every job Snakemake is about to run, and
    their metadata records, into a new ``<results>/.previous/<UTC time>/`` (the ``onstart``
    hook); print what was kept, and return the folder (None when nothing existed)."""
    results_dir = Path(os.path.abspath(results))
    for stale in _unfinished(results_dir):
        print(
            f"{stale} holds outputs of a run that did not end (killed?): "
            f"`expertalign restore {results} --from {stale}` puts back what it lost",
            flush=True,
        )
    persistence = workflow.persistence
    # Only Snakemake's default file backend keeps records where this module can put them back.
    file_records = type(persistence).__name__ == "FilePersistence"
    snakemake_dir = Path(os.path.abspath(persistence.path))
    entries: list[Saved] = []
    folder: Path | None = None
    try:
        for job in workflow.dag.needrun_jobs():
            for output in job.output:
                if _flagged(output, "temp") or _flagged(output, "update"):
                    continue  # temp: gone once used anyway; update: Snakemake backs it up
                if getattr(output, "is_storage", False) or not os.path.exists(output):
                    continue
                path = Path(os.path.abspath(output))
                if folder is None:
                    folder = _new_folder(results_dir)
                try:
                    inside = path.relative_to(results_dir)
                except ValueError:
                    inside = Path("outside", *path.parts[1:])
                saved = folder / "files" / inside
                if path.is_dir():  # an empty folder is an output too
                    saved.mkdir(parents=True, exist_ok=True)
                linked = True
                for f in _files(path):
                    linked &= _link_or_copy(path / f, saved / f)
                key = str(output)
                record = record_path(snakemake_dir, "metadata", key) if file_records else None
                entries.append(
                    Saved(
                        output=str(path),
                        saved=str(saved.relative_to(folder)),
                        rule=job.rule.name,
                        job=", ".join(f"{k}={v}" for k, v in job.wildcards_dict.items()),
                        kind="dir" if path.is_dir() else "file",
                        size=sum((saved / f).stat().st_size for f in _files(saved)),
                        linked=linked,
                        record=None if record is None else str(record),
                        record_text=(
                            record.read_text(encoding="utf-8")
                            if record is not None and record.is_file()
                            else None
                        ),
                        incomplete=(
                            str(record_path(snakemake_dir, "incomplete", key))
                            if file_records
                            else None
                        ),
                    )
                )
        if folder is not None:
            _write_manifest(folder, "running", str(results_dir), str(snakemake_dir), entries)
    except OSError as err:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        raise PreviousResultsError(
            f"cannot keep the previous outputs in {results_dir / PREVIOUS}: {err} "
            "(free disk space there, or run with --no-hooks to go on without)"
        ) from err
    if folder is None:
        return None
    _CURRENT[str(results_dir)] = folder
    copied = sum(e.size for e in entries if not e.linked)
    how = "hard links" if not copied else f"{copied / 1e9:.2f} GB copied: no hard links here"
    jobs = len({(e.rule, e.job) for e in entries})
    print(
        f"previous outputs of {jobs} jobs to rerun ({len(entries)} files, {how}) kept in "
        f"{folder}; a job that fails gets them back",
        flush=True,
    )
    if not file_records:
        print(
            "note: Snakemake's metadata is not in .snakemake (a database backend): a restored "
            "output may look up to date; rerun its job with --forcerun",
            flush=True,
        )
    return folder


@dataclass(frozen=True)
class Restored:
    """What :func:`restore` did: outputs put back, and old versions still kept."""

    restored: list[str]
    kept: list[str]
    folder: Path


def restore(folder: str | os.PathLike[str]) -> Restored:
    """Put back every output kept in ``folder`` that is missing now, with the metadata record it
    had before its run (or none, as then), and no incomplete marker; drop from the folder what
    the run left alone; remove the folder when nothing else is in it."""
    folder = Path(folder)
    manifest = _read_manifest(folder)
    entries = [Saved(**e) for e in manifest["files"]]
    restored, kept = [], []
    for entry in entries:
        output, saved = Path(entry.output), folder / entry.saved
        if not os.path.lexists(output):
            if entry.kind == "dir":
                output.mkdir(parents=True)
            for f in _files(saved):
                _link_or_copy(saved / f, output / f)
            if entry.record is not None:
                record = Path(entry.record)
                if entry.record_text is None:
                    record.unlink(missing_ok=True)
                else:
                    with atomic_path(record) as tmp:
                        tmp.write_text(entry.record_text, encoding="utf-8")
            if entry.incomplete is not None:
                Path(entry.incomplete).unlink(missing_ok=True)
            restored.append(entry.output)
        elif not _unchanged(entry, folder):
            kept.append(entry)  # replaced by a new version: the old one stays for the user
            continue
        shutil.rmtree(saved) if saved.is_dir() else saved.unlink(missing_ok=True)
    if kept:
        _write_manifest(folder, "kept", manifest["results"], manifest["snakemake_dir"], kept)
        # folders the removed files left empty
        for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), reverse=True):
            if not any(sub.iterdir()):
                sub.rmdir()
    else:
        shutil.rmtree(folder)
        with_previous = folder.parent
        if with_previous.name == PREVIOUS and not any(with_previous.iterdir()):
            with_previous.rmdir()
    return Restored(restored, [e.output for e in kept], folder)


def _report(result: Restored) -> None:
    for output in result.restored:
        print(f"restored the previous {output}", flush=True)
    if result.kept:
        print(
            f"the previous versions of {len(result.kept)} outputs this run replaced are in "
            f"{result.folder} (remove it when not wanted)",
            flush=True,
        )


def restore_previous(results: str | os.PathLike[str]) -> Restored | None:
    """The ``onerror`` hook: :func:`restore` this run's folder and print one line per output
    put back (nothing when this run kept nothing)."""
    folder = _CURRENT.pop(os.path.abspath(results), None)
    if folder is None:
        return None
    result = restore(folder)
    _report(result)
    return result


def discard_previous(results: str | os.PathLike[str]) -> None:
    """The ``onsuccess`` hook: every job finished, so this run's folder goes."""
    folder = _CURRENT.pop(os.path.abspath(results), None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        with_previous = folder.parent
        if with_previous.is_dir() and not any(with_previous.iterdir()):
            with_previous.rmdir()


def latest_folder(results: str | os.PathLike[str]) -> Path:
    """The newest dated folder under ``<results>/.previous`` (names sort by time)."""
    folders = sorted(p.parent for p in (Path(results) / PREVIOUS).glob(f"*/{MANIFEST}"))
    if not folders:
        raise PreviousResultsError(f"{Path(results) / PREVIOUS}: no kept previous outputs")
    return max(folders, key=lambda p: p.name)


def restore_command(results: str, folder: str | None = None) -> Restored:
    """``expertalign restore``: refuse while Snakemake holds locks (a run may be deleting and
    writing outputs), then :func:`restore` and print one line per output put back."""
    chosen = Path(folder) if folder else latest_folder(results)
    manifest = _read_manifest(chosen)
    locks = Path(manifest["snakemake_dir"]) / "locks"
    if locks.is_dir() and any(locks.iterdir()):
        raise PreviousResultsError(
            f"{locks} is not empty: a Snakemake run may still be going; if none is, "
            "`snakemake --unlock` with the same config first"
        )
    result = restore(chosen)
    _report(result)
    if not result.restored:
        print(f"nothing missing: no output restored from {chosen}", flush=True)
    return result
