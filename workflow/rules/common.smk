import re
import sys
from pathlib import Path

from expertalign import paths
from expertalign.concepts import load_concepts
from expertalign.config import check_config, validate_config
from expertalign.effective_config import inherited_note, write_effective_config
from expertalign.judgments import MEN_FILES, check_judged_pairs
from expertalign.forecast import predicted_expert_hours
from expertalign.load_checks import (
    check_config_files,
    check_config_inputs,
    profile_files,
)
from expertalign.plan import PILOT_POOLS, Campaign, canonical

# One-line errors naming the config key, or the config file, line and column, before any job
# is planned (see README: When something is wrong). A key given twice in a file Snakemake read.
check_config_files([*workflow.configfiles, *profile_files()])
validate_config(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
check_config(config)
check_config_inputs(config, list(load_concepts(config["concepts"])["concept"]))
# the Snakefile's configfile first, each --configfile on top (expertalign.effective_config)
CONFIG_FILES = [
    *(f for f in workflow.configfiles if f not in workflow.overwrite_configfiles),
    *workflow.overwrite_configfiles,
]
INHERITED = inherited_note(CONFIG_FILES[0], CONFIG_FILES[1:])
if workflow.is_main_process and INHERITED:
    print(INHERITED, file=sys.stderr)

# Everything the workflow plans comes from one package object (expertalign.plan), which
# `expertalign plan` and `expertalign status` read too; this file is the glue to Snakemake.
CAMPAIGN = Campaign(config)
RESULTS = CAMPAIGN.results
CONCEPTS = CAMPAIGN.concepts
CONCEPT_IDS = CAMPAIGN.concept_ids
SHARD_SIZE = CAMPAIGN.shard_size
MODELS = CAMPAIGN.models
TAUS = CAMPAIGN.taus
JUDGMENTS = CAMPAIGN.judgments
# Each sentence source's settings (sentences.sources over the sentences block); the first
# source also feeds the domain, development, SPP and pilot analyses.
SENTENCE_SOURCES = CAMPAIGN.sources
PRIMARY_SOURCE = CAMPAIGN.primary_source
check_judged_pairs(JUDGMENTS, config["data_dir"], CONCEPTS["word"])


wildcard_constraints:
    source="|".join(SENTENCE_SOURCES),
    sentence_set=r"[a-z][a-z0-9_\-]*",
    batch=r"(gpu|cpu)-\d{3,}",
    model="|".join(MODELS),
    concept="[a-z0-9][a-z0-9_\\-]*",
    shard=r"\d{4}",
    part=r"\d{4}",
    judgment="|".join(JUDGMENTS),
    slug="[^/]+",


shard_concepts = CAMPAIGN.shard_concepts
shard_ids = CAMPAIGN.shard_ids
model_revisions = CAMPAIGN.model_revisions
concept_words = CAMPAIGN.concept_words
concept_groups = CAMPAIGN.concept_groups
pilot_concepts = CAMPAIGN.pilot_concepts
spp_final_checkpoints = CAMPAIGN.spp_final_checkpoints


def sentence_file(source, concept):
    return paths.sentence_file(RESULTS, source, concept)


def pilot_sentence_file(concept):
    return paths.pilot_sentence_file(RESULTS, concept)


def bank_file(source="{source}"):
    return paths.bank_file(RESULTS, source, config["negatives"]["bank_version"])


def source_n_negatives(wildcards):
    return CAMPAIGN.negatives_of(wildcards.source)["n_negatives"]


def source_bank_size(wildcards):
    return CAMPAIGN.negatives_of(wildcards.source)["bank_size"]


def source_expert_settings(wildcards):
    return CAMPAIGN.expert_settings(wildcards.source)


def bank_sources(wildcards):
    n = config["negatives"]["bank_source_concepts"]
    return [sentence_file(wildcards.source, c) for c in CONCEPT_IDS[:n]]


def shard_sentences(wildcards):
    concepts = shard_concepts(wildcards.shard, wildcards.model)
    return [sentence_file(wildcards.source, c) for c in concepts]


def expert_shard(source, model, revision, shard):
    return paths.expert_shard(RESULTS, source, model, revision, shard)


def expert_shards(wildcards):
    source = getattr(wildcards, "source", PRIMARY_SOURCE)
    return [
        expert_shard(source, wildcards.model, wildcards.revision, shard)
        for shard in shard_ids(wildcards.model)
    ]


def shard_words(wildcards):
    """The words of a shard's concepts, in shard order, for its word vectors."""
    words = concept_words()
    return {c: words[c] for c in shard_concepts(wildcards.shard, wildcards.model)}


def baseline_word_vectors(wildcards):
    """The word vectors of every shard of a (model, revision), from the first sentence source's
    expert jobs (word vectors do not depend on sentences)."""
    return [
        paths.word_vectors_file(
            RESULTS, PRIMARY_SOURCE, wildcards.model, wildcards.revision, shard
        )
        for shard in shard_ids(wildcards.model)
    ]


def model_load_spec(wildcards):
    return CAMPAIGN.model_load_spec(wildcards.model)


# ------------------------------------------------------------------ sentence batches


def sentence_batch_dir(sentence_set, batch):
    return paths.sentence_batch_dir(RESULTS, sentence_set, batch)


def batch_params(wildcards):
    """Everything the sentence job needs of its batch (its members still to make)."""
    return CAMPAIGN.batch_params(wildcards.sentence_set, wildcards.batch)


def batch_settings(wildcards):
    return canonical(CAMPAIGN.sentence_sets[wildcards.sentence_set].settings)


def batch_provided(wildcards):
    """Provided files of a batch, as inputs (a missing one fails the dry run by name)."""
    return list(batch_params(wildcards)["provided"].values())


def batch_fallback(wildcards):
    return list(batch_params(wildcards)["fallback"].values())


def batch_generator(wildcards):
    generator = CAMPAIGN.batch_generator(wildcards.sentence_set, wildcards.batch)
    return [] if generator is None else ancient(prefetched(*generator))


def planned_concepts_pattern(sentence_sets_of_folder):
    """A {concept} constraint that matches only planned concepts, each only after its own
    folder (``"sentences/brown/"``): the rule that moves a concept out of its batch must
    match nothing else, or every up-to-date sentence file would get a producing job."""
    alternatives = [
        f"(?<={re.escape(folder)})(?:{'|'.join(map(re.escape, sorted(members)))})"
        for folder, members in sentence_sets_of_folder.items()
        if members
    ]
    return "|".join(alternatives) or "(?!)"


def planned_sentence_files():
    return planned_concepts_pattern(
        {
            f"sentences/{source}/": CAMPAIGN.stale_concepts(source)
            for source in SENTENCE_SOURCES
        }
    )


def planned_pilot_pools():
    pools = (
        CAMPAIGN.stale_concepts(PILOT_POOLS)
        if PILOT_POOLS in CAMPAIGN.sentence_sets
        else []
    )
    return planned_concepts_pattern({"pilot/sentences/": pools})


def all_sentence_files():
    return [
        sentence_file(source, c) for source in SENTENCE_SOURCES for c in CONCEPT_IDS
    ]


def batch_of_sentence_file(wildcards):
    source = getattr(wildcards, "source", PILOT_POOLS)
    return sentence_batch_dir(source, CAMPAIGN.batch_of(source, wildcards.concept))


# ------------------------------------------------------------------ expert jobs


def expert_models_pattern(large):
    """The {model} constraint of `experts` (large=False) or `experts_large` (large=True)."""
    names = [name for name in MODELS if CAMPAIGN.needs_large_gpu(name) == large]
    return "|".join(map(re.escape, names)) or "(?!)"


def expert_resource(name):
    def resource(wildcards, attempt):
        sizes = CAMPAIGN.expert_job_resources(
            wildcards.model, len(shard_concepts(wildcards.shard, wildcards.model))
        )
        return sizes[name] * attempt

    return resource


def prefetched(source, revision):
    """Marker of a pre-fetched model: compute jobs depend on it and then load offline."""
    revision = paths.fetched_revision(source, revision)
    return paths.prefetch_marker(RESULTS, paths.source_slug(source), revision)


# Compute jobs take the marker as ancient: a prefetch that reruns (a touched script, a new
# checkout) refreshes the cache but changes no result, so it must not rerun GPU work.
def prefetched_model(wildcards):
    return ancient(prefetched(MODELS[wildcards.model]["source"], wildcards.revision))


def prefetched_units_model(wildcards):
    return ancient(
        prefetched(
            MODELS[wildcards.model]["source"], CAMPAIGN.revisions(wildcards.model)[0]
        )
    )


def prefetched_pilot(wildcards):
    pilot = pilot_model_spec()
    return ancient(prefetched(pilot["source"], pilot.get("revisions", ["main"])[-1]))


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
        for shard in shard_ids(model)
    ]


def all_expert_benchmarks():
    return [
        paths.expert_benchmark(RESULTS, source, model, revision, shard)
        for source in SENTENCE_SOURCES
        for model, revision in model_revisions()
        for shard in shard_ids(model)
    ]


def pilot_model_spec():
    """The pilot's model: a configured model by name, or any other source (e.g. gpt2)."""
    return paths.pilot_model_spec(config)


def pilot_sentence_files():
    """The pilot's own pools (pilot.pool_size), else the main sentence files."""
    if config["pilot"].get("pool_size"):
        return [pilot_sentence_file(c) for c in pilot_concepts()]
    return [sentence_file(PRIMARY_SOURCE, c) for c in pilot_concepts()]


def pilot_bank():
    """The negative bank, only when the pilot has no pools of its own."""
    return [] if config["pilot"].get("pool_size") else [bank_file(PRIMARY_SOURCE)]


def pilot_settings():
    """What the pilot computes from, besides its concepts, model and sentences."""
    keys = ("n_positives", "n_negatives", "folds", "seed")
    return canonical({key: config["pilot"][key] for key in keys})


def pilot_disjoint():
    disjoint = config["pilot"].get("disjoint")
    return bool(config["pilot"].get("pool_size")) if disjoint is None else disjoint


def spp_expert_shards():
    return [
        expert_shard(PRIMARY_SOURCE, model, revision, shard)
        for model, revision in spp_final_checkpoints().items()
        for shard in shard_ids(model)
    ]


def spp_pairs_file():
    """The SPP pairs the concept table was built for (spp.pairs), or none (sample them)."""
    path = config["spp"].get("pairs")
    return [path] if path else []


def causal_concepts():
    return CAMPAIGN.causal_concepts() if config["causal"]["enabled"] else []


def causal_sentences(wildcards):
    return [sentence_file(wildcards.source, c) for c in causal_concepts()]


def causal_judgment():
    """The judgment set whose pairs choose the causal check's concepts (name and spec)."""
    name = config["causal"]["judgment"]
    return canonical({"name": name, "spec": JUDGMENTS.get(name, {})})


def causal_judgment_files():
    spec = JUDGMENTS.get(config["causal"]["judgment"], {})
    return [spec["path"]] if "path" in spec else men_files(spec.get("split", "test"))


def causal_part(part):
    """The concepts one causal job checks (its part of the check's concepts)."""
    parts = CAMPAIGN.causal_parts()
    if part not in parts:
        raise ValueError(f"causal part {part!r}: the check has parts {list(parts)}")
    return parts[part]


def causal_resource(name):
    def resource(wildcards, attempt):
        n_part = len(causal_part(wildcards.part))
        return CAMPAIGN.causal_job_resources(wildcards.model, n_part)[name] * attempt

    return resource


def causal_tables():
    """The causal check per sentence source and model, at the model's final checkpoint: one
    table per part of its concepts."""
    return [
        paths.causal_file(RESULTS, source, model, CAMPAIGN.revisions(model)[-1], part)
        for source in CAMPAIGN.causal_sources()
        for model in MODELS
        for part in CAMPAIGN.causal_parts()
    ]


def final_outputs():
    outputs = [
        f"{RESULTS}/tables/alignment.parquet",
        f"{RESULTS}/tables/alignment.csv",
        f"{RESULTS}/tables/experts_vs_baselines.csv",
        f"{RESULTS}/figures/alignment.png",
        f"{RESULTS}/figures/baselines.png",
        f"{RESULTS}/tables/set_sizes.csv",
        f"{RESULTS}/tables/cost.csv",
        f"{RESULTS}/tables/campaign_summary.csv",
        f"{RESULTS}/tables/sentence_diversity.csv",
        f"{RESULTS}/tables/provenance.csv",
        *(paths.units_file(RESULTS, model) for model in MODELS),
    ]
    if CONCEPTS["domain"].astype(bool).any():
        outputs.append(f"{RESULTS}/tables/domains.csv")
    if config["spp"]["enabled"]:
        outputs.append(f"{RESULTS}/tables/spp_overlap.csv")
    if config["pilot"]["enabled"]:
        outputs.append(f"{RESULTS}/tables/pilot_stability.csv")
    if config["causal"]["enabled"]:
        outputs.append(f"{RESULTS}/tables/causal.csv")
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
