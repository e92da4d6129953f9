"""Check a workflow configuration before anything runs: the schema first, then what it cannot say.

    from expertalign.config import ConfigError, load_config, validate_config, check_config

    config = load_config("config/config.yaml")  # YAML, schema defaults filled, every check run
    validate_config(config)                     # the schema only; fills defaults in place
    check_config(config)                        # cross-key checks the schema cannot express

Every problem raises :class:`ConfigError` with one line that names the config key and says what
is expected (jsonschema's own report prints the whole schema before the line that matters).
The workflow runs the same checks when it loads its config, so a bad key fails the dry run.
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import string
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from expertalign.paths import DEFAULT_REVISIONS

__all__ = [
    "ConfigError",
    "SCHEMA",
    "load_config",
    "validate_config",
    "check_config",
    "check_provided_pattern",
    "check_openai_url",
    "check_model_source",
    "sentence_sources",
    "source_block",
    "source_negatives",
    "source_leaves_out",
    "SOURCE_NEGATIVES_KEYS",
]

# Shipped inside the package (workflow/schemas/config.schema.yaml links here), so a
# non-editable install finds it too.
SCHEMA = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration the workflow cannot run correctly; the message names the key."""


def _key(path: Any) -> str:
    key = ""
    for part in path:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(top level)"


def _expected(schema: Mapping[str, Any]) -> str:
    """What a (sub)schema accepts, in words: 'a number > 0 and <= 2', 'one of a, b', ..."""
    if "enum" in schema:
        return "one of " + ", ".join(map(str, schema["enum"]))
    kind = schema.get("type", "a value")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    bounds = [
        f"{op} {schema[name]}"
        for name, op in (
            ("exclusiveMinimum", ">"),
            ("minimum", ">="),
            ("exclusiveMaximum", "<"),
            ("maximum", "<="),
        )
        if name in schema
    ]
    if kind == "array":
        items = schema.get("items", {})
        what = f"a list of {_expected(items)}" if items else "a list"
        extra = [f"at least {schema['minItems']}"] if "minItems" in schema else []
        extra += ["no repeats"] if schema.get("uniqueItems") else []
        return what + (f" ({', '.join(extra)})" if extra else "")
    return f"{kind}" + (f" {' and '.join(bounds)}" if bounds else "")


def _schema_error_line(error: Any) -> str:
    """One line for a jsonschema ValidationError: the key, the value, what is expected."""
    key = _key(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        known = list(error.schema.get("properties", {}))
        unknown = [k for k in error.instance if k not in known]
        where = f" under {key}" if error.absolute_path else ""
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(str(name), known, n=1)
            hints.append(f"'{name}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        return (
            f"config: unknown key {', '.join(hints)}{where}; known keys: "
            f"{', '.join(known)} (Additional properties are not allowed)"
        )
    if error.validator in ("required", "pattern"):
        return f"config key {key}: {error.message}"
    return f"config key {key}: {error.message}; expected {_expected(error.schema)}"


def validate_config(
    config: MutableMapping[str, Any], schema: str | Path | None = None
) -> MutableMapping[str, Any]:
    """Validate ``config`` against the workflow's schema, filling defaults in place.

    Raises :class:`ConfigError` with one line for the most relevant violation.
    """
    import yaml
    from jsonschema import Draft202012Validator, validators
    from jsonschema.exceptions import best_match

    path = Path(schema) if schema else SCHEMA
    if not path.exists():
        raise FileNotFoundError(
            f"{path} not found: checking a config needs expertalign installed from its "
            "repository (pip install -e .)"
        )
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    base = Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema_):
        if isinstance(instance, MutableMapping):
            for name, sub in properties.items():
                if "default" in sub:
                    # a copy, so that one config never shares a mutable default with another
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from check_properties(validator, properties, instance, schema_)

    validator = validators.extend(base, {"properties": properties_with_defaults})(spec)
    error = best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(_schema_error_line(error))
    return config


def check_provided_pattern(pattern: str, key: str = "sentences.provided") -> None:
    """A provided-sentences path pattern must hold ``{concept}`` and no other placeholder."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None]
    except ValueError as err:
        raise ConfigError(
            f"config key {key}: {pattern!r} is not a valid pattern ({err}); "
            "write e.g. sentences/{concept}.txt"
        ) from None
    others = sorted({f for f in fields if f != "concept"})
    if others:
        raise ConfigError(
            f"config key {key}: {pattern!r} has placeholder(s) "
            f"{', '.join('{' + f + '}' for f in others)}; only {{concept}} is filled in"
        )
    if "concept" not in fields:
        raise ConfigError(
            f"config key {key}: {pattern!r} has no {{concept}} placeholder, so every concept "
            "would read the same file; write e.g. sentences/{concept}.txt"
        )


_LOCAL_HOSTS = ("localhost",)


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOCAL_HOSTS or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_openai_url(
    url: str, allow_insecure_http: bool = False, key: str = "sentences.openai_base_url"
) -> None:
    """The API key travels in a header: only over https, or plain http to this machine, unless
    ``allow_insecure_http`` (config ``sentences.openai_allow_insecure_http``) says otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"config key {key}: {url!r} is not an http(s) URL; expected e.g. "
            "https://api.openai.com/v1 or http://localhost:8000/v1"
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname) and not allow_insecure_http:
        raise ConfigError(
            f"config key {key}: {url!r} is plain http to another host, which would send the API "
            "key unencrypted; use https, or set sentences.openai_allow_insecure_http: true if the "
            "network is trusted"
        )


def check_model_source(source: str, revisions: Any = ("main",), key: str = "models") -> None:
    """What can be told about a model source without loading it: the embedded model has no
    checkpoints, and a local folder must hold a config and a tokenizer."""
    from expertalign.models import EMBEDDED, check_model_folder, looks_like_folder

    if source == EMBEDDED:
        bad = [r for r in revisions or () if r not in DEFAULT_REVISIONS]
        if bad:
            raise ConfigError(
                f"config key {key}: the embedded model has no revision(s) {bad}; it has one "
                f"version, written {' or '.join(DEFAULT_REVISIONS)}"
            )
        return
    if looks_like_folder(source):
        try:
            check_model_folder(source)
        except Exception as err:  # ModelNotFoundError; the folder's problem, named by key
            raise ConfigError(f"config key {key}: {err}") from None


# Keys of the sentences block that belong to the run, not to one source.
RUN_SENTENCE_KEYS = ("sources", "concepts_per_job")
#: keys a source block may set besides sentence settings: they shape what is done with its
#: sentences (its negatives; whether a concept without sentences stops its expert jobs), not
#: the sentences, so they never enter a sentence file's fingerprint
SOURCE_ONLY_KEYS = ("negatives", "too_few")
#: the ``negatives`` keys a source may set for itself (the rest are one bank design for all)
SOURCE_NEGATIVES_KEYS = ("n_negatives", "bank_size")
TOO_FEW_CHOICES = ("stop", "leave_out")


def sentence_sources(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each source's sentence settings: the ``sentences`` block with the source's keys on top.

    >>> sentence_sources({"sentences": {"n_positives": 14, "backend": "transformers",
    ...                   "sources": {"generated": {}, "brown": {"backend": "corpus"}}}})
    {'generated': {'n_positives': 14, 'backend': 'transformers'},
     'brown': {'n_positives': 14, 'backend': 'corpus'}}
    """
    block = config.get("sentences", {})
    base = {k: v for k, v in block.items() if k not in RUN_SENTENCE_KEYS}
    sources = {
        name: spec for name, spec in (block.get("sources") or {}).items() if spec is not None
    } or {"generated": {}}
    merged = {}
    for name, overrides in sources.items():
        for key in overrides or {}:
            if key in SOURCE_ONLY_KEYS:
                continue
            if key in RUN_SENTENCE_KEYS or (base and key not in base):
                close = difflib.get_close_matches(str(key), list(base), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ConfigError(
                    f"config key sentences.sources.{name}.{key}: not a sentence setting a source "
                    f"can set{hint}"
                )
        own = {k: v for k, v in (overrides or {}).items() if k not in SOURCE_ONLY_KEYS}
        merged[name] = {**base, **own}
    return merged


def source_block(config: Mapping[str, Any], source: str) -> Mapping[str, Any]:
    """The keys ``sentences.sources.<source>`` sets itself (empty if none, or if it is off)."""
    return ((config.get("sentences") or {}).get("sources") or {}).get(source) or {}


def source_negatives(config: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The ``negatives`` block as ``source`` uses it: its own ``n_negatives`` and ``bank_size``
    (``sentences.sources.<source>.negatives``) over the shared ones, so that a source with more
    positives keeps the paper's 400 : 1000 ratio.

    >>> source_negatives({"negatives": {"n_negatives": 35, "bank_size": 42, "seed": 0},
    ...                   "sentences": {"sources": {"brown": {"negatives": {"n_negatives": 100,
    ...                                                                   "bank_size": 120}}}}},
    ...                  "brown")
    {'n_negatives': 100, 'bank_size': 120, 'seed': 0}
    """
    return {**config["negatives"], **(source_block(config, source).get("negatives") or {})}


def source_leaves_out(config: Mapping[str, Any], source: str) -> bool:
    """Whether a concept that cannot get its sentences in ``source`` is left out of that
    source's expert sets and alignment (``too_few: leave_out``) instead of stopping the expert
    job that needs it (``stop``, the default)."""
    return source_block(config, source).get("too_few", "stop") == "leave_out"


def _check_source_only_keys(config: Mapping[str, Any], sources: Mapping[str, Any]) -> None:
    primary = next(iter(sources))
    for name in sources:
        key = f"sentences.sources.{name}"
        block = source_block(config, name)
        negatives = block.get("negatives")
        if negatives is not None:
            if not isinstance(negatives, Mapping):
                raise ConfigError(
                    f"config key {key}.negatives: a mapping, e.g. {{n_negatives: 100}}"
                )
            for sub, value in negatives.items():
                if sub not in SOURCE_NEGATIVES_KEYS:
                    raise ConfigError(
                        f"config key {key}.negatives.{sub}: a source sets only "
                        f"{', '.join(SOURCE_NEGATIVES_KEYS)} for itself (the rest of negatives is "
                        "one bank design for every source)"
                    )
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ConfigError(
                        f"config key {key}.negatives.{sub}: an integer >= 1, got {value!r}"
                    )
        too_few = block.get("too_few", "stop")
        if too_few not in TOO_FEW_CHOICES:
            raise ConfigError(
                f"config key {key}.too_few: one of {', '.join(TOO_FEW_CHOICES)}, got {too_few!r}"
            )
        if too_few == "leave_out" and name == primary:
            raise ConfigError(
                f"config key {key}.too_few: leave_out on the first source, which feeds the domain, "
                "development, SPP and pilot analyses over every concept; put another source first "
                "(sentences.sources keeps its order) or use stop"
            )


def _check_sources(config: Mapping[str, Any]) -> None:
    sources = sentence_sources(config)
    _check_source_only_keys(config, sources)
    for name, settings in sources.items():
        key = f"sentences.sources.{name}"
        overrides = source_block(config, name)
        if settings.get("backend") != "corpus" and settings.get("fallback") is not None:
            where = f"{key}.fallback" if "fallback" in overrides else "sentences.fallback"
            raise ConfigError(
                f"config key {where}: {settings['fallback']!r} on source '{name}', whose backend "
                f"is {settings.get('backend')}; only a corpus source falls back (set it on the "
                "corpus source, or remove it)"
            )
        if settings.get("backend") == "openai":
            check_openai_url(
                settings["openai_base_url"], bool(settings.get("openai_allow_insecure_http", False))
            )
        elif settings.get("backend") == "corpus":
            fallback = settings.get("fallback")
            if fallback is not None and (
                fallback not in sources
                or fallback == name
                or sources[fallback].get("backend") == "corpus"
            ):
                raise ConfigError(
                    f"config key {key}.fallback: {fallback!r} must name another, non-corpus "
                    f"source of sentences.sources ({', '.join(sources)})"
                )
            if settings.get("corpus_min_words", 1) > settings.get("corpus_max_words", 1 << 30):
                raise ConfigError(f"config key {key}: corpus_min_words > corpus_max_words")
        elif settings.get("generator"):
            where = f"{key}.generator" if "generator" in overrides else "sentences.generator"
            check_model_source(settings["generator"], ["main"], key=where)


def check_config(config: Mapping[str, Any]) -> None:
    """Cross-key checks the schema cannot express; ``config`` has its defaults filled."""
    for i, model in enumerate(config.get("models", [])):
        check_model_source(
            model["source"], model.get("revisions", ["main"]), key=f"models[{i}] ({model['name']})"
        )
    names = [m["name"] for m in config.get("models", [])]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"config key models: model names must be unique; repeated: {repeated}")
    sentences = config.get("sentences", {})
    if sentences.get("provided") is not None:
        check_provided_pattern(sentences["provided"])
    _check_sources(config)
    for name, spec in config.get("alignment", {}).get("judgments", {}).items():
        if "path" not in spec and str(name).lower() != "men":
            raise ConfigError(
                f"config key alignment.judgments.{name}: give a path (only 'men' is read from "
                "data_dir)"
            )


def _read_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    config = yaml.safe_load(text) or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(config).__name__}")
    return config


def _update(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``overrides`` on top of ``base``, mappings merged key by key (as Snakemake merges a
    --configfile into the Snakefile's configfile)."""
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


# The workflow's own configfile (the Snakefile's `configfile:`), which every --configfile extends.
WORKFLOW_CONFIG = Path("config/config.yaml")


def load_config(
    path: str | Path, schema: str | Path | None = None, extends: str | Path | None = WORKFLOW_CONFIG
) -> dict[str, Any]:
    """Read a YAML config as the workflow sees it: on top of ``extends`` (the Snakefile's
    configfile, when it exists; None: the file alone), validated (defaults filled) and checked
    (:func:`check_config`)."""
    config = {}
    if (
        extends is not None
        and Path(extends).is_file()
        and (Path(extends).resolve() != Path(path).resolve())
    ):
        config = _read_yaml(extends)
    _update(config, _read_yaml(path))
    validate_config(config, schema)
    check_config(config)
    return config
