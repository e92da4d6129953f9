"""Job of the ``pilot`` rule (``workflow/rules/pilot.smk``): expert stability across folds.

    >>> from expertalign.jobs import pilot, runtime
    >>> runtime.start_job(snakemake.log[0], threads=snakemake.threads,
    ...                   gpus=snakemake.resources, rule=snakemake.rule)
    >>> pilot.pilot(sentence_files, None, spec={"name": "gpt2", "source": "gpt2"},
    ...             revision="main", concepts=["cat", "dog"], n_positives=[100, 500],
    ...             n_negatives=[1000], taus=[0.5], k=8, seed=0, disjoint=True,
    ...             settings={"max_tokens": 8192, "max_length": 128},
    ...             summary_out="pilot_stability.csv", sizes_out="pilot_set_sizes.csv",
    ...             figure_out="pilot_stability.png")

Reads the pilot's sentences (and the negative bank), loads the model once and writes the tables
and the figure atomically; the analysis itself is :mod:`expertalign.analysis.pilot`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from expertalign.jobs.experts import load_model_for
from expertalign.storage import write_frame_atomic

__all__ = ["pilot"]

log = logging.getLogger("expertalign")


def pilot(
    sentence_files: Sequence[str],
    bank_file: str | None,
    *,
    spec: Mapping,
    revision: str,
    concepts: Sequence[str],
    n_positives: Sequence[int],
    n_negatives: Sequence[int],
    taus: Sequence[float],
    k: int,
    seed: int,
    disjoint: bool,
    settings: Mapping,
    summary_out: str,
    sizes_out: str,
    figure_out: str,
    sizes_figure_out: str | None = None,
    negatives_mode: str = "shared",
) -> None:
    """Expert stability across folds and set sizes (paper Sec. 4, Fig. 1, App. C); with
    ``sizes_figure_out``, Fig. 9 from the set-size table too.

    ``bank_file`` None: the sentence files are the pilot concepts' own pools, and each concept's
    negatives come from the other pilot concepts' sentences (the paper's design); otherwise
    negatives come from the bank, skipping the pilot concepts' sentences. Responses are computed
    on demand, only for the sentences the folds use, each once with disjoint folds."""
    from expertalign.analysis import pilot as pilot_analysis
    from expertalign.analysis.figures import plot_pilot
    from expertalign.responses import max_pooled_responses
    from expertalign.units import find_units

    texts: list[str] = []
    pools: dict[str, list[int]] = {}
    from expertalign.sentences import read_concept_sentences

    for concept, path in zip(concepts, sentence_files):
        frame = read_concept_sentences(path)
        pools[concept] = list(range(len(texts), len(texts) + len(frame)))
        texts.extend(frame["text"])
    if bank_file is None:
        negative_pool = list(range(len(texts)))
    else:
        bank = pd.read_parquet(bank_file).sort_values("bank_rank", kind="stable")
        own = set().union(*(set(pd.read_parquet(p)["sentence_id"]) for p in sentence_files))
        negatives = bank[~bank["sentence_id"].isin(own)]["text"].tolist()
        negative_pool = list(range(len(texts), len(texts) + len(negatives)))
        texts.extend(negatives)
    lm = load_model_for(spec, revision)
    layout = find_units(lm.model)
    n_run = [0]

    def run(rows: np.ndarray):
        n_run[0] += len(rows)
        return max_pooled_responses(
            lm.model,
            lm.tokenizer,
            [texts[i] for i in rows],
            layout,
            max_tokens=settings["max_tokens"],
            max_length=settings["max_length"],
        ).T

    log.info(
        "pilot: %d concepts, %d sentences in their pools, %d candidate negatives, %d folds (%s)",
        len(pools),
        sum(map(len, pools.values())),
        len(negative_pool),
        k,
        "disjoint" if disjoint else "independent draws",
    )
    result = pilot_analysis.pilot_stability(
        run,
        pools,
        negative_pool,
        n_positives=tuple(n_positives),
        n_negatives=tuple(n_negatives),
        taus=tuple(taus),
        k=k,
        seed=seed,
        disjoint=disjoint,
        negatives_mode=negatives_mode,
    )
    log.info("pilot: %d sentence responses computed", n_run[0])
    summary = result.summary.assign(model=spec["name"], checkpoint=revision)
    write_frame_atomic(summary, summary_out)
    write_frame_atomic(result.sizes.assign(model=spec["name"], checkpoint=revision), sizes_out)
    plot_pilot(summary, figure_out)
    if sizes_figure_out is not None:
        from expertalign.jobs.analysis import pilot_set_size_figure

        pilot_set_size_figure(sizes_out, sizes_figure_out)
