"""The config a run actually used, after Snakemake merged its config files, kept beside the
results; and what a ``--configfile`` inherits from the workflow's own ``config/config.yaml``.

    from expertalign.effective_config import write_effective_config, inherited_note

    path = write_effective_config(config, "results")   # results/config/effective.yaml
    print(inherited_note("config/config.yaml", ["my.yaml"]))  # None when nothing is inherited

Snakemake lays every ``--configfile`` over the Snakefile's ``configfile:`` (mappings merged key
by key, anything else replaced), so a config of one's own keeps every source, judgment set and
analysis of ``config/config.yaml`` it does not mention; a key set to ``null`` turns one off.
The file is written atomically and only when its text changes, so an unchanged config touches
no file time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from expertalign.atomic import atomic_path

__all__ = [
    "EFFECTIVE_CONFIG",
    "effective_config_path",
    "plain_config",
    "write_effective_config",
    "inherited_note",
]

# Beside the results: <results>/config/effective.yaml
EFFECTIVE_CONFIG = Path("config") / "effective.yaml"


def effective_config_path(results: str | Path) -> Path:
    return Path(results) / EFFECTIVE_CONFIG


def plain_config(config: Mapping[str, Any]) -> Any:
    """The config as ``effective.yaml`` holds it: plain dicts, lists and YAML scalars, in the
    config's key order (what ``yaml.safe_load`` of that file gives back)."""
    import yaml

    return yaml.safe_load(yaml.safe_dump(_plain(config), sort_keys=False))


def _text(config: Mapping[str, Any], sources: Sequence[str | Path]) -> str:
    import yaml

    plain = plain_config(config)
    header = "".join(f"#   {s}\n" for s in sources)
    return (
        "# The config this run used: these files merged in this order (the later on top), with\n"
        "# the schema's defaults filled (expertalign.effective_config).\n"
        + header
        + yaml.safe_dump(plain, sort_keys=False, allow_unicode=True)
    )


def _plain(value: Any) -> Any:
    """Snakemake's config holds OrderedDicts and tuples: plain dicts and lists for YAML."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def write_effective_config(
    config: Mapping[str, Any], results: str | Path, sources: Sequence[str | Path] = ()
) -> Path:
    """Write ``config`` to ``<results>/config/effective.yaml`` unless it holds that text
    already; return its path. ``sources``: the config files merged, in merge order."""
    path = effective_config_path(results)
    text = _text(config, [str(s) for s in sources])
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _read(path: str | Path) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8-sig")) or {}
    return data if isinstance(data, dict) else {}


def _inherited(base: Mapping[str, Any], overlays: Sequence[Mapping[str, Any]], prefix: str):
    """Dotted keys of ``base`` that no overlay sets (descending where an overlay sets the
    mapping itself but not all of its keys)."""
    for key, value in base.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        given = [o[key] for o in overlays if isinstance(o, Mapping) and key in o]
        if not given:
            yield name
        elif isinstance(value, Mapping) and all(isinstance(g, Mapping) for g in given):
            yield from _inherited(value, given, name)


# Where an inherited key adds work of its own: a sentence source, a judgment set, an analysis.
_NAMED_SECTIONS = ("sentences.sources", "alignment.judgments")
_NAMED = tuple(f"{k}." for k in _NAMED_SECTIONS)
_SECTIONS = ("sentences.sources", "alignment.judgments", "spp", "pilot", "models")
# keys named in the one line, sources, judgment sets and analyses first
_SHOWN = 12


def _named(base: Mapping[str, Any], key: str) -> str:
    """``key``, with the names of the sources or judgment sets it holds: sentences.sources
    (generated, brown)."""
    value: Any = base
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if key in _NAMED_SECTIONS and isinstance(value, Mapping):
        return f"{key} ({', '.join(str(k) for k, v in value.items() if v is not None)})"
    return key


def inherited_note(workflow_config: str | Path, configfiles: Sequence[str | Path]) -> str | None:
    """One line saying what the ``configfiles`` (--configfile) inherit from the Snakefile's
    ``workflow_config``, sources, judgment sets and analyses first; None when they are the
    same file or nothing is inherited."""
    base_path = Path(workflow_config)
    own = [Path(p) for p in configfiles if Path(p).resolve() != base_path.resolve()]
    if not own or not base_path.is_file():
        return None
    base = _read(base_path)
    keys = list(_inherited(base, [_read(p) for p in own if p.is_file()], ""))
    if not keys:
        return None
    notable = [k for k in keys if k.startswith(_NAMED) or k in _SECTIONS]
    ordered = [_named(base, k) for k in notable] + [k for k in keys if k not in notable]
    shown = ", ".join(ordered[:_SHOWN]) + (
        f" and {len(ordered) - _SHOWN} more" if len(ordered) > _SHOWN else ""
    )
    return (
        f"config: {', '.join(map(str, own))} is laid over {base_path} and inherits {shown} "
        "from it; set a key to null to turn it off (e.g. sentences.sources.<name>: null)"
    )
