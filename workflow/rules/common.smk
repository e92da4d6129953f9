import functools
import math
import re
from pathlib import Path

from expertalign import fetch, paths
from expertalign.concepts import load_concepts
from expertalign.config import check_config, validate_config
from expertalign.judgments import MEN_FILES, check_judged_pairs
from expertalign.resources import (
    expert_job_memory,
    expert_job_runtime_minutes,
    host_memory_mb,
    model_shape,
)
from expertalign.sentences import provided_files

# One-line errors naming the config key, before any job is planned (see README: When
# something is wrong).
validate_config(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
check_config(config)

RESULTS = config["results"]
CONCEPTS = load_concepts(config["concepts"])
CONCEPT_IDS = list(CONCEPTS["concept"])
SHARD_SIZE = config["experts"]["shard_size"]
N_SHARDS = math.ceil(len(CONCEPT_IDS) / SHARD_SIZE)
MODELS = {m["name"]: m for m in config["models"]}
TAUS = config["experts"]["taus"]
JUDGMENTS = config["alignment"]["judgments"]

if len(MODELS) != len(config["models"]):
    raise ValueError(f"config models: model names must be unique, got {list(MODELS)}")
_bank = config["negatives"]
if _bank["bank_source_concepts"] > len(CONCEPT_IDS):
    raise ValueError(
        f"config negatives.bank_source_concepts={_bank['bank_source_concepts']} but "
        f"{config['concepts']} has only {len(CONCEPT_IDS)} concepts"
    )
_ratio = config["sentences"]["n_positives"] / _bank["n_negatives"]
if abs(_ratio - 0.4) > _bank["ratio_tolerance"]:
    raise ValueError(
        f"config sentences.n_positives / negatives.n_negatives = {_ratio:.3f}, but the paper's "
        f"400:1000 = 0.4 (tolerance negatives.ratio_tolerance={_bank['ratio_tolerance']}). AP's "
        "chance level is the positive fraction, so tau=0.5 only means what the paper means at "
        "that ratio; scale both sizes together."
    )
if _bank["bank_size"] < _bank["n_negatives"]:
    raise ValueError(
        f"config negatives.bank_size={_bank['bank_size']} < n_negatives={_bank['n_negatives']}"
    )
# Each concept's provided sentence file; a pattern that finds none is refused here, rather
# than silently generating every concept.
PROVIDED = (
    provided_files(config["sentences"]["provided"], CONCEPT_IDS)
    if config["sentences"]["provided"] is not None
    else {}
)
check_judged_pairs(JUDGMENTS, config["data_dir"], CONCEPTS["word"])


wildcard_constraints:
    model="|".join(MODELS),
    concept="[a-z0-9][a-z0-9_\\-]*",
    shard=r"\d{4}",
    judgment="|".join(JUDGMENTS),
    slug="[^/]+",


def shard_concepts(shard):
    """Concepts of a shard: a block of the table, so appending rows never moves a concept."""
    start = int(shard) * SHARD_SIZE
    return CONCEPT_IDS[start : start + SHARD_SIZE]


def shard_ids():
    return [f"{k:04d}" for k in range(N_SHARDS)]


def model_revisions():
    """(model, revision) pairs of the configured models."""
    return [
        (m["name"], r) for m in config["models"] for r in m.get("revisions", ["main"])
    ]


def provided_sentences(concept):
    return PROVIDED.get(concept)


# What sentence generation needs of a concept (so editing its domain regenerates nothing).
GENERATION_FIELDS = {
    row["concept"]: {k: row[k] for k in ("concept", "word", "pos", "definition")}
    for row in CONCEPTS.to_dict("records")
}


def concept_row(concept):
    return GENERATION_FIELDS[concept]


def sentence_file(concept):
    return paths.sentence_file(RESULTS, concept)


def bank_file():
    return paths.bank_file(RESULTS, config["negatives"]["bank_version"])


def bank_sources(wildcards):
    n = config["negatives"]["bank_source_concepts"]
    return [sentence_file(c) for c in CONCEPT_IDS[:n]]


def shard_sentences(wildcards):
    return [sentence_file(c) for c in shard_concepts(wildcards.shard)]


def expert_shards(wildcards):
    return expand(
        f"{RESULTS}/experts/{{model}}/{{revision}}/shard-{{shard}}.arrow",
        model=wildcards.model,
        revision=wildcards.revision,
        shard=shard_ids(),
    )


def model_spec(wildcards):
    return MODELS[wildcards.model]


# What loading a model needs. Its `revisions` list is left out: a job sees only its own
# revision (a wildcard), so adding a checkpoint to a model reruns nothing that exists.
MODEL_LOAD_KEYS = ("name", "source", "dtype", "random_init", "seed")


def model_load_spec(wildcards):
    spec = MODELS[wildcards.model]
    return {key: spec[key] for key in MODEL_LOAD_KEYS if key in spec}


# Config keys that change what a job computes. Speed settings (`experts.max_tokens`,
# `sentences.batch_size`) are read by the scripts from the config instead, so that tuning
# them for a site reruns nothing; tau reaches only the reductions.
EXPERT_SETTINGS = ("max_length", "unit_stats")
GENERATION_SETTINGS_IGNORED = (
    "batch_size",
    "openai_api_key_env",
    "openai_allow_insecure_http",
    # where the server runs, not which model: a restarted server on another node changes it
    "openai_base_url",
)


def expert_settings():
    return {key: config["experts"][key] for key in EXPERT_SETTINGS}


def generation_settings(wildcards):
    """The sentence settings that shape a concept's sentences: for a provided file only how
    many are taken; for generation every setting except the speed ones."""
    settings = config["sentences"]
    if provided_sentences(wildcards.concept):
        return {"n_positives": settings["n_positives"]}
    return {k: v for k, v in settings.items() if k not in GENERATION_SETTINGS_IGNORED}


# Used for a model whose architecture is neither cached nor a reference model (see
# expertalign.resources.model_shape): the sizes every expert job asked for before estimates.
UNSIZED_EXPERT_JOB = {"mem_mb": 64000, "gpu_mem_mb": 80000, "runtime": 480}


@functools.cache
def expert_job_resources(model, n_concepts):
    """Host memory, GPU memory and time limit of one expert job, from the model's shape and the
    shard (documented in expertalign.resources); retries scale them with the attempt."""
    spec = MODELS[model]
    try:
        shape = model_shape(spec["source"])
    except ValueError as err:
        logger.warning(
            f"experts {model}: using fixed sizes {UNSIZED_EXPERT_JOB}: {err}"
        )
        return UNSIZED_EXPERT_JOB
    n_positives = config["sentences"]["n_positives"]
    negatives = config["negatives"]
    bank_rows = min(negatives["bank_size"], negatives["n_negatives"] + n_positives)
    dtype = "float32" if spec.get("dtype") == "float32" else "bfloat16"
    gpu = expert_job_memory(
        shape,
        n_concepts=n_concepts,
        n_positives=n_positives,
        bank_rows=bank_rows,
        dtype=dtype,
        max_tokens=config["experts"]["max_tokens"],
    )
    return {
        "mem_mb": host_memory_mb(gpu),
        "gpu_mem_mb": gpu.total_mb,
        "runtime": expert_job_runtime_minutes(shape, n_concepts),
    }


def expert_resource(name):
    def resource(wildcards, attempt):
        sizes = expert_job_resources(
            wildcards.model, len(shard_concepts(wildcards.shard))
        )
        return sizes[name] * attempt

    return resource


def provided_input(wildcards):
    """A concept's provided sentence file as an input, so that editing it reruns the concept."""
    return provided_sentences(wildcards.concept) or []


# One list of what a config loads, shared with `expertalign prefetch --configfile`
# (expertalign.fetch): models, the generator, the pilot's model.
source_slug = fetch.source_slug
fetched_revision = fetch.fetched_revision


def model_sources():
    """Every (source, revision) a compute job loads: models, the generator, the pilot's model."""
    return fetch.model_sources(config)


def prefetched(source, revision):
    """Marker of a pre-fetched model: compute jobs depend on it and then load offline."""
    revision = fetched_revision(source, revision)
    return f"{RESULTS}/prefetch/{source_slug(source)}/{revision}.json"


def prefetched_model(wildcards):
    return prefetched(MODELS[wildcards.model]["source"], wildcards.revision)


def prefetched_generator(wildcards):
    if (
        provided_sentences(wildcards.concept)
        or config["sentences"]["backend"] != "transformers"
    ):
        return []
    return prefetched(config["sentences"]["generator"], "main")


def prefetched_pilot(wildcards):
    pilot = pilot_model_spec()
    return prefetched(pilot["source"], pilot.get("revisions", ["main"])[-1])


def men_files(split):
    """The MEN files a split is read from (data_dir or data_dir/MEN, as read_men looks)."""
    folder = Path(config["data_dir"])
    if not (folder / MEN_FILES["natural_full"]).is_file():
        folder = folder / "MEN"
    names = ["natural_full"] + (
        [] if split == "full" else ["lemma_full", f"lemma_{split}"]
    )
    return [str(folder / MEN_FILES[name]) for name in names]


def judgment_files(wildcards):
    """Every file a judgment set is read from, as inputs: a missing one fails the dry run by
    name, and an edited one reruns the alignment."""
    spec = JUDGMENTS[wildcards.judgment]
    if "path" in spec:
        return [spec["path"]]
    return men_files(spec.get("split", "test"))


def spp_files():
    """The SPP item exports under data_dir/SPP (the pattern itself when none is there, so that
    the missing-input message names the folder and the file expected)."""
    folder = Path(config["data_dir"]) / "SPP"
    found = sorted(str(path) for path in folder.glob("spp_*.csv"))
    return found or [str(folder / "spp_assoc-related_*.csv")]


def alignment_tables(suffix=""):
    return [
        f"{RESULTS}/alignment/{judgment}/{model}/{revision}{suffix}.parquet"
        for judgment in JUDGMENTS
        for model, revision in model_revisions()
    ]


def per_run(pattern):
    """``pattern`` with {model} and {revision} filled for every configured run."""
    return [pattern.format(model=m, revision=r) for m, r in model_revisions()]


def all_expert_shards():
    return [
        f"{RESULTS}/experts/{model}/{revision}/shard-{shard}.arrow"
        for model, revision in model_revisions()
        for shard in shard_ids()
    ]


def all_expert_benchmarks():
    return [
        f"{RESULTS}/benchmarks/experts/{model}/{revision}/shard-{shard}.tsv"
        for model, revision in model_revisions()
        for shard in shard_ids()
    ]


def concept_words():
    return dict(zip(CONCEPTS["concept"], CONCEPTS["word"]))


def concept_groups():
    """Domain concepts as "broader" or "specific" (concepts outside the domains are neither)."""
    domain_rows = CONCEPTS[CONCEPTS["domain"].astype(bool)]
    return {
        row["concept"]: "broader" if row["broader"] else "specific"
        for row in domain_rows.to_dict("records")
    }


def pilot_model_spec():
    """The pilot's model: a configured model by name, or any other source (e.g. gpt2)."""
    return fetch.pilot_model_spec(config)


@functools.cache
def pilot_concepts():
    """The pilot's concepts: both concepts of pilot.men_pairs MEN pairs (the paper's design),
    else pilot.concepts or the first pilot.n_concepts rows of the table."""
    settings = config["pilot"]
    if settings.get("men_pairs"):
        from expertalign.analysis.pilot import men_pilot_concepts
        from expertalign.judgments import read_men

        concept_of = {}
        for concept, word in zip(CONCEPTS["concept"], CONCEPTS["word"]):
            concept_of.setdefault(str(word).lower(), concept)
        men = read_men(config["data_dir"], settings["men_split"])
        return men_pilot_concepts(
            men, concept_of, settings["men_pairs"], settings["seed"]
        )
    chosen = settings.get("concepts") or CONCEPT_IDS[: settings["n_concepts"]]
    unknown = [c for c in chosen if c not in CONCEPT_IDS]
    if unknown:
        raise ValueError(
            f"config pilot.concepts: not in {config['concepts']}: {unknown}"
        )
    return chosen


def pilot_sentence_file(concept):
    return f"{RESULTS}/pilot/sentences/{concept}.parquet"


def pilot_sentence_files():
    """The pilot's own pools (pilot.pool_size), else the main sentence files."""
    if config["pilot"].get("pool_size"):
        return [pilot_sentence_file(c) for c in pilot_concepts()]
    return [sentence_file(c) for c in pilot_concepts()]


def pilot_bank():
    """The negative bank, only when the pilot has no pools of its own."""
    return [] if config["pilot"].get("pool_size") else [bank_file()]


def pilot_disjoint():
    disjoint = config["pilot"].get("disjoint")
    return bool(config["pilot"].get("pool_size")) if disjoint is None else disjoint


def pilot_generation_settings(wildcards):
    """A pilot pool's sentence settings: the concept's, with pilot.pool_size sentences."""
    return {
        **generation_settings(wildcards),
        "n_positives": config["pilot"]["pool_size"],
    }


def spp_final_checkpoints():
    """Model -> its final (last configured) revision, for the models of the SPP analysis
    (spp.models, default: every model that is not random-init): the paper uses 143k only.
    """
    names = config["spp"].get("models") or [
        name for name, m in MODELS.items() if not m.get("random_init", False)
    ]
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        raise ValueError(f"config spp.models: not configured models: {unknown}")
    return {name: MODELS[name].get("revisions", ["main"])[-1] for name in names}


def spp_expert_shards():
    return [
        f"{RESULTS}/experts/{model}/{revision}/shard-{shard}.arrow"
        for model, revision in spp_final_checkpoints().items()
        for shard in shard_ids()
    ]


def spp_pairs_file():
    """The SPP pairs the concept table was built for (spp.pairs), or none (sample them)."""
    path = config["spp"].get("pairs")
    return [path] if path else []


def final_outputs():
    outputs = [
        f"{RESULTS}/tables/alignment.parquet",
        f"{RESULTS}/tables/alignment.csv",
        f"{RESULTS}/tables/experts_vs_baselines.csv",
        f"{RESULTS}/figures/alignment.png",
        f"{RESULTS}/figures/baselines.png",
        f"{RESULTS}/tables/set_sizes.csv",
        f"{RESULTS}/tables/cost.csv",
        *(f"{RESULTS}/units/{model}.parquet" for model in MODELS),
    ]
    if CONCEPTS["domain"].astype(bool).any():
        outputs.append(f"{RESULTS}/tables/domains.csv")
    if config["spp"]["enabled"]:
        outputs.append(f"{RESULTS}/tables/spp_overlap.csv")
    if config["pilot"]["enabled"]:
        outputs.append(f"{RESULTS}/tables/pilot_stability.csv")
    return outputs


SOURCES = {source_slug(s): s for s, _ in model_sources()}


localrules:
    prefetch,
    alignment_summary,
    comparison_summary,
    alignment_figure,
    baseline_figure,
    domains_summary,
    cost_table,
