"""Jobs of ``workflow/rules/analysis.smk``: the paper's analyses beyond alignment.

    >>> from expertalign.jobs import analysis, runtime
    >>> runtime.start_job(snakemake.log[0])
    >>> analysis.domains(expert_files, "config/concepts.tsv", "domains.parquet", "domains.png",
    ...                  taus=[0.5], n_perm=1000, seed=0, model="pythia-1b",
    ...                  revision="step143000")

Embedding baselines, domains, development across checkpoints, semantic priming (SPP), cost and
the baseline figure. Every job reads files, calls :mod:`expertalign.analysis` and writes its
outputs atomically; per-shard paths are read back with :mod:`expertalign.paths`. The summary
tables use :func:`expertalign.jobs.alignment.concat_tables`; the pilot study has its own rule
file (``pilot.smk``) and module (:mod:`expertalign.jobs.pilot`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from expertalign.apmatrix import APMatrix
from expertalign.jobs.alignment import with_source
from expertalign.paths import parse_run, shards_by_checkpoint
from expertalign.storage import write_frame_atomic

__all__ = [
    "embedding_baselines",
    "domains",
    "development",
    "spp",
    "cost_table",
    "baseline_figure",
    "pilot_set_size_figure",
    "provenance_table",
]

log = logging.getLogger("expertalign")


def embedding_baselines(
    vector_files: Sequence[str], output: str, config: Mapping | None = None
) -> None:
    """Cosine of input embeddings and of last hidden states for every pair of concept words, from
    the expert jobs' word vectors of one (model, revision) (``vector_files``, in shard order);
    the file's metadata is theirs (model, revision, the weights' commit and hashes: the expert
    job checked them) with the package version and SHA-256 of ``config``
    (:mod:`expertalign.provenance`). No model is loaded: adding a concept makes its shard's
    vectors on the GPU, and this reduction on the CPU."""
    from expertalign import provenance
    from expertalign.baselines import baseline_pairs, read_vectors

    if not vector_files:
        raise ValueError(f"{output}: no word-vector files to make the baselines from")
    origin = provenance.file_metadata(vector_files[0])
    commit = origin.get("weights_commit", "?")
    for path in vector_files[1:]:
        other = provenance.file_metadata(path).get("weights_commit", "?")
        if other != commit:
            raise ValueError(
                f"{path}: word vectors from weights commit {other}, but {vector_files[0]} from "
                f"{commit}: rerun the expert jobs of one of them"
            )
    keep = ("model", "source", "revision", "random_init")
    meta = {
        k: v
        for k, v in origin.items()
        if k in keep or k.startswith(("weights_", "init_seed", "state_dict_"))
    }
    concepts, vectors = read_vectors([pd.read_parquet(path) for path in vector_files])
    write_frame_atomic(
        baseline_pairs(concepts, vectors), output, {**meta, **provenance.run_metadata(config)}
    )


def domains(
    expert_files: Sequence[str],
    concept_table: str,
    table_out: str,
    figure_out: str,
    *,
    taus: Sequence[float],
    n_perm: int,
    seed: int,
    model: str,
    revision: str,
    null: str = "keep_broader",
) -> None:
    """Shared domain cores vs a random baseline, per domain and as the mean over the domains
    (row ``domain`` = "mean"), at every τ; graph figure at the first τ.

    ``null``: "keep_broader" (the paper's: real broader concept, as many specific concepts as the
    domain has drawn from all concepts) or "random" (whole pseudo-domains of the domain's size
    from the concepts in no domain). Either way each domain, and each permutation's mean over
    the domains, is compared with draws of the domains' own sizes."""
    from expertalign.analysis import domains as dom
    from expertalign.analysis.domain_graph import plot_domain_graph
    from expertalign.concepts import load_concepts

    ap = APMatrix(expert_files)  # read by column blocks into packed masks, never loaded whole
    concepts = ap.concepts
    table = load_concepts(concept_table)
    table = table[table["concept"].isin(concepts)]
    parsed = dom.parse_domains(concepts, table)
    frames = []
    first_masks = None  # kept for the graph, so the AP files are swept once per τ
    for tau in taus:
        masks = ap.packed_masks(tau)
        first_masks = masks if first_masks is None else first_masks
        observed = dom.domain_shares(masks, concepts, table)
        if null == "keep_broader":
            draws = dom.keep_broader_domains(masks, parsed, n_perm=n_perm, seed=seed)
            per_domain = dom.permutation_pvalues(observed, draws)  # each against its own draws
        elif null == "random":
            candidates = dom.non_domain_rows(concepts, table)
            if len(candidates) < max(len(d.specific) for d in parsed) + 1:
                candidates = None  # too few concepts outside domains: draw from all concepts
            # one draw of the domain's size per domain per permutation: the null of the mean
            draws = dom.random_domains_matched(
                masks, parsed, n_perm=n_perm, seed=seed, candidates=candidates
            )
            # each domain against every draw of its size (draws keep nothing of the domain)
            per_domain = dom.permutation_pvalues(observed, draws.drop(columns="domain"))
        else:
            raise ValueError(f"null must be 'keep_broader' or 'random', not {null!r}")
        result = pd.concat([per_domain, dom.mean_over_domains(observed, draws)], ignore_index=True)
        result.insert(0, "null", null)
        result.insert(0, "tau", tau)
        frames.append(result)
    out = pd.concat(frames, ignore_index=True)
    out.insert(0, "checkpoint", revision)
    out.insert(0, "model", model)
    for column in out.columns:
        if out[column].map(lambda v: isinstance(v, (list, tuple, np.ndarray))).any():
            out[column] = out[column].map(lambda v: ",".join(map(str, v)))
    write_frame_atomic(out, table_out)
    plot_domain_graph(
        first_masks,
        concepts,
        table,
        figure_out,
        seed=seed,
        title=f"Expert overlap between domain concepts ({model}, {revision}, τ = {taus[0]:g})",
    )


def development(
    expert_files: Sequence[str],
    units_files: Mapping[str, str],
    *,
    taus: Sequence[float],
    revisions: Mapping[str, Sequence[str]],
    n_boot: int,
    seed: int,
    sizes_out: str,
    stability_out: str,
    distribution_out: str,
    sizes_figure: str,
    distribution_figure: str,
    concept_groups: Mapping[str, str] | None = None,
    stability_figure: str | None = None,
    development_figure: str | None = None,
    layer_submodule_out: str | None = None,
    layer_submodule_figure: str | None = None,
    specialized_figure: str | None = None,
    group_figures: Mapping[str, str] | None = None,
) -> None:
    """Set sizes, checkpoint-to-checkpoint stability and where experts sit (kind, depth, layer
    × sub-module), for all concepts and, with ``concept_groups`` (concept → "broader"/"specific"),
    per group. Optional figures (at the first τ): stability across consecutive checkpoints
    (Fig. 6), experts by kind and layer across checkpoints (Fig. 7, App. H.1-H.3), experts per
    layer × sub-module (App. H.4-H.7, also as the table ``layer_submodule_out``); the same
    development figure at the highest τ (``specialized_figure``: App. H.8-H.9's τ = 0.9) and, at
    the first τ, for the domains' broader and specific concepts only (``group_figures``: group →
    path, App. I and J; a figure that says so where the table has no such concepts)."""
    from expertalign.analysis import development as dev
    from expertalign.analysis import development_figures as devfig
    from expertalign.analysis.figures import plot_set_sizes

    runs = shards_by_checkpoint(expert_files)
    sizes, distribution = [], []
    for (model, revision), files in runs.items():
        ap = APMatrix(files)
        concepts = ap.concepts
        sizes.append(dev.concept_set_sizes(ap, taus, concepts, model=model, checkpoint=revision))
        units = pd.read_parquet(units_files[model])
        subsets = {"all": np.arange(len(concepts))}
        for group in ("broader", "specific"):
            rows = [i for i, c in enumerate(concepts) if (concept_groups or {}).get(c) == group]
            if rows:
                subsets[group] = np.asarray(rows)
        for group, rows in subsets.items():
            counts = dev.unit_expert_counts(ap, taus, rows=rows)
            for by in (
                ("kind",),
                ("kind", "submodule"),
                ("layer", "kind"),
                ("depth_bin",),
                ("layer", "kind", "submodule"),
            ):
                part = dev.expert_distribution(counts, units, n_concepts=len(rows), by=by)
                part = part.assign(
                    model=model, checkpoint=revision, grouping="+".join(by), concepts=group
                )
                distribution.append(part)
    summary = dev.summarise_set_sizes(pd.concat(sizes, ignore_index=True), n_boot=n_boot, seed=seed)
    write_frame_atomic(summary, sizes_out)
    plot_set_sizes(summary, sizes_figure)

    def load_ap(model: str, revision: str) -> APMatrix:
        return APMatrix(runs[(model, revision)])

    # Models with one checkpoint have no consecutive pair: an empty table with its columns.
    multi = {m: list(r) for m, r in revisions.items() if len(r) > 1}
    stability = dev.development_stability(load_ap, multi, taus)
    write_frame_atomic(stability, stability_out)
    if stability_figure:
        if stability.empty:
            devfig.plot_message(
                stability_figure,
                "No model has several checkpoints: nothing to compare across training.",
            )
        else:
            devfig.plot_checkpoint_stability(stability, stability_figure)
    dist = pd.concat(distribution, ignore_index=True)
    write_frame_atomic(dist, distribution_out)
    devfig.plot_expert_distribution(dist, distribution_figure)
    if development_figure:
        devfig.plot_expert_development(dist, development_figure, tau=taus[0])
    if specialized_figure:
        devfig.plot_expert_development(
            dist,
            specialized_figure,
            tau=max(taus),
            title=f"Highly specialised experts (τ = {max(taus):g}) across training",
        )
    for group, path in (group_figures or {}).items():
        if group in set(dist["concepts"]):
            devfig.plot_expert_development(
                dist,
                path,
                tau=taus[0],
                concepts=group,
                title=f"Experts of the domains' {group} concepts across training",
            )
        else:
            devfig.plot_message(path, f"The concept table has no {group} (domain) concepts.")
    layer_sub = dist[dist["grouping"] == "layer+kind+submodule"].dropna(axis=1, how="all")
    layer_sub = layer_sub.drop(columns="grouping").astype({"layer": int})
    first = ["model", "checkpoint", "concepts", "tau", "layer", "kind", "submodule"]
    layer_sub = layer_sub[first + [c for c in layer_sub.columns if c not in first]]
    if layer_submodule_out:
        write_frame_atomic(layer_sub, layer_submodule_out)
    if layer_submodule_figure:
        devfig.plot_layer_submodule(layer_sub, layer_submodule_figure, tau=taus[0])


def spp(
    expert_files: Sequence[str],
    words: Mapping[str, str],
    spp_dir: str,
    *,
    final: Mapping[str, str],
    pairs_file: str | None,
    n_per_level: int,
    seed: int,
    split: str,
    tau: float,
    interaction: bool,
    pairs_out: str,
    model_out: str,
    figure_out: str,
) -> None:
    """Expert overlap of SPP prime–target pairs by relation level at each model's final
    checkpoint (``final``: model -> revision; other checkpoints' files are ignored), and one
    mixed-effects model across the models, ordered by size (their number of units)."""
    from expertalign.analysis import spp as spp_analysis
    from expertalign.analysis.figures import plot_spp_overlap
    from expertalign.concepts import concept_of_words

    concept_of = concept_of_words(words)
    if pairs_file:
        pairs = spp_analysis.read_pairs(pairs_file)
        lacking = sorted((set(pairs["word1"]) | set(pairs["word2"])) - set(concept_of))
        if lacking:
            raise ValueError(
                f"{pairs_file}: {len(lacking)} word(s) have no concept in the "
                f"concept table, e.g. {lacking[:5]}; rebuild the table and the "
                "pair file together"
            )
        counts = pairs["level"].value_counts()
        caption = spp_analysis.levels_caption(split) + (
            f" Pairs per level (none/weak/strong): "
            f"{'/'.join(str(counts.get(lv, 0)) for lv in spp_analysis.LEVELS)}, "
            f"as sampled when the concept table was built ({Path(pairs_file).name})."
        )
    else:
        try:
            levels = spp_analysis.relation_levels(
                spp_dir, n_per_level=n_per_level, seed=seed, split=split, vocabulary=concept_of
            )
        except ValueError as err:
            # fewer eligible pairs than asked for: use every pair whose two words are concepts
            log.warning("SPP: %s; using all eligible pairs", err)
            levels = spp_analysis.relation_levels(
                spp_dir, n_per_level=None, seed=seed, split=split, vocabulary=concept_of
            )
        pairs, caption = levels.pairs, levels.caption
    rows, n_units = [], {}
    for (model, revision), files in shards_by_checkpoint(expert_files).items():
        if final.get(model) != revision:
            log.info("SPP: skipping %s %s (not the final checkpoint)", model, revision)
            continue
        ap = APMatrix(files)
        n_units[model] = ap.shape[1]
        index = {c: i for i, c in enumerate(ap.concepts)}
        a = [index[concept_of[w]] for w in pairs["word1"]]
        b = [index[concept_of[w]] for w in pairs["word2"]]
        # only the pairs' concepts are read, each packed to bits as it is read
        needed = sorted(set(a) | set(b))
        position = {row: i for i, row in enumerate(needed)}
        masks = ap.packed_rows(needed, tau)
        overlap = (
            masks.jaccard_rows([position[i] for i in a], [position[i] for i in b])
            if len(a)
            else np.array([])
        )
        rows.append(pairs.assign(model=model, checkpoint=revision, overlap=overlap))
    if not rows:
        raise ValueError(f"SPP: no expert shards of the final checkpoints {dict(final)}")
    table = pd.concat(rows, ignore_index=True)
    write_frame_atomic(table, pairs_out)
    order = sorted(n_units, key=lambda m: (n_units[m], list(final).index(m)))
    log.info("SPP: models by size: %s", ", ".join(f"{m} ({n_units[m]} units)" for m in order))
    if table["level"].nunique() < 3 or len(pairs) < 12:
        log.warning(
            "SPP: only %d pairs over %d levels; no mixed model",
            len(pairs),
            table["level"].nunique(),
        )
        coefficients = pd.DataFrame(columns=["term", "estimate", "se", "z", "p", "structure"])
    else:
        fit = spp_analysis.fit_mixed_model(
            table, size_order=order, interaction=interaction, caption=caption
        )
        for message in fit.warnings:
            log.warning("SPP mixed model: %s", message)
        coefficients = fit.coefficients.assign(converged=fit.converged, n_obs=fit.n_obs)
        caption = fit.caption
    coefficients["models"] = ",".join(order)
    coefficients["caption"] = caption
    write_frame_atomic(coefficients, model_out)
    plot_spp_overlap(table, figure_out, caption=caption)


def cost_table(
    benchmark_files: Sequence[str],
    shard_sizes: Mapping[str, Mapping[str, int]],
    output: str,
    *,
    summary_out: str | None = None,
    predicted_hours: Mapping[str, float] | None = None,
    slurm_log_dirs: Sequence[str] | None = None,
) -> None:
    """Seconds per concept per (model, checkpoint) from the expert rules' benchmark files;
    ``shard_sizes``: model -> shard -> its concepts (models may have shards of their own size).

    With ``summary_out``, the campaign's summary per model: expert jobs, GPU-hours they used (the
    benchmark files' wall time of jobs that each hold one GPU), the GPU-hours ``predicted_hours``
    (:func:`expertalign.forecast.predicted_expert_hours`) and their ratio, and the jobs that
    SLURM ran more than once (one SLURM log per attempt, in ``slurm_log_dirs``: by default
    where ``expertalign status`` reads them, :data:`expertalign.status.probes.SLURM_LOG_DIRS`)."""
    rows = []
    for path in benchmark_files:
        run = parse_run(path)
        bench = pd.read_csv(path, sep="\t")
        n = shard_sizes[run.model][run.shard]
        rows.append(
            {
                "source": run.source,
                "model": run.model,
                "checkpoint": run.revision,
                "shard": run.shard,
                "concepts": n,
                "seconds": bench["s"].mean(),
                "max_rss_mb": bench["max_rss"].mean(),
            }
        )
    frame = pd.DataFrame(rows)
    summary = (
        frame.groupby(["source", "model", "checkpoint"], sort=False)
        .agg(
            concepts=("concepts", "sum"),
            seconds=("seconds", "sum"),
            max_rss_mb=("max_rss_mb", "max"),
        )
        .reset_index()
    )
    summary["seconds_per_concept"] = summary["seconds"] / summary["concepts"]
    write_frame_atomic(summary, output)
    if summary_out is not None:
        write_frame_atomic(
            campaign_summary(
                frame,
                predicted_hours or {},
                retried_jobs(slurm_log_dirs or _slurm_log_dirs(), frame),
            ),
            summary_out,
        )


def _slurm_log_dirs() -> Sequence[str]:
    from expertalign.status.probes import SLURM_LOG_DIRS

    return SLURM_LOG_DIRS


def retried_jobs(log_dirs: Sequence[str], jobs: pd.DataFrame) -> dict[str, int]:
    """Model -> expert jobs (rows of ``jobs``: source, model, checkpoint, shard) that SLURM ran
    more than once: the executor keeps one log per attempt in
    ``<dir>/rule_<rule>/<wildcard values joined by "_">/<jobid>.log``."""
    from pathlib import Path

    model_of = {
        f"{r.source}_{r.model}_{r.checkpoint}_{r.shard}": r.model for r in jobs.itertuples()
    }
    counts: dict[str, int] = {}
    for root in log_dirs:
        for job_dir in Path(root).glob("rule_experts*/*"):
            model = model_of.get(job_dir.name)
            if model is not None and len(list(job_dir.glob("*.log"))) > 1:
                counts[model] = counts.get(model, 0) + 1
    return counts


def campaign_summary(
    jobs: pd.DataFrame, predicted_hours: Mapping[str, float], retried: Mapping[str, int]
) -> pd.DataFrame:
    """Per model: expert jobs, GPU-hours used and predicted, their ratio, jobs retried."""
    used = jobs.groupby("model", sort=False).agg(
        expert_jobs=("shard", "size"), concepts=("concepts", "sum"), seconds=("seconds", "sum")
    )
    table = used.reset_index()
    table["gpu_hours_used"] = table["seconds"] / 3600
    table["gpu_hours_predicted"] = table["model"].map(predicted_hours)
    table["used_over_predicted"] = table["gpu_hours_used"] / table["gpu_hours_predicted"]
    table["jobs_retried"] = table["model"].map(lambda m: retried.get(m, 0)).astype(int)
    return table.drop(columns="seconds")


def baseline_figure(
    alignment_table: str,
    output: str,
    *,
    human_reference: float,
    taus: Sequence[float] | None = None,
) -> None:
    """Experts (Jaccard) at every τ of the table (or of ``taus``) vs every baseline measure, per
    model, on the first judgment set: one bar per τ (light to dark blue, in τ order), then one
    per baseline (other colours)."""
    import matplotlib.pyplot as plt

    from expertalign.analysis.figures import plot_baselines

    frame = pd.read_parquet(alignment_table)
    frame = frame[frame["judgment"] == frame["judgment"].iloc[0]]
    jaccard = frame[frame["measure"] == "jaccard"]
    if taus is None:
        taus = sorted(jaccard["tau"].dropna().unique())
    missing = [t for t in taus if not np.isclose(jaccard["tau"], t).any()]
    if missing:
        raise ValueError(f"{alignment_table}: no expert (jaccard) rows at τ = {missing}")
    others = frame[frame["measure"] != "jaccard"]
    blues = plt.get_cmap("Blues")
    parts, colors = [], {}
    for i, tau in enumerate(sorted(taus)):
        method = f"experts (Jaccard, τ={tau:g})"
        parts.append(jaccard[np.isclose(jaccard["tau"], tau)].assign(method=method))
        colors[method] = blues(0.45 + 0.5 * i / max(1, len(taus) - 1))
    # the baselines in tab10's colours after its blue, which would pass for an expert bar
    tab10 = plt.get_cmap("tab10")
    for i, measure in enumerate(dict.fromkeys(others["measure"])):
        colors[measure] = tab10((i + 1) % tab10.N)
    both = pd.concat([*parts, others.assign(method=others["measure"])])
    both["model"] = with_source(both) + " " + both["checkpoint"]
    plot_baselines(
        both,
        output,
        reference=human_reference,
        title=f"Expert overlap vs baselines ({frame['judgment'].iloc[0]})",
        colors=colors,
    )


def pilot_set_size_figure(
    sizes_table: str, output: str, *, seed: int = 0, n_boot: int | None = None
) -> None:
    """Paper Fig. 9 from the pilot's set-size table (``pilot_set_sizes.csv``): 95% bootstrap
    CIs with ``n_boot`` resamples (by default the pilot's own,
    :data:`expertalign.analysis.pilot.PILOT_N_BOOT`) seeded by ``seed``."""
    from expertalign.analysis.figures import plot_pilot_set_sizes
    from expertalign.analysis.pilot import PILOT_N_BOOT

    n = PILOT_N_BOOT if n_boot is None else n_boot
    plot_pilot_set_sizes(pd.read_csv(sizes_table), output, n_boot=n, seed=seed)


def provenance_table(
    expert_files: Sequence[str], baseline_files: Sequence[str], output: str
) -> None:
    """Which weights every expert shard and baseline file came from, against the current
    prefetch records (``<results>/prefetch/*/*.json``, next to ``tables/``): a table row per
    file (:func:`expertalign.provenance.provenance_table`); files made from other weights than
    their siblings or the current record are logged as warnings."""
    from expertalign import provenance

    results = Path(output).resolve().parent.parent
    markers = sorted(results.glob("prefetch/*/*.json"))
    table = provenance.provenance_table([*expert_files, *baseline_files], markers)
    for row in table.loc[~table["consistent"].astype(bool)].itertuples():
        log.warning(
            "%s: %s@%s computed from commit %s, weights %s; now commit %s, weights %s",
            row.file,
            row.model,
            row.revision,
            row.weights_commit or "(none)",
            row.weights_sha256 or "(none)",
            row.current_commit or "(none)",
            row.current_weights_sha256 or "(none)",
        )
    write_frame_atomic(table, output)
