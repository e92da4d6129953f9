"""What the workflow checks when it loads, beyond the config's own keys: the config files as
written (a key given twice), and the files and sizes the config names, so that a dry run stops
on what would otherwise fail a job hours later, or silently change a result.

    from expertalign.load_checks import check_config_files, check_config_inputs

    check_config_files(["config/config.yaml", "my.yaml"])  # a key given twice in one mapping
    check_config_inputs(config, concept_ids)  # bank size, corpora, provided sentence files

Every problem raises :class:`expertalign.config.ConfigError` with one line naming the config
key, or the file with its line and column. ``workflow/rules/common.smk`` calls both before it
plans anything.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from expertalign.config import ConfigError, sentence_sources, source_block, source_negatives

__all__ = [
    "check_config_files",
    "duplicate_keys",
    "profile_files",
    "check_bank_size",
    "check_ratios",
    "check_corpora",
    "check_provided_files",
    "check_config_inputs",
    "min_bank_size",
]


# --- config files as written ---------------------------------------------------------------


def duplicate_keys(path: str | Path) -> list[tuple[str, int, int, int]]:
    """Keys given twice in one mapping of a YAML (or JSON) file: (dotted key, line, column,
    line of its first occurrence), 1-based as an editor counts. YAML loaders keep the later
    value silently; a second ``experts:`` block replaces the whole first one."""
    import yaml

    text = Path(path).read_text(encoding="utf-8-sig")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    found: list[tuple[str, int, int, int]] = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    walk(value_node, prefix)
                    continue
                name = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
                ident = (key_node.tag, key_node.value)
                mark = key_node.start_mark
                if ident in first:
                    found.append((name, mark.line + 1, mark.column + 1, first[ident]))
                else:
                    first[ident] = mark.line + 1
                walk(value_node, name)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{prefix}[{i}]")

    walk(root, "")
    return found


def profile_files(argv: Sequence[str] | None = None) -> list[Path]:
    """The config file of the Snakemake profile named on the command line (``--profile``) or
    by ``$SNAKEMAKE_PROFILE``, when it is a folder here: Snakemake reads it too."""
    argv = list(sys.argv if argv is None else argv)
    names = [os.environ["SNAKEMAKE_PROFILE"]] if os.environ.get("SNAKEMAKE_PROFILE") else []
    for i, arg in enumerate(argv):
        if arg == "--profile" and i + 1 < len(argv):
            names.append(argv[i + 1])
        elif arg.startswith("--profile="):
            names.append(arg.split("=", 1)[1])
    files = []
    for name in names:
        for candidate in ("config.v8+.yaml", "config.yaml"):
            path = Path(name) / candidate
            if path.is_file():
                files.append(path)
                break
    return files


def check_config_files(paths: Iterable[str | Path]) -> None:
    """Refuse a key given twice in one mapping of any of these config files, naming the file,
    the line and column of the second one, and the line of the first."""
    for path in dict.fromkeys(map(str, paths)):
        if not Path(path).is_file():
            continue  # Snakemake names a config file that is not there
        for key, line, column, first in duplicate_keys(path):
            raise ConfigError(
                f"{path}, line {line}, column {column}: config key {key} is given twice in the "
                f"same block (first on line {first}); only the later one would count, silently "
                "replacing the first: keep one"
            )


# --- sizes and files the config names ------------------------------------------------------


def min_bank_size(bank_source_concepts: int, n_negatives: int) -> int:
    """The smallest bank that leaves every concept ``n_negatives`` sentences once its own are
    removed: a bank of b draws about b / k sentences from each of its k source concepts."""
    b = n_negatives
    while b - math.ceil(b / bank_source_concepts) < n_negatives:
        b += 1
    return b


def _negatives_key(config: Mapping[str, Any], source: str, key: str) -> str:
    """Where ``source``'s negatives ``key`` is set: its own block or the shared one."""
    own = source_block(config, source).get("negatives") or {}
    return f"sentences.sources.{source}.negatives.{key}" if key in own else f"negatives.{key}"


def check_bank_size(config: Mapping[str, Any]) -> None:
    """Each source's bank size (``negatives.bank_size``, or the source's own) against the
    sentences its concepts will have: at most ``bank_source_concepts`` x ``n_positives``, and
    large enough that a source concept's own share of it (about bank_size /
    bank_source_concepts) still leaves ``n_negatives``."""
    k = config["negatives"]["bank_source_concepts"]
    for name, settings in sentence_sources(config).items():
        bank = source_negatives(config, name)
        size, n_neg = bank["bank_size"], bank["n_negatives"]
        key = _negatives_key(config, name, "bank_size")
        available = k * settings["n_positives"]
        if size > available:
            raise ConfigError(
                f"config key {key}: {size} sentences, but the bank is drawn from "
                f"the first negatives.bank_source_concepts={k} concepts with "
                f"n_positives={settings['n_positives']} sentences each (source '{name}'): "
                f"{available} at most; lower bank_size or raise bank_source_concepts"
            )
        own = math.ceil(size / k)
        if size - own < n_neg:
            raise ConfigError(
                f"config key {key}: {size} sentences leave a source concept "
                f"{size - own} once its own {own} (of {k} concepts' even shares) are removed, "
                f"fewer than n_negatives={n_neg} (source '{name}'); raise bank_size to at least "
                f"{min_bank_size(k, n_neg)}"
            )


def check_corpora(config: Mapping[str, Any]) -> None:
    """A corpus of one's own (``sentences.sources.<name>.corpus``: a path) exists and is a
    .txt file, or a Parquet file with a ``text`` column."""
    for name, settings in sentence_sources(config).items():
        corpus = settings.get("corpus")
        if settings.get("backend") != "corpus" or corpus in (None, "brown"):
            continue
        own = source_block(config, name)
        key = f"sentences.sources.{name}.corpus" if "corpus" in own else "sentences.corpus"
        path = Path(corpus)
        if not path.is_file():
            raise ConfigError(f"config key {key}: corpus file {path} does not exist")
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            try:
                names = pq.read_schema(path).names
            except Exception as err:  # ArrowInvalid: not a Parquet file
                raise ConfigError(
                    f"config key {key}: {path} is not a Parquet file ({err})"
                ) from None
            if "text" not in names:
                raise ConfigError(
                    f"config key {key}: {path} has no 'text' column (columns: "
                    f"{', '.join(names)}); a Parquet corpus holds one sentence per row in 'text'"
                )
        elif suffix not in (".txt", ".text", ""):
            raise ConfigError(
                f"config key {key}: {path} is a '{suffix}' file; a corpus is .txt (one sentence "
                "a line) or .parquet (a 'text' column)"
            )


def _provided_key(config: Mapping[str, Any], source: str) -> str:
    own = source_block(config, source)
    return f"sentences.sources.{source}.provided" if "provided" in own else "sentences.provided"


def check_provided_files(config: Mapping[str, Any], concept_ids: Sequence[str]) -> None:
    """Each source's provided sentence files (``sentences.provided``): every file a concept has
    holds at least ``n_positives`` distinct sentences, and no concept without a file has one
    whose name differs only in case (``Sun.txt`` for ``sun``), which would silently send that
    concept to generation."""
    from expertalign.sentence_filters import dedupe_key
    from expertalign.sentences import read_provided_sentences
    from expertalign.textfile import NotUTF8Error

    for source, settings in sentence_sources(config).items():
        pattern = settings.get("provided")
        if not pattern:
            continue
        key = _provided_key(config, source)
        listings: dict[Path, dict[str, str]] = {}
        for concept in concept_ids:
            path = Path(pattern.format(concept=concept))
            if not path.is_file():
                folder = path.parent
                if folder not in listings:
                    try:
                        names = os.listdir(folder)
                    except OSError:
                        names = []  # a folder per concept; the pattern's own check names it
                    listings[folder] = {n.lower(): n for n in names}
                other = listings[folder].get(path.name.lower())
                if other is not None and other != path.name:
                    raise ConfigError(
                        f"config key {key}: concept '{concept}' has no file {path} but "
                        f"{folder / other} is there (file names are case-sensitive); rename it, "
                        "or the concept's sentences would be generated instead"
                    )
                continue
            try:
                texts = read_provided_sentences(path, concept)
            except NotUTF8Error as err:
                raise ConfigError(f"config key {key}: {err}") from None
            except ValueError as err:  # no 'text' column, unknown file type
                raise ConfigError(f"config key {key}: {err}") from None
            distinct = len({dedupe_key(t) for t in texts})
            if distinct < settings["n_positives"]:
                raise ConfigError(
                    f"config key {key}: {path} has {distinct} distinct sentences (case and "
                    f"spacing ignored) but sentences.n_positives is {settings['n_positives']} "
                    f"(source '{source}'); add sentences or remove the file to generate them"
                )


def check_config_inputs(config: Mapping[str, Any], concept_ids: Sequence[str]) -> None:
    """Every load-time check of what the config names (``config`` has its defaults filled);
    the positive:negative ratio first, since the bank's size follows from it."""
    check_ratios(config)
    check_bank_size(config)
    check_corpora(config)
    check_provided_files(config, concept_ids)


def check_ratios(config: Mapping[str, Any]) -> None:
    """Each source's positives : negatives against the paper's 400 : 1000, naming the keys
    that set them (the source's own or the shared ones)."""
    from expertalign.negatives import check_ratio

    tolerance = config["negatives"]["ratio_tolerance"]
    for name, settings in sentence_sources(config).items():
        n_negatives = source_negatives(config, name)["n_negatives"]
        try:
            check_ratio(settings["n_positives"], n_negatives, tolerance=tolerance)
        except ValueError as err:
            own = source_block(config, name)
            positives = (
                f"sentences.sources.{name}.n_positives"
                if "n_positives" in own
                else "sentences.n_positives"
            )
            raise ConfigError(
                f"config keys {positives} / {_negatives_key(config, name, 'n_negatives')} "
                f"(source '{name}'): {err} (negatives.ratio_tolerance)"
            ) from None
