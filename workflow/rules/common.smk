import functools
import hashlib
import math
import re
from pathlib import Path

from expertalign import paths
from expertalign.concepts import load_concepts
from expertalign.config import check_config, sentence_sources, validate_config
from expertalign.judgments import MEN_FILES, check_judged_pairs
from expertalign.resources import (
    expert_job_memory,
    expert_job_runtime_minutes,
    host_memory_mb,
    model_shape,
)
from expertalign.sentence_plan import (
    batches,
    settings_fingerprint,
    shaping_settings,
    stale_concepts,
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
# Each sentence source's settings (sentences.sources over the sentences block); the first
# source also feeds the domain, development, SPP and pilot analyses.
SENTENCE_SOURCES = sentence_sources(config)
PRIMARY_SOURCE = next(iter(SENTENCE_SOURCES))
# Each source's provided sentence files; a pattern that finds none is refused here, rather
# than silently generating every concept.
PROVIDED = {
    source: (
        provided_files(settings["provided"], CONCEPT_IDS)
        if settings["provided"] is not None
        else {}
    )
    for source, settings in SENTENCE_SOURCES.items()
}
check_judged_pairs(JUDGMENTS, config["data_dir"], CONCEPTS["word"])


wildcard_constraints:
    source="|".join(SENTENCE_SOURCES),
    sentence_set=r"[a-z][a-z0-9_\-]*",
    batch=r"(gpu|cpu)-\d{3}-[0-9a-f]{10}",
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
    return [paths.shard_id(k) for k in range(N_SHARDS)]


def model_revisions():
    """(model, revision) pairs of the configured models."""
    return [
        (m["name"], r) for m in config["models"] for r in m.get("revisions", ["main"])
    ]


# What sentence generation needs of a concept (so editing its domain regenerates nothing).
GENERATION_FIELDS = {
    row["concept"]: {k: row[k] for k in ("concept", "word", "pos", "definition")}
    for row in CONCEPTS.to_dict("records")
}


def sentence_file(source, concept):
    return paths.sentence_file(RESULTS, source, concept)


def bank_file(source="{source}"):
    return paths.bank_file(RESULTS, source, config["negatives"]["bank_version"])


def bank_sources(wildcards):
    n = config["negatives"]["bank_source_concepts"]
    return [sentence_file(wildcards.source, c) for c in CONCEPT_IDS[:n]]


def shard_sentences(wildcards):
    return [sentence_file(wildcards.source, c) for c in shard_concepts(wildcards.shard)]


def expert_shard(source, model, revision, shard):
    return paths.expert_shard(RESULTS, source, model, revision, shard)


def expert_shards(wildcards):
    source = getattr(wildcards, "source", PRIMARY_SOURCE)
    return [
        expert_shard(source, wildcards.model, wildcards.revision, shard)
        for shard in shard_ids()
    ]


def model_spec(wildcards):
    return MODELS[wildcards.model]


# What loading a model needs. Its `revisions` list is left out: a job sees only its own
# revision (a wildcard), so adding a checkpoint to a model reruns nothing that exists.
MODEL_LOAD_KEYS = ("name", "source", "dtype", "random_init", "seed")


def model_load_spec(wildcards):
    spec = MODELS[wildcards.model]
    return {key: spec[key] for key in MODEL_LOAD_KEYS if key in spec}


# Config keys that change what an expert job computes. Speed settings (`experts.max_tokens`)
# are read by the script from the config instead, so that tuning them for a site reruns
# nothing; tau reaches only the reductions. Sentence jobs are planned by the fingerprint of
# what shapes the sentences (sentence_fingerprints below), which leaves out the speed settings.
EXPERT_SETTINGS = ("max_length", "unit_stats")


def expert_settings():
    settings = {key: config["experts"][key] for key in EXPERT_SETTINGS}
    negatives = config["negatives"]
    if negatives["mode"] != "shared":
        # only outside the default mode, so shared-mode outputs keep their recorded params
        settings["negatives_mode"] = negatives["mode"]
        settings["negatives_seed"] = negatives["seed"]
    return settings


@functools.cache
def sentence_sets():
    """What the sentence jobs make: each source's sentence files, and the pilot's own pools
    (the first source's settings with pilot.pool_size sentences). Name -> settings, the
    output file of each concept, provided files and fallback files."""
    sets = {
        source: {
            "settings": settings,
            "outputs": {c: sentence_file(source, c) for c in CONCEPT_IDS},
            "provided": PROVIDED[source],
            "fallback": (
                {c: sentence_file(settings["fallback"], c) for c in CONCEPT_IDS}
                if settings["backend"] == "corpus" and settings.get("fallback")
                else {}
            ),
        }
        for source, settings in SENTENCE_SOURCES.items()
    }
    if config["pilot"]["enabled"] and config["pilot"].get("pool_size"):
        primary = sets[PRIMARY_SOURCE]
        sets[PILOT_POOLS] = {
            "settings": {
                **primary["settings"],
                "n_positives": config["pilot"]["pool_size"],
            },
            "outputs": {c: pilot_sentence_file(c) for c in pilot_concepts()},
            "provided": primary["provided"],
            # a fallback source's files hold n_positives sentences, not a pool's
            "fallback": {},
        }
    return sets


# The name of the pilot's pools among the sentence sets (a hyphen, which source names lack).
PILOT_POOLS = "pilot-pools"


@functools.cache
def sentence_fingerprints(sentence_set, fallback=False):
    """Concept -> digest of its row and the settings its sentences depend on (see
    expertalign.sentence_plan.shaping_settings); with ``fallback``, the digest a corpus concept
    has when it takes its fallback source's sentences (only concepts that may)."""
    spec = sentence_sets()[sentence_set]
    if fallback and not spec["fallback"]:
        return {}
    fallback_prints = (
        sentence_fingerprints(spec["settings"]["fallback"]) if fallback else {}
    )
    return {
        c: settings_fingerprint(
            GENERATION_FIELDS[c],
            shaping_settings(
                spec["settings"],
                provided=spec["provided"].get(c),
                fallback_fingerprint=fallback_prints.get(c),
            ),
        )
        for c in spec["outputs"]
        if not fallback or c in spec["fallback"]
    }


@functools.cache
def sentence_batches():
    """Sentence set -> batch -> concepts: only the concepts whose file is missing or was made
    with other settings (expertalign.sentence_plan), sentences.concepts_per_job per job, so a
    job loads its generator once for many concepts and adding a concept plans only it.
    """
    plan = {}
    for name, spec in sentence_sets().items():
        prints = sentence_fingerprints(name)
        fallback_prints = sentence_fingerprints(name, fallback=True)
        accepted = {c: {prints[c], fallback_prints.get(c, prints[c])} for c in prints}
        todo = stale_concepts(spec["outputs"], accepted)
        plan[name] = {}
        for k, members in enumerate(
            batches(todo, config["sentences"]["concepts_per_job"])
        ):
            digest = hashlib.sha256(
                "".join(prints[c] for c in members).encode()
            ).hexdigest()
            device = "gpu" if batch_needs_gpu(spec, members) else "cpu"
            plan[name][f"{device}-{k:03d}-{digest[:10]}"] = members
    return plan


def batch_needs_gpu(spec, members):
    """Only a local generator needs a GPU: a batch of provided files, of corpus sentences or
    from an OpenAI-compatible server runs as a CPU job (collect_sentences)."""
    return spec["settings"]["backend"] == "transformers" and any(
        c not in spec["provided"] for c in members
    )


def sentence_batch_dir(sentence_set, batch):
    return f"{RESULTS}/sentences/.batches/{sentence_set}/{batch}"


def batch_of(sentence_set, concept):
    for batch, members in sentence_batches()[sentence_set].items():
        if concept in members:
            return batch
    raise ValueError(f"{sentence_set}: {concept} is in no planned sentence batch")


def batch_members(wildcards):
    return sentence_batches()[wildcards.sentence_set][wildcards.batch]


def batch_params(wildcards):
    """Everything the sentence job needs of its batch."""
    spec = sentence_sets()[wildcards.sentence_set]
    members = batch_members(wildcards)
    prints = sentence_fingerprints(wildcards.sentence_set)
    fallback_prints = sentence_fingerprints(wildcards.sentence_set, fallback=True)
    return {
        "concepts": [GENERATION_FIELDS[c] for c in members],
        "fingerprints": {c: prints[c] for c in members},
        "fallback_fingerprints": {
            c: fallback_prints[c] for c in members if c in fallback_prints
        },
        "provided": {c: spec["provided"][c] for c in members if c in spec["provided"]},
        "fallback": {c: spec["fallback"][c] for c in members if c in spec["fallback"]},
        "resume_dir": f"{RESULTS}/sentences/.unfinished/{wildcards.sentence_set}",
    }


def batch_provided(wildcards):
    """Provided files of a batch, as inputs (a missing one fails the dry run by name)."""
    return list(batch_params(wildcards)["provided"].values())


def batch_fallback(wildcards):
    return list(batch_params(wildcards)["fallback"].values())


def batch_generator(wildcards):
    spec = sentence_sets()[wildcards.sentence_set]
    settings = spec["settings"]
    generated = [c for c in batch_members(wildcards) if c not in spec["provided"]]
    if not generated or settings["backend"] != "transformers":
        return []
    return prefetched(settings["generator"], "main")


def planned_concepts_pattern(sentence_sets_of_folder):
    """A {concept} constraint that matches only planned concepts, each only after its own
    folder (``"sentences/brown/"``): the rule that moves a concept out of its batch must
    match nothing else, or every up-to-date sentence file would get a producing job."""
    alternatives = [
        f"(?<={re.escape(folder)})(?:{'|'.join(map(re.escape, members))})"
        for folder, members in sentence_sets_of_folder.items()
        if members
    ]
    return "|".join(alternatives) or "(?!)"


def planned_sentence_files():
    return planned_concepts_pattern(
        {
            f"sentences/{source}/": [
                c for members in sentence_batches()[source].values() for c in members
            ]
            for source in SENTENCE_SOURCES
        }
    )


def planned_pilot_pools():
    return planned_concepts_pattern(
        {
            "pilot/sentences/": [
                c
                for members in sentence_batches().get(PILOT_POOLS, {}).values()
                for c in members
            ]
        }
    )


def all_sentence_files():
    return [
        sentence_file(source, c) for source in SENTENCE_SOURCES for c in CONCEPT_IDS
    ]


def batch_of_sentence_file(wildcards):
    source = getattr(wildcards, "source", PILOT_POOLS)
    return sentence_batch_dir(source, batch_of(source, wildcards.concept))


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
    if negatives["mode"] == "per_concept":  # each concept samples from the whole pool
        bank_rows = negatives["bank_size"]
    else:
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


def needs_large_gpu(model):
    """Whether a model's expert jobs need more GPU memory than experts.standard_gpu_mem_mb."""
    needed = expert_job_resources(model, SHARD_SIZE)["gpu_mem_mb"]
    return needed > config["experts"]["standard_gpu_mem_mb"]


def expert_models_pattern(large):
    """The {model} constraint of `experts` (large=False) or `experts_large` (large=True)."""
    names = [name for name in MODELS if needs_large_gpu(name) == large]
    return "|".join(map(re.escape, names)) or "(?!)"


def expert_resource(name):
    def resource(wildcards, attempt):
        sizes = expert_job_resources(
            wildcards.model, len(shard_concepts(wildcards.shard))
        )
        return sizes[name] * attempt

    return resource


def prefetched(source, revision):
    """Marker of a pre-fetched model: compute jobs depend on it and then load offline."""
    revision = paths.fetched_revision(source, revision)
    return paths.prefetch_marker(RESULTS, paths.source_slug(source), revision)


def prefetched_model(wildcards):
    return prefetched(MODELS[wildcards.model]["source"], wildcards.revision)


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
        paths.alignment_table(RESULTS, source, judgment, model, revision, suffix)
        for source in SENTENCE_SOURCES
        for judgment in JUDGMENTS
        for model, revision in model_revisions()
    ]


def per_run(pattern):
    """``pattern`` with {model} and {revision} filled for every configured run."""
    return [pattern.format(model=m, revision=r) for m, r in model_revisions()]


def all_expert_shards():
    """Every shard of the first sentence source (the development analysis)."""
    return [
        expert_shard(PRIMARY_SOURCE, model, revision, shard)
        for model, revision in model_revisions()
        for shard in shard_ids()
    ]


def all_expert_benchmarks():
    return [
        paths.expert_benchmark(RESULTS, source, model, revision, shard)
        for source in SENTENCE_SOURCES
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
    return paths.pilot_model_spec(config)


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
    return [sentence_file(PRIMARY_SOURCE, c) for c in pilot_concepts()]


def pilot_bank():
    """The negative bank, only when the pilot has no pools of its own."""
    return [] if config["pilot"].get("pool_size") else [bank_file(PRIMARY_SOURCE)]


def pilot_disjoint():
    disjoint = config["pilot"].get("disjoint")
    return bool(config["pilot"].get("pool_size")) if disjoint is None else disjoint


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
        expert_shard(PRIMARY_SOURCE, model, revision, shard)
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
        f"{RESULTS}/tables/sentence_diversity.csv",
        *(paths.units_file(RESULTS, model) for model in MODELS),
    ]
    if CONCEPTS["domain"].astype(bool).any():
        outputs.append(f"{RESULTS}/tables/domains.csv")
    if config["spp"]["enabled"]:
        outputs.append(f"{RESULTS}/tables/spp_overlap.csv")
    if config["pilot"]["enabled"]:
        outputs.append(f"{RESULTS}/tables/pilot_stability.csv")
    return outputs


# One list of what a config loads, shared with `expertalign prefetch --configfile`
# (expertalign.paths.config_models): models, the generator, the pilot's model.
SOURCES = {paths.source_slug(s): s for s, _ in paths.config_models(config)}


localrules:
    prefetch,
    alignment_summary,
    comparison_summary,
    alignment_figure,
    baseline_figure,
    domains_summary,
    cost_table,
