"""One function per workflow step; the Snakemake scripts only unpack ``snakemake`` and call these.

    >>> from expertalign import steps
    >>> steps.experts(sentence_files, bank_file, output_path, model=spec, concepts=[...],
    ...               n_negatives=1000, settings={"max_length": 128, ...}, threads=2)

Each step reads its inputs, computes, and writes its outputs atomically, so a killed job leaves
nothing that looks finished. Logging goes to stderr, which the scripts point at the rule's log.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from expertalign.storage import expertise_table, write_table_atomic

__all__ = [
    "setup_logging",
    "prefetch",
    "negative_bank",
    "units_table",
    "experts",
    "similarity",
    "alignment",
    "alignment_summary",
    "alignment_figure",
]

log = logging.getLogger("expertalign")


def setup_logging(log_path: str | None, threads: int | None = None, offline: bool = True) -> None:
    """Send logging, warnings and tracebacks of this process to the rule's log file.

    ``offline``: compute jobs never reach a model hub (compute nodes often have no network); the
    ``prefetch`` rule has put every model into the cache on the login node before they start.
    Call this before anything imports huggingface_hub, which reads the setting at import.
    """
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        stream = open(log_path, "w", buffering=1)  # noqa: SIM115 - lives as long as the job
        sys.stderr = stream
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    logging.captureWarnings(True)
    if threads:
        # Through the environment, so that jobs which never use torch or numba do not pay for
        # importing them; both read these variables when they are first imported.
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[variable] = str(int(threads))
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(int(threads))


def _revision(spec: Mapping, revision: str) -> str | None:
    return None if revision in ("main", "final") else revision


def _load(spec: Mapping, revision: str):
    from expertalign.models import load_model

    return load_model(
        spec["source"],
        _revision(spec, revision),
        dtype=spec.get("dtype", "auto"),
        random_init=spec.get("random_init", False),
        seed=spec.get("seed", 0),
    )


def prefetch(source: str, revision: str, marker: str) -> None:
    """Download a model (or convert the embedded one) into the cache; write a marker file only
    once its config, tokenizer and weights are there (:func:`expertalign.fetch.prefetch` raises
    naming the model, the revision and what is missing, or how to get a gated model)."""
    from expertalign.fetch import prefetch as fetch

    (fetched,) = fetch([(source, revision)])
    log.info("fetched %s", fetched.describe())
    from expertalign.atomic import atomic_path

    with atomic_path(marker) as tmp:
        tmp.write_text(fetched.to_json())


# ------------------------------------------------------------------ sentences


def negative_bank(sentence_files: Sequence[str], output: str, *, size: int, seed: int,
                  version: str) -> None:
    from expertalign.negatives import build_negative_bank

    frames = [pd.read_parquet(path) for path in sentence_files]
    bank = build_negative_bank(frames, size=size, seed=seed, version=version)
    log.info("bank %s: %d sentences from %d concepts", version, len(bank), len(frames))
    write_table_atomic(pa.Table.from_pandas(bank, preserve_index=False), output)


# ------------------------------------------------------------------ experts


def units_table(spec: Mapping, revision: str, output: str) -> None:
    """The units table of a model at ``revision``, from its config alone (weights are never
    loaded; every checkpoint of a model has the same units)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from expertalign.models import EMBEDDED, embedded_model_dir
    from expertalign.units import find_units

    source = str(embedded_model_dir()) if spec["source"] == EMBEDDED else spec["source"]
    revision = _revision(spec, revision)
    config = AutoConfig.from_pretrained(source, **({"revision": revision} if revision else {}))
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    layout = find_units(skeleton)
    log.info("%s: %d units in %d layers", spec["name"], layout.n_units, layout.n_layers)
    write_table_atomic(layout.table(), output)


def experts(
    sentence_files: Sequence[str],
    bank_file: str,
    output: str,
    *,
    model: Mapping,
    revision: str,
    concepts: Sequence[str],
    n_negatives: int,
    settings: Mapping,
) -> None:
    """AP vectors of a shard's concepts for one (model, revision): one model load, one pass."""
    from expertalign.extract import ConceptSentences, shard_expertise
    from expertalign.units import find_units

    bank = pd.read_parquet(bank_file).sort_values("bank_rank", kind="stable")
    bank_ids = bank["sentence_id"].tolist()
    shard = []
    for concept, path in zip(concepts, sentence_files):
        frame = pd.read_parquet(path)
        if frame.empty:
            raise ValueError(f"{path}: no sentences for concept {concept!r}")
        own = set(bank.loc[bank["concept"] == concept, "sentence_id"])
        shard.append(ConceptSentences(concept, frame["text"].tolist(), own))
    start = time.perf_counter()
    lm = _load(model, revision)
    layout = find_units(lm.model)
    log.info("loaded %s@%s in %.1fs: %d units", model["name"], revision,
             time.perf_counter() - start, layout.n_units)
    result = shard_expertise(
        lm, layout, shard, bank_ids, bank["text"].tolist(), n_negatives,
        max_tokens=settings["max_tokens"], max_length=settings["max_length"],
        unit_stats=settings["unit_stats"], progress=True,
        negatives_mode=settings.get("negatives_mode", "shared"),
        negatives_seed=settings.get("negatives_seed", 0),
    )
    log.info("timings: %s", result.timings)
    table = expertise_table(
        result.concepts, result.ap, n_pos=result.n_positives, n_neg=result.n_negatives,
        metadata={"model": model["name"], "source": model["source"], "revision": revision,
                  "random_init": str(model.get("random_init", False))},
        unit_stats=result.unit_stats,
    )
    write_table_atomic(table, output)


# ------------------------------------------------------------------ similarity and alignment


def similarity(expert_files: Sequence[str], pairs_out: str, sizes_out: str, *,
               taus: Sequence[float]) -> None:
    from expertalign.apmatrix import APMatrix
    from expertalign.similarity import pairwise_similarity, similarity_frame

    ap = APMatrix(expert_files)  # read by column blocks: memory is one block, not the files
    concepts = ap.concepts
    sim = pairwise_similarity(ap, taus, concepts)
    write_table_atomic(pa.Table.from_pandas(similarity_frame(sim), preserve_index=False), pairs_out)
    sizes = pd.DataFrame(
        [
            {"concept": c, "tau": tau, "n_experts": int(sim.sizes[tau][i]), "n_units": ap.shape[1]}
            for tau in sim.taus
            for i, c in enumerate(concepts)
        ]
    )
    write_table_atomic(pa.Table.from_pandas(sizes, preserve_index=False), sizes_out)


def read_judgments(spec: Mapping, data_dir: str, name: str) -> pd.DataFrame:
    from expertalign.judgments import read_men, read_word_pairs

    if "path" in spec:
        return read_word_pairs(
            spec["path"], word1=spec.get("word1", "word1"), word2=spec.get("word2", "word2"),
            score=spec.get("score", "score"),
        )
    if name.lower() != "men":
        raise ValueError(
            f"config alignment.judgments.{name}: give a path (only 'men' is read from data_dir)"
        )
    return read_men(data_dir, spec.get("split", "test"))


def word_pair_similarities(
    pairs_table: pd.DataFrame, judgments: pd.DataFrame, words: Mapping[str, str]
) -> pd.DataFrame:
    """Judged pairs whose two words are concepts, with every similarity measure as a column."""
    from expertalign.judgments import pairs_in_vocabulary

    concept_of: dict[str, str] = {}
    for concept, word in words.items():
        concept_of.setdefault(str(word).lower(), concept)
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


def alignment(
    pairs_files: Sequence[str], output: str, comparison_output: str, *, judgment: Mapping,
    judgment_name: str, data_dir: str, words: Mapping[str, str], n_boot: int, seed: int,
    model: str, revision: str, source: str,
) -> None:
    """Spearman of every similarity measure with the human scores, with bootstrap CIs, and a
    paired comparison of expert overlap (Jaccard at each τ) against every other measure, for
    the expert sets of one sentence ``source``."""
    from scipy.stats import spearmanr

    from expertalign.stats import paired_spearman_difference, spearman_ci, williams_test

    judgments = read_judgments(judgment, data_dir, judgment_name)
    pairs = pd.concat([pd.read_parquet(p) for p in pairs_files], ignore_index=True)
    table = word_pair_similarities(pairs, judgments, words)
    measures = [c for c in table.columns if c.startswith(("jaccard", "cosine"))]
    rows, comparisons = [], []
    base = {"source": source, "judgment": judgment_name, "model": model,
            "checkpoint": revision}
    for measure in measures:
        result = spearman_ci(table[measure], table["score"], n_boot=n_boot, seed=seed)
        name, _, tau = measure.partition("@")
        rows.append({**base, "measure": name, "tau": float(tau) if tau else np.nan,
                     "rho": result.rho, "ci_low": result.ci_low, "ci_high": result.ci_high,
                     "p_value": result.p_value, "n_pairs": result.n})
    for experts in (m for m in measures if m.startswith("jaccard")):
        for other in (m for m in measures if not m.startswith("jaccard")):
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
            comparisons.append({**base, "tau": float(experts.partition("@")[2]),
                                "baseline": other, "rho_experts": r1, "rho_baseline": r2,
                                "difference": diff, "ci_low": low, "ci_high": high,
                                "p_bootstrap": p_boot, "williams_t": t, "p_williams": p_williams,
                                "n_pairs": len(table)})
    log.info("%s %s@%s (%s sentences): %d judged pairs among the concepts", judgment_name,
             model, revision, source, len(table))
    write_table_atomic(pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False), output)
    write_table_atomic(
        pa.Table.from_pandas(pd.DataFrame(comparisons), preserve_index=False), comparison_output
    )


def alignment_summary(tables: Sequence[str], parquet_out: str, csv_out: str) -> None:
    frame = pd.concat([pd.read_parquet(t) for t in tables], ignore_index=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    write_table_atomic(table, parquet_out)
    write_table_atomic(table, csv_out)


def alignment_figure(table: str, output: str, *, human_reference: float,
                     revisions: Sequence[str]) -> None:
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

