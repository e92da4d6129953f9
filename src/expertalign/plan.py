"""What a campaign consists of, computed from its config alone: one plan, two readers.

    >>> from expertalign.config import load_config
    >>> from expertalign.plan import Campaign
    >>> campaign = Campaign(load_config("config/paper.yaml"))
    >>> campaign.shard_ids()[:2], campaign.shard_concepts("0000")[:3]
    (['0000', '0001'], ['able', 'abstraction', 'accident'])
    >>> campaign.sentence_blocks("generated")["gpu-000"][:2]    # a fixed block of the table
    ['able', 'abstraction']
    >>> campaign.planned_batches("generated")                   # blocks with missing members
    {'gpu-000': [...], ...}
    >>> campaign.expert_job_resources("pythia-12b", 12)        # host/GPU memory, time limit
    {'mem_mb': ..., 'gpu_mem_mb': ..., 'runtime': ...}

The workflow (``workflow/rules/common.smk``) builds one :class:`Campaign` and asks it for
everything it plans: concepts, expert shards (blocks of ``experts.shard_size`` rows of the
concept table), (model, checkpoint) runs, sentence sets and their batches, and each expert job's
resources. ``expertalign plan`` and ``expertalign status`` read the same object, so what they
report is what the workflow runs.

**Sentence batches keep their names.** A batch is a fixed block of ``sentences.concepts_per_job``
rows of a sentence set's concepts, named by its position in the table (``gpu-007``: the eighth
block, whose members still to make need the GPU generator; ``cpu-007`` if they are provided
files or corpus sentences), never by which or how many are missing. Its job makes only the members
whose file is missing or was made with other settings (:meth:`Campaign.planned_batches`), so a
queued SLURM job that re-plans the workflow when it starts finds its batch under the same name
whatever other batches finished meanwhile.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from expertalign import paths

__all__ = [
    "PILOT_POOLS",
    "MODEL_LOAD_KEYS",
    "EXPERT_SETTINGS",
    "UNSIZED_EXPERT_JOB",
    "UNSIZED_CAUSAL_JOB",
    "SentenceSet",
    "Campaign",
    "canonical",
]

log = logging.getLogger(__name__)

# The name of the pilot's pools among the sentence sets (a hyphen, which source names lack).
PILOT_POOLS = "pilot-pools"
# What loading a model needs. Its `revisions` list is left out: a job sees only its own revision
# (a wildcard), so adding a checkpoint to a model reruns nothing that exists.
MODEL_LOAD_KEYS = ("name", "source", "dtype", "random_init", "seed")
# Config keys that change what an expert job computes. Speed settings (`experts.max_tokens`) are
# read by the script from the config instead, so tuning them for a site reruns nothing; tau
# reaches only the reductions.
EXPERT_SETTINGS = ("max_length", "unit_stats")
# Used for a model whose architecture is neither cached nor a reference model (see
# expertalign.resources.model_shape): the sizes every expert job asked for before estimates.
UNSIZED_EXPERT_JOB = {"mem_mb": 64000, "gpu_mem_mb": 80000, "runtime": 480}
# A causal job's resources where the model's shape is unknown (no config in the cache).
UNSIZED_CAUSAL_JOB = {"mem_mb": 64000, "gpu_mem_mb": 80000, "runtime": 1440}
# What sentence generation needs of a concept (so editing its domain regenerates nothing).
GENERATION_FIELDS = ("concept", "word", "pos", "definition")


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted (recursively) and tuples as lists: the form
    in which the workflow passes params, so that reordering keys in a config reruns nothing
    (Snakemake compares params by their text)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


@dataclass(frozen=True)
class SentenceSet:
    """What one sentence job family makes: settings, each concept's output file, provided files
    and (a corpus source's) fallback files."""

    name: str
    settings: dict[str, Any]
    outputs: dict[str, str]
    provided: dict[str, str] = field(default_factory=dict)
    fallback: dict[str, str] = field(default_factory=dict)


class Campaign:
    """The plan of a run, from a config whose schema defaults are filled
    (:func:`expertalign.config.load_config`, or the workflow's validated ``config``).

    Raises :class:`ValueError` naming the config key when the config cannot be planned.
    Reading the file system is limited to the concept table, provided sentence files (their
    names and digests) and, for :meth:`stale_concepts`, the sentence files' stored fingerprints.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        from expertalign.concepts import load_concepts
        from expertalign.config import sentence_sources
        from expertalign.sentences import provided_files

        self.config = config
        self.results: str = config["results"]
        self.concepts = load_concepts(config["concepts"])
        self.concept_ids: list[str] = list(self.concepts["concept"])
        self.shard_size: int = config["experts"]["shard_size"]
        self.models: dict[str, dict[str, Any]] = {m["name"]: m for m in config["models"]}
        self.taus: list[float] = config["experts"]["taus"]
        self.judgments: dict[str, dict[str, Any]] = config["alignment"]["judgments"]
        self._check()
        self.sources = sentence_sources(config)
        self.primary_source = next(iter(self.sources))
        # a pattern that finds no file is refused here, rather than silently generating all
        self.provided = {
            source: (
                provided_files(settings["provided"], self.concept_ids)
                if settings["provided"] is not None
                else {}
            )
            for source, settings in self.sources.items()
        }
        self.generation_fields = {
            row["concept"]: {k: row[k] for k in GENERATION_FIELDS}
            for row in self.concepts.to_dict("records")
        }

    def _check(self) -> None:
        config = self.config
        if len(self.models) != len(config["models"]):
            names = [m["name"] for m in config["models"]]
            raise ValueError(f"config models: model names must be unique, got {names}")
        bank = config["negatives"]
        if bank["bank_source_concepts"] > len(self.concept_ids):
            raise ValueError(
                f"config negatives.bank_source_concepts={bank['bank_source_concepts']} but "
                f"{config['concepts']} has only {len(self.concept_ids)} concepts"
            )
        from expertalign.config import sentence_sources, source_negatives
        from expertalign.load_checks import check_ratios

        check_ratios(config)
        for source in sentence_sources(config):
            own = source_negatives(config, source)
            if own["bank_size"] < own["n_negatives"]:
                raise ValueError(
                    f"config bank_size={own['bank_size']} < n_negatives={own['n_negatives']} "
                    f"(source '{source}')"
                )

    # ------------------------------------------------------------------ shards and runs

    def shard_size_of(self, model: str | None = None) -> int:
        """Concepts per expert job of ``model``: its own ``shard_size``, else experts.shard_size."""
        if model is None:
            return self.shard_size
        return int(self.models[model].get("shard_size") or self.shard_size)

    def shard_ids(self, model: str | None = None) -> list[str]:
        """The expert shards of ``model`` (None: at experts.shard_size)."""
        n_shards = math.ceil(len(self.concept_ids) / self.shard_size_of(model))
        return [paths.shard_id(k) for k in range(n_shards)]

    def shard_concepts(self, shard: str | int, model: str | None = None) -> list[str]:
        """Concepts of a shard: a block of the table, so appending rows never moves a concept."""
        size = self.shard_size_of(model)
        start = int(shard) * size
        return self.concept_ids[start : start + size]

    def revisions(self, model: str) -> list[str]:
        return list(self.models[model].get("revisions", ["main"]))

    def model_revisions(self) -> list[tuple[str, str]]:
        """(model, revision) pairs of the configured models, in config order."""
        return [(name, r) for name in self.models for r in self.revisions(name)]

    def model_load_spec(self, model: str) -> dict[str, Any]:
        """What loading ``model`` needs, in :data:`MODEL_LOAD_KEYS` order whatever the config's
        order (params' text must not change: existing outputs keep their recorded params)."""
        spec = self.models[model]
        return {key: spec[key] for key in MODEL_LOAD_KEYS if key in spec}

    def expert_settings(self, source: str | None = None) -> dict[str, Any]:
        """What an expert job computes from, besides its concepts and model (params), in a fixed
        key order (:data:`EXPERT_SETTINGS`), so reordering the config's keys changes nothing;
        with ``source``, also whether that source leaves out concepts without sentences."""
        settings = {key: self.config["experts"][key] for key in EXPERT_SETTINGS}
        negatives = self.config["negatives"]
        if negatives["mode"] != "shared":
            # only outside the default mode, so shared-mode outputs keep their recorded params
            settings["negatives_mode"] = negatives["mode"]
            settings["negatives_seed"] = negatives["seed"]
        if source is not None and self.leaves_out(source):
            # only where it is set, for the same reason
            settings["too_few"] = "leave_out"
        return settings

    @functools.cached_property
    def _word_of_concept(self) -> dict[str, str]:
        return dict(zip(self.concepts["concept"], self.concepts["word"]))

    def concept_words(self) -> dict[str, str]:
        """Concept to word; a copy (the params of a job), built from the table once: every
        expert job's params ask for its shard's words while the DAG is built."""
        return dict(self._word_of_concept)

    # ------------------------------------------------------------------ sentence sets

    @functools.cached_property
    def sentence_sets(self) -> dict[str, SentenceSet]:
        """Each source's sentence files, and the pilot's own pools (the first source's settings
        with ``pilot.pool_size`` sentences)."""
        sets = {}
        for source, settings in self.sources.items():
            takes_fallback = settings["backend"] == "corpus" and settings.get("fallback")
            sets[source] = SentenceSet(
                name=source,
                settings=settings,
                outputs={c: paths.sentence_file(self.results, source, c) for c in self.concept_ids},
                provided=self.provided[source],
                fallback=(
                    {
                        c: paths.sentence_file(self.results, settings["fallback"], c)
                        for c in self.concept_ids
                    }
                    if takes_fallback
                    else {}
                ),
            )
        pilot = self.config["pilot"]
        if pilot["enabled"] and pilot.get("pool_size"):
            primary = sets[self.primary_source]
            sets[PILOT_POOLS] = SentenceSet(
                name=PILOT_POOLS,
                settings={**primary.settings, "n_positives": pilot["pool_size"]},
                outputs={
                    c: paths.pilot_sentence_file(self.results, c) for c in self.pilot_concepts()
                },
                provided=primary.provided,
                # a fallback source's files hold n_positives sentences, not a pool's
                fallback={},
            )
        return sets

    @functools.cache  # noqa: B019 - one Campaign per workflow load; its plan never changes
    def sentence_fingerprints(self, name: str, fallback: bool = False) -> dict[str, str]:
        """Concept -> digest of its row and the settings its sentences depend on
        (:func:`expertalign.sentence_plan.shaping_settings`); with ``fallback``, the digest a
        corpus concept has when it takes its fallback source's sentences (only those that may)."""
        from expertalign.sentence_plan import settings_fingerprint, shaping_settings

        spec = self.sentence_sets[name]
        if fallback and not spec.fallback:
            return {}
        fallback_prints = self.sentence_fingerprints(spec.settings["fallback"]) if fallback else {}
        return {
            c: settings_fingerprint(
                self.generation_fields[c],
                shaping_settings(
                    spec.settings,
                    provided=spec.provided.get(c),
                    fallback_fingerprint=fallback_prints.get(c),
                ),
            )
            for c in spec.outputs
            if not fallback or c in spec.fallback
        }

    @functools.cache  # noqa: B019
    def sentence_blocks(self, name: str) -> dict[str, list[str]]:
        """Batch name -> members: every block of ``sentences.concepts_per_job`` concepts of the
        set, in table order, named by its position: ``gpu-NNN`` where a local generator makes
        some member it still has to make (or, with none left, some member), else ``cpu-NNN``
        (provided files, a corpus or a generation server). Only the block's own job makes its
        members, so a queued job finds its block under the same name when it starts."""
        from expertalign.sentence_plan import batches

        spec = self.sentence_sets[name]
        stale = self.stale_concepts(name)
        blocks = batches(list(spec.outputs), self.config["sentences"]["concepts_per_job"])
        named = {}
        for k, members in enumerate(blocks):
            todo = [c for c in members if c in stale] or members
            named[f"{'gpu' if self._needs_gpu(spec, todo) else 'cpu'}-{k:03d}"] = members
        return named

    @staticmethod
    def _needs_gpu(spec: SentenceSet, members: Sequence[str]) -> bool:
        return spec.settings["backend"] == "transformers" and any(
            c not in spec.provided for c in members
        )

    @functools.cache  # noqa: B019
    def stale_concepts(self, name: str) -> frozenset[str]:
        """Concepts of a set whose file is missing or holds none of the fingerprints it may have
        (read from the files' stored fingerprints, once per plan)."""
        from expertalign.sentence_plan import stale_concepts

        prints = self.sentence_fingerprints(name)
        fallback_prints = self.sentence_fingerprints(name, fallback=True)
        accepted = {c: {prints[c], fallback_prints.get(c, prints[c])} for c in prints}
        return frozenset(stale_concepts(self.sentence_sets[name].outputs, accepted))

    def planned_batches(self, name: str) -> dict[str, list[str]]:
        """Batch name -> the members it must make, for the blocks that have any."""
        stale = self.stale_concepts(name)
        planned = {
            batch: [c for c in members if c in stale]
            for batch, members in self.sentence_blocks(name).items()
        }
        return {batch: todo for batch, todo in planned.items() if todo}

    def batch_of(self, name: str, concept: str) -> str:
        for batch, members in self.sentence_blocks(name).items():
            if concept in members:
                return batch
        raise ValueError(f"sentence set {name}: {concept} is in no sentence batch")

    def batch_members(self, name: str, batch: str) -> list[str]:
        """The members of ``batch`` that its job makes (missing or stale ones)."""
        blocks = self.sentence_blocks(name)
        if batch not in blocks:
            raise ValueError(
                f"sentence set {name}: no batch {batch!r}; its batches are "
                f"{', '.join(blocks) or 'none'} (sentences.concepts_per_job="
                f"{self.config['sentences']['concepts_per_job']} concepts each)"
            )
        stale = self.stale_concepts(name)
        return [c for c in blocks[batch] if c in stale]

    def batch_params(self, name: str, batch: str) -> dict[str, Any]:
        """Everything the sentence job of ``batch`` needs, in canonical form."""
        spec = self.sentence_sets[name]
        members = self.batch_members(name, batch)
        prints = self.sentence_fingerprints(name)
        fallback_prints = self.sentence_fingerprints(name, fallback=True)
        return canonical(
            {
                "concepts": [self.generation_fields[c] for c in members],
                "fingerprints": {c: prints[c] for c in members},
                "fallback_fingerprints": {
                    c: fallback_prints[c] for c in members if c in fallback_prints
                },
                "provided": {c: spec.provided[c] for c in members if c in spec.provided},
                "fallback": {c: spec.fallback[c] for c in members if c in spec.fallback},
                "resume_dir": f"{self.results}/sentences/.unfinished/{name}",
            }
        )

    def batch_generator(self, name: str, batch: str) -> tuple[str, str] | None:
        """(source, revision) of the generator a batch's job loads, or None."""
        spec = self.sentence_sets[name]
        if spec.settings["backend"] != "transformers":
            return None
        if all(c in spec.provided for c in self.batch_members(name, batch)):
            return None
        return spec.settings["generator"], "main"

    # ------------------------------------------------------------------ resources

    def _job_resources(
        self, model: str, n_concepts: int, unsized: dict[str, int], runtime: Callable[..., int]
    ) -> dict[str, int]:
        """Host memory, GPU memory and time limit (``runtime(shape)``) of a GPU job holding
        ``n_concepts`` concepts' responses on ``model``
        (:func:`expertalign.resources.expert_job_memory`); ``unsized``, logged, where the
        model's shape is not known."""
        from expertalign.resources import expert_job_memory, host_memory_mb, model_shape

        spec = self.models[model]
        try:
            shape = model_shape(spec["source"])
        except ValueError as err:
            log.warning("%s: using fixed sizes %s: %s", model, unsized, err)
            return dict(unsized)
        gpu = expert_job_memory(
            shape,
            n_concepts=n_concepts,
            n_positives=self.n_positives(),
            bank_rows=self.bank_rows(),
            dtype="float32" if spec.get("dtype") == "float32" else "bfloat16",
            max_tokens=self.config["experts"]["max_tokens"],
        )
        return {
            "mem_mb": host_memory_mb(gpu),
            "gpu_mem_mb": gpu.total_mb,
            "runtime": runtime(shape),
        }

    @functools.cache  # noqa: B019
    def expert_job_resources(self, model: str, n_concepts: int) -> dict[str, int]:
        """Host memory, GPU memory and time limit of one expert job, from the model's shape and
        the shard (documented in :mod:`expertalign.resources`); retries scale them."""
        from expertalign.resources import expert_job_runtime_minutes

        return self._job_resources(
            model,
            n_concepts,
            UNSIZED_EXPERT_JOB,
            lambda shape: expert_job_runtime_minutes(shape, n_concepts),
        )

    def negatives_of(self, source: str) -> dict[str, Any]:
        """The negatives block as ``source`` uses it (its own n_negatives and bank_size, if it
        sets them: :func:`expertalign.config.source_negatives`)."""
        from expertalign.config import source_negatives

        return source_negatives(self.config, source)

    def leaves_out(self, source: str) -> bool:
        """Whether ``source`` leaves out a concept without sentences (``too_few: leave_out``)."""
        from expertalign.config import source_leaves_out

        return source_leaves_out(self.config, source)

    def n_positives(self, source: str | None = None) -> int:
        """Positives per concept of ``source`` (None: the most of any source)."""
        if source is None:
            return max(self.n_positives(name) for name in self.sources)
        return int(self.sources[source]["n_positives"])

    def bank_rows(self, source: str | None = None) -> int:
        """Bank rows an expert job of ``source`` runs the model over (None: the most of any
        source, which is what a job's resources are sized for)."""
        if source is None:
            return max(self.bank_rows(name) for name in self.sources)
        negatives = self.negatives_of(source)
        if negatives["mode"] == "per_concept":  # each concept samples from the whole pool
            return negatives["bank_size"]
        return min(negatives["bank_size"], negatives["n_negatives"] + self.n_positives(source))

    def needs_large_gpu(self, model: str) -> bool:
        """Whether a model's expert jobs need more GPU memory than experts.standard_gpu_mem_mb."""
        needed = self.expert_job_resources(model, self.shard_size_of(model))["gpu_mem_mb"]
        return needed > self.config["experts"]["standard_gpu_mem_mb"]

    # ------------------------------------------------------------------ analyses

    @functools.cache  # noqa: B019
    def pilot_concepts(self) -> list[str]:
        """The pilot's concepts: both concepts of pilot.men_pairs MEN pairs (the paper's
        design), else pilot.concepts or the first pilot.n_concepts rows of the table."""
        settings = self.config["pilot"]
        if settings.get("men_pairs"):
            from expertalign.analysis.pilot import men_pilot_concepts
            from expertalign.concepts import concept_of_words
            from expertalign.judgments import read_men

            men = read_men(self.config["data_dir"], settings["men_split"])
            return men_pilot_concepts(
                men,
                concept_of_words(self.concept_words()),
                settings["men_pairs"],
                settings["seed"],
            )
        chosen = settings.get("concepts") or self.concept_ids[: settings["n_concepts"]]
        unknown = [c for c in chosen if c not in self.concept_ids]
        if unknown:
            raise ValueError(f"config pilot.concepts: not in {self.config['concepts']}: {unknown}")
        return list(chosen)

    def spp_final_checkpoints(self) -> dict[str, str]:
        """Model -> its final (last configured) revision, for the models of the SPP analysis
        (spp.models, default: every model that is not random-init)."""
        names = self.config["spp"].get("models") or [
            name for name, m in self.models.items() if not m.get("random_init", False)
        ]
        unknown = [name for name in names if name not in self.models]
        if unknown:
            raise ValueError(f"config spp.models: not configured models: {unknown}")
        return {name: self.revisions(name)[-1] for name in names}

    @functools.cache  # noqa: B019
    def causal_concepts(self) -> list[str]:
        """The causal check's concepts (causal.n_concepts at most): both concepts of MEN pairs
        of the causal.judgment set judged among the concept table, in one seeded order of the
        pairs (:func:`expertalign.analysis.causal.pair_concepts`)."""
        from expertalign.analysis.causal import pair_concepts
        from expertalign.concepts import concept_of_words
        from expertalign.judgments import read_judgment_set

        settings = self.config["causal"]
        name = settings["judgment"]
        if name not in self.judgments:
            raise ValueError(
                f"config causal.judgment: {name!r} is not one of alignment.judgments "
                f"({', '.join(self.judgments)})"
            )
        pairs = read_judgment_set(name, self.judgments[name], self.config["data_dir"])
        return pair_concepts(
            pairs,
            concept_of_words(self.concept_words()),
            settings["n_concepts"],
            settings["seed"],
        )

    def causal_words(self) -> dict[str, list[str]]:
        """The checked concepts' word and part of speech (what a causal job reads of the concept
        table, as a param: a row added to the table reruns no causal job)."""
        rows = self.concepts.set_index("concept")
        return {c: [rows.at[c, "word"], rows.at[c, "pos"]] for c in self.causal_concepts()}

    def causal_settings(self) -> dict[str, Any]:
        """What a causal job computes from besides its concepts, model and inputs (params), in
        canonical form; the τ sets default to experts.taus."""
        # not what a job computes from: the switch, the prompts (a file: an input), the summary's
        # resamples, the judgment set (its pairs are read from input files), the jobs' size (a
        # job's own concepts are a param of their own) and the sources (a wildcard)
        skip = ("enabled", "prompts", "n_boot", "judgment", "concepts_per_job", "sources")
        settings = {k: v for k, v in self.config["causal"].items() if k not in skip}
        if settings.get("taus") is None:
            settings["taus"] = list(self.taus)
        if settings["cross_k"] not in settings["k"]:
            raise ValueError(
                f"config causal.cross_k: {settings['cross_k']} must be one of causal.k "
                f"{settings['k']} (the pass criterion is judged on that top-k set)"
            )
        return canonical(settings)

    def causal_sources(self) -> list[str]:
        """The sentence sources the causal check runs on (causal.sources; null: every one). A
        named source that a config turns off (``sentences.sources.NAME: null``, as configs laid
        over config/config.yaml may do with its Brown source) is left out; a name that is no
        source at all, or a list whose sources are all off, is an error."""
        chosen = self.config["causal"].get("sources")
        if chosen is None:
            return list(self.sources)
        declared = self.config.get("sentences", {}).get("sources") or {}
        unknown = [s for s in chosen if s not in declared and s not in self.sources]
        if unknown:
            raise ValueError(
                f"config causal.sources: {unknown} are not sentence sources "
                f"({', '.join(self.sources)})"
            )
        kept = [s for s in self.sources if s in chosen]
        if not kept:
            raise ValueError(
                f"config causal.sources: {chosen} are all turned off under sentences.sources; "
                f"name one of {', '.join(self.sources)}, or set causal.sources: null (every one)"
            )
        return kept

    def causal_parts(self) -> dict[str, list[str]]:
        """The causal check's jobs per (source, model): consecutive blocks of
        causal.concepts_per_job of :meth:`causal_concepts`, by part id (0000, 0001, ...)."""
        concepts = self.causal_concepts()
        size = int(self.config["causal"]["concepts_per_job"])
        return {
            paths.shard_id(k): concepts[start : start + size]
            for k, start in enumerate(range(0, len(concepts), size))
        }

    def n_causal_prompts(self) -> int:
        """Prompts a causal job generates from (the file's, or causal.n_prompts of them)."""
        from expertalign.jobs.causal import read_prompts

        path = self.config["causal"]["prompts"]
        try:
            n_file = len(read_prompts(path))
        except OSError as err:
            raise ValueError(f"config causal.prompts: cannot read {path}: {err}") from err
        return min(n_file, self.config["causal"].get("n_prompts") or n_file)

    def causal_work(self, n_units: int, n_part: int):
        """The forward passes of one causal job of ``n_part`` concepts on a model of
        ``n_units`` (:func:`expertalign.resources.causal_work`)."""
        from expertalign.resources import causal_work

        return causal_work(
            self.causal_settings(),
            n_part=n_part,
            n_concepts=len(self.causal_concepts()),
            n_positives=self.n_positives(),
            bank_rows=self.bank_rows(),
            n_units=n_units,
            n_prompts=self.n_causal_prompts(),
        )

    @functools.cache  # noqa: B019
    def causal_job_resources(self, model: str, n_part: int) -> dict[str, int]:
        """Host memory, GPU memory and time limit of one causal job of ``n_part`` concepts on
        ``model``, sized as an expert job is, its time from the forward passes it counts
        (:meth:`causal_work`); retries scale them."""
        from expertalign.resources import causal_job_runtime_minutes

        return self._job_resources(
            model,
            n_part,
            UNSIZED_CAUSAL_JOB,
            lambda shape: causal_job_runtime_minutes(
                shape, self.causal_work(shape.n_units, n_part)
            ),
        )

    def gpu_rule(self, rule: str, model: str) -> str:
        """The rule a GPU job of ``model`` runs under: ``rule``, or ``rule_large`` (experts_large,
        causal_large) for the models whose expert jobs need the large cards."""
        return f"{rule}_large" if self.needs_large_gpu(model) else rule

    def concept_groups(self) -> dict[str, str]:
        """Domain concepts as "broader" or "specific" (others are neither)."""
        rows = self.concepts[self.concepts["domain"].astype(bool)]
        return {
            row["concept"]: "broader" if row["broader"] else "specific"
            for row in rows.to_dict("records")
        }

    def has_domains(self) -> bool:
        return bool(self.concepts["domain"].astype(bool).any())

    def data_path(self, *parts: str) -> Path:
        return Path(self.config["data_dir"], *parts)
