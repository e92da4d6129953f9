import math
import re
from pathlib import Path

from snakemake.utils import validate

from expertalign import paths
from expertalign.concepts import load_concepts

validate(config, schema="../schemas/config.schema.yaml")

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
    pattern = config["sentences"]["provided"]
    if pattern is None:
        return None
    path = Path(pattern.format(concept=concept))
    return str(path) if path.exists() else None


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


def source_slug(source):
    """A model source as one path component (Hugging Face ids contain a slash)."""
    return re.sub(r"[^A-Za-z0-9_.\-]+", "--", source)


def model_sources():
    """Every (source, revision) a compute job loads: models, the generator, the pilot's model."""
    pairs = [(MODELS[m]["source"], r) for m, r in model_revisions()]
    if config["sentences"]["backend"] == "transformers":
        pairs.append((config["sentences"]["generator"], "main"))
    if config["pilot"]["enabled"]:
        pilot = pilot_model_spec()
        pairs.append((pilot["source"], pilot.get("revisions", ["main"])[-1]))
    return list(dict.fromkeys((s, fetched_revision(s, r)) for s, r in pairs))


def fetched_revision(source, revision):
    """The embedded model has one version whatever the revision: fetch (convert) it once."""
    return "final" if source == "embedded" else revision


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
    name = config["pilot"].get("model") or config["models"][0]["name"]
    if name in MODELS:
        return MODELS[name]
    return {"name": source_slug(name), "source": name, "revisions": ["main"]}


def pilot_concepts():
    chosen = (
        config["pilot"].get("concepts") or CONCEPT_IDS[: config["pilot"]["n_concepts"]]
    )
    unknown = [c for c in chosen if c not in CONCEPT_IDS]
    if unknown:
        raise ValueError(
            f"config pilot.concepts: not in {config['concepts']}: {unknown}"
        )
    return chosen


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
