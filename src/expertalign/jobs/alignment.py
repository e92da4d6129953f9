"""Jobs of ``workflow/rules/alignment.smk``: similarities, alignment with human judgments, tables.

    >>> from expertalign.jobs import alignment, runtime
    >>> runtime.start_job(snakemake.log[0])
    >>> alignment.similarity(shard_files, "pairs.parquet", "sizes.parquet", taus=[0.5, 0.9])
    >>> alignment.alignment(["pairs.parquet", "baselines.parquet"], "men.parquet",
    ...                     "men-vs-baselines.parquet", judgment={"split": "test"},
    ...                     judgment_name="men", data_dir="data", words={"cat": "cat", ...},
    ...                     n_boot=1000, seed=0, model="pythia-70m", revision="step512",
    ...                     source="generated", sentence_files=files_of_the_source)
    >>> alignment.concat_tables(tables, "alignment.parquet", "alignment.csv")

Each job reads its inputs, computes, and writes its outputs atomically (``write_table_atomic``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from expertalign.storage import write_frame_atomic

__all__ = [
    "similarity",
    "word_pair_similarities",
    "alignment",
    "fallback_concepts",
    "sentence_outcomes",
    "warn_mixed_styles",
    "concat_tables",
    "alignment_figure",
    "with_source",
]

log = logging.getLogger("expertalign")


def similarity(
    expert_files: Sequence[str], pairs_out: str, sizes_out: str, *, taus: Sequence[float]
) -> None:
    """Expert-set overlap (Jaccard at each τ) and AP cosine of every pair of concepts of one
    (source, model, revision), and each concept's number of experts at each τ."""
    from expertalign.apmatrix import APMatrix
    from expertalign.similarity import pairwise_similarity, similarity_frame

    ap = APMatrix(expert_files)  # read by column blocks: memory is one block, not the files
    concepts = ap.concepts
    sim = pairwise_similarity(ap, taus, concepts)
    write_frame_atomic(similarity_frame(sim), pairs_out)
    sizes = pd.DataFrame(
        [
            {"concept": c, "tau": tau, "n_experts": int(sim.sizes[tau][i]), "n_units": ap.shape[1]}
            for tau in sim.taus
            for i, c in enumerate(concepts)
        ]
    )
    write_frame_atomic(sizes, sizes_out)


def word_pair_similarities(
    pairs_table: pd.DataFrame, judgments: pd.DataFrame, words: Mapping[str, str]
) -> pd.DataFrame:
    """Judged pairs whose two words are concepts, with every similarity measure as a column."""
    from expertalign.concepts import concept_of_words
    from expertalign.judgments import pairs_in_vocabulary

    concept_of = concept_of_words(words)
    judged = pairs_in_vocabulary(judgments, concept_of)
    judged = judged.assign(
        concept_a=[concept_of[w.lower()] for w in judged["word1"]],
        concept_b=[concept_of[w.lower()] for w in judged["word2"]],
    )
    wide = pairs_table.assign(
        measure=np.where(
            pairs_table["tau"].notna(),
            pairs_table["measure"] + "@" + pairs_table["tau"].astype(str),
            pairs_table["measure"],
        )
    ).pivot_table(index=["concept_a", "concept_b"], columns="measure", values="value")
    # similarity tables hold each unordered pair once; look both orders up
    forward = wide.reindex(pd.MultiIndex.from_arrays([judged["concept_a"], judged["concept_b"]]))
    backward = wide.reindex(pd.MultiIndex.from_arrays([judged["concept_b"], judged["concept_a"]]))
    values = forward.fillna(backward).reset_index(drop=True)
    return pd.concat([judged.reset_index(drop=True), values], axis=1)


FALLBACK_PREFIX = "fallback:"


@dataclass(frozen=True)
class SentenceOutcomes:
    """What one sentence source's files say of its concepts (one read of each file)."""

    left_out: dict[str, str]  # concept -> why it has no sentences (no expert set)
    fell_back: dict[str, str]  # concept -> the fallback source whose sentences it took
    n_concepts: int  # concepts with sentences


def sentence_outcomes(sentence_files: Sequence[str]) -> SentenceOutcomes:
    """Which concepts of one sentence source have no sentences (their files record why; a
    source with ``too_few: leave_out`` has no expert set for them), and which took their
    ``fallback`` source's sentences (column ``source`` = ``fallback:<name>``)."""
    from expertalign.sentences import failure_of

    left_out: dict[str, str] = {}
    fell_back: dict[str, str] = {}
    n_concepts = 0
    for path in sentence_files:
        reason = failure_of(path)
        if reason is not None:
            left_out[reason.partition(":")[0]] = reason
            continue
        frame = pd.read_parquet(path, columns=["concept", "source"])
        if frame.empty:
            continue
        n_concepts += 1
        labels = frame["source"].astype(str)
        taken = labels[labels.str.startswith(FALLBACK_PREFIX)]
        if len(taken):
            fell_back[str(frame["concept"].iat[0])] = taken.iat[0][len(FALLBACK_PREFIX) :]
    return SentenceOutcomes(left_out, fell_back, n_concepts)


def left_out_concepts(sentence_files: Sequence[str]) -> dict[str, str]:
    """Concepts of one sentence source whose files record that they have no sentences, with
    the reason (:func:`sentence_outcomes`)."""
    return sentence_outcomes(sentence_files).left_out


def fallback_concepts(sentence_files: Sequence[str]) -> tuple[dict[str, str], int]:
    """``({concept: fallback source name}, number of concepts with sentences)`` of one sentence
    source (:func:`sentence_outcomes`); files that record a concept without sentences count for
    neither."""
    outcomes = sentence_outcomes(sentence_files)
    return outcomes.fell_back, outcomes.n_concepts


def warn_mixed_styles(source: str, fell_back: Mapping[str, str], n_concepts: int) -> None:
    """A warning in the job log when some, not all, of a source's concepts took another
    source's sentences: two sentence styles in one analysis (docs/ANALYSES.md, fallback)."""
    if not fell_back or len(fell_back) >= n_concepts:
        return
    names = sorted(fell_back)
    shown = ", ".join(names[:5]) + (f", ... ({len(names) - 5} more)" if len(names) > 5 else "")
    others = ", ".join(sorted(set(fell_back.values())))
    log.warning(
        "source %s mixes sentence styles: %d of %d concepts (%.0f%%) took the sentences of "
        "fallback source %s (%s); expert sets pick up sentence style, so pairs with such a "
        "concept measure style as much as meaning: read the *_no_fallback columns (pairs where "
        "neither concept fell back) beside the others",
        source,
        len(fell_back),
        n_concepts,
        100 * len(fell_back) / n_concepts,
        others,
        shown,
    )


def _spearman_stats(
    table: pd.DataFrame, measure: str, *, n_boot: int, seed: int
) -> dict[str, float]:
    from expertalign.stats import spearman_ci

    result = spearman_ci(table[measure], table["score"], n_boot=n_boot, seed=seed)
    return {
        "rho": result.rho,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "p_value": result.p_value,
        "n_pairs": result.n,
    }


def _comparison_stats(
    table: pd.DataFrame, experts: str, other: str, *, n_boot: int, seed: int
) -> dict[str, float]:
    from scipy.stats import spearmanr

    from expertalign.stats import paired_spearman_difference, williams_test

    diff, low, high, p_boot = paired_spearman_difference(
        table[experts], table[other], table["score"], n_boot=n_boot, seed=seed
    )
    r1 = spearmanr(table[experts], table["score"]).statistic
    r2 = spearmanr(table[other], table["score"]).statistic
    r12 = spearmanr(table[experts], table[other]).statistic
    if np.isfinite([r1, r2, r12]).all():
        t, p_williams = williams_test(r1, r2, r12, len(table))
    else:  # a constant measure (e.g. no experts at a high tau) has no correlation
        t, p_williams = np.nan, np.nan
    return {
        "rho_experts": r1,
        "rho_baseline": r2,
        "difference": diff,
        "ci_low": low,
        "ci_high": high,
        "p_bootstrap": p_boot,
        "williams_t": t,
        "p_williams": p_williams,
        "n_pairs": len(table),
    }


#: statistics also reported on the pairs where neither concept fell back (``<name>_no_fallback``)
NO_FALLBACK_ALIGNMENT = ("rho", "ci_low", "ci_high", "p_value", "n_pairs")
NO_FALLBACK_COMPARISON = (
    "rho_experts",
    "rho_baseline",
    "difference",
    "ci_low",
    "ci_high",
    "p_bootstrap",
    "p_williams",
    "n_pairs",
)


def _no_fallback_columns(
    stats: Mapping[str, float] | None, names: Sequence[str], n_pairs: int
) -> dict[str, float]:
    if stats is None:  # too few pairs without a fallback concept for any statistic
        return {f"{name}_no_fallback": (n_pairs if name == "n_pairs" else np.nan) for name in names}
    return {f"{name}_no_fallback": stats[name] for name in names}


def alignment(
    pairs_files: Sequence[str],
    output: str,
    comparison_output: str,
    *,
    judgment: Mapping,
    judgment_name: str,
    data_dir: str,
    words: Mapping[str, str],
    n_boot: int,
    seed: int,
    model: str,
    revision: str,
    source: str,
    sentence_files: Sequence[str] | None = None,
) -> None:
    """Spearman of every similarity measure with the human scores, with bootstrap CIs, and a
    paired comparison of expert overlap (Jaccard at each τ) against every other measure, for
    the expert sets of one sentence ``source``.

    With the source's ``sentence_files``, both tables also say how many of its concepts took a
    ``fallback`` source's sentences (``fallback_share``, ``n_concepts_fallback``; the judged
    pairs with such a concept: ``n_pairs_with_fallback``) and give every statistic again on the
    pairs where neither concept fell back (columns ``<statistic>_no_fallback``; the same values
    when no concept fell back); a mix of styles is also warned about in the log. Concepts whose
    sentence files record that they have none (left out of a ``too_few: leave_out`` source) are
    counted (``n_concepts_left_out``) and their pairs dropped from every measure. Without the
    files these columns are empty (nan)."""
    from expertalign.judgments import read_judgment_set

    judgments = read_judgment_set(judgment_name, judgment, data_dir)
    pairs = pd.concat([pd.read_parquet(p) for p in pairs_files], ignore_index=True)
    table = word_pair_similarities(pairs, judgments, words)
    measures = [c for c in table.columns if c.startswith(("jaccard", "cosine"))]
    known = sentence_files is not None
    outcomes = sentence_outcomes(sentence_files) if known else SentenceOutcomes({}, {}, 0)
    left_out = outcomes.left_out
    if left_out:
        # a source that leaves out concepts has no expert set for them: their pairs are not
        # compared (nor their baselines, so every measure is on the same pairs)
        without = table["concept_a"].isin(left_out) | table["concept_b"].isin(left_out)
        log.warning(
            "%s: %d concepts have no sentences in this source and are left out, and with them "
            "%d of the %d judged pairs: %s",
            source,
            len(left_out),
            int(without.sum()),
            len(table),
            ", ".join(sorted(left_out)),
        )
        table = table[~without].reset_index(drop=True)
    fell_back, n_concepts = outcomes.fell_back, outcomes.n_concepts
    if known:
        warn_mixed_styles(source, fell_back, n_concepts)
    with_fallback = table["concept_a"].isin(fell_back) | table["concept_b"].isin(fell_back)
    clean = table[~with_fallback].reset_index(drop=True)
    # the same pairs when none fell back: the same numbers, not computed twice
    subset = bool(with_fallback.any())
    enough = len(clean) > 3  # Williams' test needs n > 3; Spearman's CI n >= 3
    fallback = {
        "fallback_share": (len(fell_back) / n_concepts if n_concepts else 0.0) if known else np.nan,
        "n_concepts_fallback": len(fell_back) if known else np.nan,
        "n_pairs_with_fallback": int(with_fallback.sum()) if known else np.nan,
        "n_concepts_left_out": len(left_out) if known else np.nan,
    }

    def no_fallback(stats: Mapping[str, float], names: Sequence[str], again) -> dict[str, float]:
        """The ``_no_fallback`` columns: empty without the sentence files, the all-pairs numbers
        when no concept fell back (the same pairs), else ``again`` on the clean pairs, if any
        statistic can be computed there."""
        if not known:
            return {f"{name}_no_fallback": np.nan for name in names}
        if not subset:
            return _no_fallback_columns(stats, names, len(clean))
        return _no_fallback_columns(again(clean) if enough else None, names, len(clean))

    rows, comparisons = [], []
    base = {"source": source, "judgment": judgment_name, "model": model, "checkpoint": revision}
    for measure in measures:
        stats = _spearman_stats(table, measure, n_boot=n_boot, seed=seed)
        again = functools.partial(_spearman_stats, measure=measure, n_boot=n_boot, seed=seed)
        name, _, tau = measure.partition("@")
        rows.append(
            {
                **base,
                "measure": name,
                "tau": float(tau) if tau else np.nan,
                **stats,
                **fallback,
                **no_fallback(stats, NO_FALLBACK_ALIGNMENT, again),
            }
        )
    for experts in (m for m in measures if m.startswith("jaccard")):
        for other in (m for m in measures if not m.startswith("jaccard")):
            stats = _comparison_stats(table, experts, other, n_boot=n_boot, seed=seed)
            again = functools.partial(
                _comparison_stats, experts=experts, other=other, n_boot=n_boot, seed=seed
            )
            comparisons.append(
                {
                    **base,
                    "tau": float(experts.partition("@")[2]),
                    "baseline": other,
                    **stats,
                    **fallback,
                    **no_fallback(stats, NO_FALLBACK_COMPARISON, again),
                }
            )
    log.info(
        "%s %s@%s (%s sentences): %d judged pairs among the concepts",
        judgment_name,
        model,
        revision,
        source,
        len(table),
    )
    if subset:
        log.info(
            "%s: %d of the %d judged pairs have a concept that took fallback sentences; the "
            "*_no_fallback columns are computed on the other %d%s",
            source,
            int(with_fallback.sum()),
            len(table),
            len(clean),
            "" if enough else " (too few: left empty)",
        )
    write_frame_atomic(pd.DataFrame(rows), output)
    write_frame_atomic(pd.DataFrame(comparisons), comparison_output)


def concat_tables(inputs: Sequence[str], parquet_out: str, csv_out: str | None = None) -> None:
    """The rows of several tables (Parquet) as one table, in Parquet and, with ``csv_out``, CSV:
    the summaries of the alignment, comparison and domains jobs."""
    frame = pd.concat([pd.read_parquet(p) for p in inputs], ignore_index=True)
    write_frame_atomic(frame, parquet_out)
    if csv_out:
        write_frame_atomic(frame, csv_out)


def alignment_figure(table: str, output: str, *, human_reference: float) -> None:
    """Expert overlap (Jaccard) vs human judgments across checkpoints, one line per model, on
    the first judgment set of the alignment table."""
    from expertalign.analysis.figures import plot_alignment_by_checkpoint

    frame = pd.read_parquet(table)
    jaccard = frame[frame["measure"] == "jaccard"].copy()
    if jaccard["judgment"].nunique() > 1:
        jaccard = jaccard[jaccard["judgment"] == jaccard["judgment"].iloc[0]]
    jaccard["model"] = with_source(jaccard)
    plot_alignment_by_checkpoint(jaccard, output, reference=human_reference)


def with_source(frame: pd.DataFrame) -> pd.Series:
    """Model names, with the sentence source when a table holds several (one line each)."""
    if "source" not in frame.columns or frame["source"].nunique() < 2:
        return frame["model"]
    return frame["model"] + " (" + frame["source"] + ")"
