"""Workflow steps of the paper's analyses (baselines, domains, development, SPP, cost).

    >>> from expertalign.analysis import steps
    >>> steps.domains(expert_files, "config/concepts.tsv", "domains.parquet", "domains.png",
    ...               taus=[0.5], n_perm=1000, seed=0, model="pythia-1b", revision="step143000")

Like :mod:`expertalign.steps`, every function reads files, calls the analysis modules and writes
its outputs atomically; the Snakemake scripts only unpack ``snakemake``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from expertalign.storage import read_expertise, write_table_atomic

__all__ = [
    "embedding_baselines",
    "domains",
    "development",
    "spp",
    "cost_table",
    "concat_tables",
    "baseline_figure",
]

log = logging.getLogger("expertalign")


def _write(frame: pd.DataFrame, path: str) -> None:
    write_table_atomic(pa.Table.from_pandas(frame, preserve_index=False), path)


def embedding_baselines(spec: Mapping, revision: str, words: Mapping[str, str],
                        output: str) -> None:
    """Cosine of input embeddings and of last hidden states for every pair of concept words."""
    from expertalign.baselines import baseline_pairs, word_vectors
    from expertalign.steps import _load

    lm = _load(spec, revision)
    concepts = list(words)
    vectors = word_vectors(lm.model, lm.tokenizer, [words[c] for c in concepts])
    _write(baseline_pairs(concepts, vectors), output)


def _masks(ap: np.ndarray, tau: float) -> np.ndarray:
    return ap > tau


def domains(expert_files: Sequence[str], concept_table: str, table_out: str, figure_out: str, *,
            taus: Sequence[float], n_perm: int, seed: int, model: str, revision: str) -> None:
    """Shared domain cores vs random pseudo-domains, at every τ; graph figure at the first τ."""
    from expertalign.analysis import domains as dom
    from expertalign.concepts import load_concepts

    concepts, ap = read_expertise(expert_files)
    table = load_concepts(concept_table)
    table = table[table["concept"].isin(concepts)]
    frames = []
    for tau in taus:
        masks = _masks(ap, tau)
        observed = dom.domain_shares(masks, concepts, table)
        candidates = dom.non_domain_rows(concepts, table)
        if len(candidates) < 5:  # too few concepts outside domains: draw from all concepts
            candidates = None
        null = dom.random_domains(masks, n_perm=n_perm, seed=seed, candidates=candidates)
        result = dom.permutation_pvalues(observed, null)
        result.insert(0, "tau", tau)
        frames.append(result)
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "checkpoint", revision)
    out.insert(0, "model", model)
    for column in out.columns:
        if out[column].map(lambda v: isinstance(v, (list, tuple, np.ndarray))).any():
            out[column] = out[column].map(lambda v: ",".join(map(str, v)))
    _write(out, table_out)
    dom.plot_domain_graph(
        _masks(ap, taus[0]), concepts, table, figure_out, seed=seed,
        title=f"Expert overlap between domain concepts ({model}, {revision}, τ = {taus[0]:g})",
    )


def _runs(expert_files: Sequence[str]) -> dict[tuple[str, str], list[str]]:
    """Group shard files by (model, revision) from their paths .../experts/{model}/{revision}/."""
    runs: dict[tuple[str, str], list[str]] = {}
    for path in expert_files:
        match = re.search(r"experts/([^/]+)/([^/]+)/shard-\d+\.arrow$", str(path))
        if not match:
            raise ValueError(f"not an expert shard path: {path}")
        runs.setdefault((match.group(1), match.group(2)), []).append(str(path))
    return runs


def development(expert_files: Sequence[str], units_files: Mapping[str, str], *,
                taus: Sequence[float], revisions: Mapping[str, Sequence[str]], n_boot: int,
                seed: int, sizes_out: str, stability_out: str, distribution_out: str,
                sizes_figure: str, distribution_figure: str,
                concept_groups: Mapping[str, str] | None = None) -> None:
    """Set sizes, checkpoint-to-checkpoint stability and where experts sit (kind, depth), for
    all concepts and, with ``concept_groups`` (concept → "broader"/"specific"), per group."""
    from expertalign.analysis import development as dev
    from expertalign.analysis.figures import plot_expert_distribution, plot_set_sizes

    runs = _runs(expert_files)
    sizes, distribution = [], []
    for (model, revision), files in runs.items():
        concepts, ap = read_expertise(files)
        sizes.append(dev.concept_set_sizes(ap, taus, concepts, model=model, checkpoint=revision))
        units = pd.read_parquet(units_files[model])
        subsets = {"all": np.arange(len(concepts))}
        for group in ("broader", "specific"):
            rows = [i for i, c in enumerate(concepts) if (concept_groups or {}).get(c) == group]
            if rows:
                subsets[group] = np.asarray(rows)
        for group, rows in subsets.items():
            counts = dev.unit_expert_counts(ap[rows], taus)
            for by in (("kind",), ("kind", "submodule"), ("layer", "kind"), ("depth_bin",)):
                part = dev.expert_distribution(counts, units, n_concepts=len(rows), by=by)
                part = part.assign(model=model, checkpoint=revision, grouping="+".join(by),
                                   concepts=group)
                distribution.append(part)
    summary = dev.summarise_set_sizes(pd.concat(sizes, ignore_index=True), n_boot=n_boot,
                                      seed=seed)
    _write(summary, sizes_out)
    plot_set_sizes(summary, sizes_figure)

    def load_ap(model: str, revision: str) -> np.ndarray:
        return read_expertise(runs[(model, revision)])[1]

    multi = {m: list(r) for m, r in revisions.items() if len(r) > 1}
    if multi:
        stability = dev.development_stability(load_ap, multi, taus)
    else:
        stability = pd.DataFrame(columns=["model", "checkpoint_from", "checkpoint_to", "tau",
                                          "concept", "jaccard", "size_from", "size_to"])
    _write(stability, stability_out)
    dist = pd.concat(distribution, ignore_index=True)
    _write(dist, distribution_out)
    plot_expert_distribution(dist, distribution_figure)


def spp(expert_files: Sequence[str], words: Mapping[str, str], spp_dir: str, *,
        n_per_level: int, seed: int, split: str, tau: float, pairs_out: str, model_out: str,
        figure_out: str) -> None:
    """Expert overlap of SPP prime–target pairs by relation level, and the mixed-effects model."""
    from expertalign.analysis import spp as spp_analysis
    from expertalign.analysis.figures import plot_spp_overlap
    from expertalign.stats import jaccard_rows

    concept_of = {str(w).lower(): c for c, w in reversed(list(words.items()))}
    try:
        levels = spp_analysis.relation_levels(spp_dir, n_per_level=n_per_level, seed=seed,
                                              split=split, vocabulary=concept_of)
    except ValueError as err:
        # fewer eligible pairs than asked for: use every pair whose two words are concepts
        log.warning("SPP: %s; using all eligible pairs", err)
        levels = spp_analysis.relation_levels(spp_dir, n_per_level=None, seed=seed, split=split,
                                              vocabulary=concept_of)
    rows = []
    for (model, revision), files in _runs(expert_files).items():
        concepts, ap = read_expertise(files)
        index = {c: i for i, c in enumerate(concepts)}
        pairs = levels.pairs
        a = [index[concept_of[w]] for w in pairs["word1"]]
        b = [index[concept_of[w]] for w in pairs["word2"]]
        masks = ap > tau
        overlap = jaccard_rows(masks[a], masks[b]) if len(a) else np.array([])
        rows.append(pairs.assign(model=model, checkpoint=revision, overlap=overlap))
    table = pd.concat(rows, ignore_index=True)
    _write(table, pairs_out)
    fits = []
    for model, group in table.groupby("model", sort=False):
        if group["level"].nunique() < 3 or len(group) < 12:
            log.warning("SPP: %s has only %d pairs over %d levels; no mixed model", model,
                        len(group), group["level"].nunique())
            continue
        fit = spp_analysis.fit_mixed_model(group, caption=levels.caption)
        fits.append(fit.coefficients.assign(model=model))
    coefficients = pd.concat(fits, ignore_index=True) if fits else pd.DataFrame(
        columns=["term", "estimate", "se", "z", "p", "model"])
    coefficients["caption"] = levels.caption
    _write(coefficients, model_out)
    plot_spp_overlap(table, figure_out, caption=levels.caption)


def cost_table(benchmark_files: Sequence[str], shard_sizes: Mapping[str, int],
               output: str) -> None:
    """Seconds per concept per (model, checkpoint) from the expert rules' benchmark files."""
    rows = []
    for path in benchmark_files:
        match = re.search(r"experts/([^/]+)/([^/]+)/shard-(\d+)\.tsv$", str(path))
        if not match:
            raise ValueError(f"not an expert benchmark path: {path}")
        bench = pd.read_csv(path, sep="\t")
        n = shard_sizes[match.group(3)]
        rows.append({"model": match.group(1), "checkpoint": match.group(2),
                     "shard": match.group(3), "concepts": n, "seconds": bench["s"].mean(),
                     "max_rss_mb": bench["max_rss"].mean()})
    frame = pd.DataFrame(rows)
    summary = frame.groupby(["model", "checkpoint"], sort=False).agg(
        concepts=("concepts", "sum"), seconds=("seconds", "sum"), max_rss_mb=("max_rss_mb", "max")
    ).reset_index()
    summary["seconds_per_concept"] = summary["seconds"] / summary["concepts"]
    _write(summary, output)


def concat_tables(inputs: Sequence[str], parquet_out: str, csv_out: str | None = None) -> None:
    frame = pd.concat([pd.read_parquet(p) for p in inputs], ignore_index=True)
    _write(frame, parquet_out)
    if csv_out:
        _write(frame, csv_out)


def baseline_figure(alignment_table: str, output: str, *, tau: float,
                    human_reference: float) -> None:
    """Experts (Jaccard at τ) vs every baseline measure, per model, on the first judgment set."""
    from expertalign.analysis.figures import plot_baselines

    frame = pd.read_parquet(alignment_table)
    frame = frame[frame["judgment"] == frame["judgment"].iloc[0]]
    experts = frame[(frame["measure"] == "jaccard") & np.isclose(frame["tau"], tau)]
    others = frame[frame["measure"] != "jaccard"]
    both = pd.concat([experts.assign(method=f"experts (Jaccard, τ={tau:g})"),
                      others.assign(method=others["measure"])])
    both["model"] = both["model"] + " " + both["checkpoint"]
    plot_baselines(both, output, reference=human_reference,
                   title=f"Expert overlap vs baselines ({frame['judgment'].iloc[0]})")


def pilot(sentence_files: Sequence[str], bank_file: str, *, spec: Mapping, revision: str,
          concepts: Sequence[str], n_positives: Sequence[int], n_negatives: Sequence[int],
          taus: Sequence[float], k: int, seed: int, settings: Mapping, summary_out: str,
          sizes_out: str, figure_out: str) -> None:
    """Expert stability across folds and set sizes; every sentence runs through the model once."""
    from expertalign.analysis import pilot as pilot_analysis
    from expertalign.analysis.figures import plot_pilot
    from expertalign.responses import max_pooled_responses
    from expertalign.steps import _load
    from expertalign.units import find_units

    texts: list[str] = []
    pools: dict[str, list[int]] = {}
    for concept, path in zip(concepts, sentence_files):
        frame = pd.read_parquet(path)
        pools[concept] = list(range(len(texts), len(texts) + len(frame)))
        texts.extend(frame["text"])
    bank = pd.read_parquet(bank_file).sort_values("bank_rank", kind="stable")
    own = set().union(*(set(pd.read_parquet(p)["sentence_id"]) for p in sentence_files))
    negatives = bank[~bank["sentence_id"].isin(own)]["text"].tolist()
    negative_pool = list(range(len(texts), len(texts) + len(negatives)))
    texts.extend(negatives)
    lm = _load(spec, revision)
    layout = find_units(lm.model)
    responses = max_pooled_responses(lm.model, lm.tokenizer, texts, layout,
                                     max_tokens=settings["max_tokens"],
                                     max_length=settings["max_length"], progress=True)
    result = pilot_analysis.pilot_stability(
        responses.T, pools, negative_pool, n_positives=tuple(n_positives),
        n_negatives=tuple(n_negatives), taus=tuple(taus), k=k, seed=seed, disjoint=False,
    )
    summary = result.summary.assign(model=spec["name"], checkpoint=revision)
    _write(summary, summary_out)
    _write(result.sizes.assign(model=spec["name"], checkpoint=revision), sizes_out)
    plot_pilot(summary, figure_out)
