"""Jobs of the causal check (``workflow/rules/causal.smk``): one model's check, and the summary.

    >>> from expertalign.jobs import causal
    >>> causal.causal(sentence_files, "results/negatives/brown/bank-v1.parquet",
    ...               {"cat": ["cat", "noun"], "dog": ["dog", "noun"]}, "config/causal_prompts.txt",
    ...               "results/causal/brown/smollm2-135m/final.parquet",
    ...               source="brown", model=spec, revision="final", concepts=["cat", "dog"],
    ...               n_negatives=35, expert_settings={"max_length": 128, "max_tokens": 8192},
    ...               settings=campaign.causal_settings(), data_dir="../shared/data",
    ...               judgment={"name": "men", "spec": {"split": "full"}})
    >>> causal.causal_summary(job_files, "results/tables/causal.csv",
    ...                       "results/tables/causal_overlap.csv", "results/figures/causal.png",
    ...                       judged_k=100, n_boot=2000)

A check loads the model once, re-chooses each concept's experts on its selection sentences
(:func:`expertalign.extract.shard_expertise` against the concept's usual negatives, which also
gives each unit's ablation and forcing values), then ablates and forces every unit set and its
matched random sets (:mod:`expertalign.causal`). Its rows are described in
:mod:`expertalign.analysis.causal`; the protocol in docs/ANALYSES.md, "Causal check of the
experts". The log has one line per concept.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["causal", "causal_summary", "read_prompts"]

log = logging.getLogger("expertalign")

#: Distinct positives a concept needs (two per side of the split).
MIN_DISTINCT = 4


def read_prompts(path: str) -> list[str]:
    """The neutral prompts: one per non-empty line (``#`` starts a comment line)."""
    from expertalign.textfile import read_utf8

    prompts = [
        line.strip()
        for line in read_utf8(path).splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not prompts:
        raise ValueError(f"{path}: no prompt (one per line)")
    return prompts


@dataclass
class _Concept:
    concept: str
    word: str
    pos: str
    selection: list[str]
    test: list[str]
    own_ids: set[str]


def _unit_sets(ap: np.ndarray, settings: Mapping) -> list[tuple[str, str, float, np.ndarray]]:
    from expertalign.causal import top_k_units

    sets = [(f"k={k}", "k", float(k), top_k_units(ap, k=k)) for k in settings["k"] if k <= ap.size]
    sets += [(f"tau={t:g}", "tau", float(t), top_k_units(ap, tau=t)) for t in settings["taus"]]
    return sets


def _men_scores(men: pd.DataFrame | None) -> dict[frozenset[str], float]:
    if men is None:
        return {}
    words = zip(men["word1"].astype(str).str.lower(), men["word2"].astype(str).str.lower())
    scores: dict[frozenset[str], list[float]] = {}
    for (w1, w2), score in zip(words, men["score"].astype(float)):
        scores.setdefault(frozenset((w1, w2)), []).append(score)
    return {pair: float(np.mean(v)) for pair, v in scores.items()}


def _read_concepts(
    concepts: Sequence[str],
    sentence_files: Sequence[str],
    words: Mapping[str, Sequence[str]],
    bank,
    settings,
    leave_out: bool = False,
) -> tuple[list[_Concept], list[dict]]:
    from expertalign.causal import split_positives
    from expertalign.sentence_filters import dedupe_key
    from expertalign.sentences import failure_of, read_concept_sentences

    checked, rows = [], []
    for concept, path in zip(concepts, sentence_files):
        if leave_out and (reason := failure_of(path)) is not None:
            note = f"left out of this source (too_few: leave_out): {reason}"
            log.warning("concept %s skipped: %s", concept, note)
            rows.append({"record": "skipped", "concept": concept, "note": note})
            continue
        texts = read_concept_sentences(path)["text"].tolist()
        distinct = len({dedupe_key(t) for t in texts})
        if distinct < MIN_DISTINCT:
            note = f"{distinct} distinct positives in {path}, need {MIN_DISTINCT}"
            log.warning("concept %s skipped: %s", concept, note)
            rows.append({"record": "skipped", "concept": concept, "note": note})
            continue
        split = split_positives(
            texts, test_fraction=settings["test_fraction"], seed=settings["seed"], concept=concept
        )
        rows += [
            {"record": "split", "concept": concept, "side": side, "text": text}
            for side, part in (("selection", split.selection), ("test", split.test))
            for text in part
        ]
        word, pos = words[concept]
        own = set(bank.loc[bank["concept"] == concept, "sentence_id"])
        checked.append(_Concept(concept, word, pos, split.selection, split.test, own))
    return checked, rows


def causal(
    sentence_files: Sequence[str],
    bank_file: str,
    words: Mapping[str, Sequence[str]],
    prompts_file: str,
    output: str,
    *,
    source: str,
    model: Mapping,
    revision: str,
    concepts: Sequence[str],
    n_negatives: int,
    expert_settings: Mapping,
    settings: Mapping,
    judgment: Mapping | None = None,
    data_dir: str = "",
    weights_record: str | None = None,
    config: Mapping | None = None,
    leave_out: bool = False,
    part: Sequence[str] | None = None,
) -> None:
    """The causal check of one part of one (source, model, checkpoint): ``concepts`` (all the
    check's) and their ``sentence_files`` (same order), the source's negative bank, each
    concept's ``words`` (word and part of speech), the neutral prompts, ``judgment`` (``name``
    and ``spec`` of the judgment set whose pairs give the MEN scores, read from ``data_dir``)
    and ``settings``
    (:meth:`expertalign.plan.Campaign.causal_settings`); writes ``output`` atomically.
    ``part``: the concepts this job checks (default all): their experts, effects and nulls,
    and their rows of the cross-concept matrix (their experts ablated, every checked concept's
    word scored). ``expert_settings``: the expert jobs' negatives mode and seed, max_tokens.
    ``leave_out``: a concept whose sentence file records that it has none is skipped (a
    ``skipped`` row) rather than stopping the job."""

    from expertalign import provenance
    from expertalign.jobs.experts import load_model_for, weights_metadata
    from expertalign.storage import write_frame_atomic
    from expertalign.units import find_units

    if len(sentence_files) != len(concepts):
        raise ValueError(f"{len(concepts)} concepts but {len(sentence_files)} sentence files")
    missing = [c for c in concepts if c not in words]
    if missing:
        raise ValueError(f"{output}: no word and part of speech for concepts {missing}")
    bank = pd.read_parquet(bank_file).sort_values("bank_rank", kind="stable")
    prompts = read_prompts(prompts_file)[: settings.get("n_prompts") or None]
    men = None
    if judgment is not None:
        from expertalign.judgments import read_judgment_set

        men = read_judgment_set(judgment["name"], judgment["spec"], data_dir)
    own = set(concepts if part is None else part)
    if not own <= set(concepts):
        raise ValueError(f"{output}: part concepts {sorted(own - set(concepts))} are not checked")
    everyone, rows = _read_concepts(concepts, sentence_files, words, bank, settings, leave_out)
    if len(everyone) < 2:
        raise ValueError(
            f"{output}: only {len(everyone)} of {len(concepts)} concepts have {MIN_DISTINCT} "
            "distinct positives; the check needs two"
        )
    rows = [row for row in rows if row["concept"] in own]
    checked = [c for c in everyone if c.concept in own]
    record = provenance.read_record(weights_record) if weights_record else None
    start = time.perf_counter()
    lm = load_model_for(model, revision, (record or {}).get("commit", ""))
    layout = find_units(lm.model)
    log.info("loaded %s@%s in %.1fs", model["name"], revision, time.perf_counter() - start)
    if settings["cross_k"] > layout.n_units:
        raise ValueError(f"causal.cross_k={settings['cross_k']} exceeds {layout.n_units} units")
    scoring = {"max_length": settings["max_length"], "max_tokens": expert_settings["max_tokens"]}
    if checked:
        rows += _check_part(lm, layout, checked, everyone, bank, prompts, men, n_negatives,
                            expert_settings, settings, scoring)  # fmt: skip
    frame = pd.DataFrame(rows)
    frame.insert(0, "revision", revision)
    frame.insert(0, "model", model["name"])
    frame.insert(0, "source", source)
    frame["random_init"] = bool(model.get("random_init", False))
    meta = {**weights_metadata(model, lm, record), **provenance.run_metadata(config)}
    write_frame_atomic(frame, output, meta)
    log.info("wrote %s: %d concepts checked, %d rows", output, len(checked), len(frame))


def _check_part(lm, layout, checked, everyone, bank, prompts, men, n_negatives, expert_settings,
                settings, scoring) -> list[dict]:  # fmt: skip
    """The rows of one part's concepts (``checked``): effects and nulls per unit set, their
    unit sets, and their rows of the cross-concept matrix against ``everyone`` checked."""
    from expertalign import causal as cz
    from expertalign.extract import ConceptSentences, shard_expertise
    from expertalign.seeds import mix_seed

    rows: list[dict] = []
    chosen = shard_expertise(
        lm,
        layout,
        [ConceptSentences(c.concept, c.selection, c.own_ids) for c in checked],
        bank["sentence_id"].tolist(),
        bank["text"].tolist(),
        n_negatives,
        negatives_mode=expert_settings.get("negatives_mode", "shared"),
        negatives_seed=expert_settings.get("negatives_seed", 0),
        max_tokens=expert_settings["max_tokens"],
        max_length=expert_settings["max_length"],
        unit_stats=True,
    )
    neg_mean, pos_median = chosen.unit_stats["neg_mean"], chosen.unit_stats["pos_median"]
    generation = {
        "max_new_tokens": settings["max_new_tokens"],
        "temperature": settings["temperature"],
        "top_p": settings["top_p"],
    }
    seeds = range(settings["n_seeds"])
    m, tok = lm.model, lm.tokenizer
    base_word, top_sets = {}, {}
    top = f"k={settings['cross_k']}"
    own_cross: dict[str, float] = {}  # a concept's own word under its cross_k experts
    for i, c in enumerate(checked):
        began = time.perf_counter()
        sets = _unit_sets(chosen.ap[i], settings)
        top_sets[c.concept] = {name: units for name, _, _, units in sets}
        top_sets[c.concept][top] = cz.top_k_units(chosen.ap[i], k=settings["cross_k"])
        base_word[c.concept] = cz.word_nll(m, tok, c.test, c.word, c.pos, **scoring)
        candidates = bank.loc[bank["concept"] != c.concept, "text"].tolist()
        neutral = cz.neutral_sentences(
            candidates,
            c.word,
            c.pos,
            n=settings["n_neutral"],
            seed=settings["seed"],
            concept=c.concept,
            exclude=[*c.selection, *c.test],
        )
        base_neutral = cz.text_nll(m, tok, neutral, **scoring)
        own_prompts = [p for p in prompts if not cz.names_concept(p, c.word, c.pos)]
        forcing = settings["forcing"] != "none" and bool(own_prompts)
        base = (
            cz.forcing_effect(
                m, tok, layout, [], 0.0, own_prompts, seeds, c.word, c.pos, **generation
            )
            if forcing
            else None
        )
        common = {
            "record": "effect",
            "concept": c.concept,
            "n_selection": len(c.selection),
            "n_test": len(c.test),
            "n_neutral": len(neutral),
            "base_nll": base_word[c.concept].mean,
            "base_naming_share": base.share if base else math.nan,
            "base_log_perplexity": base.log_perplexity if base else math.nan,
        }
        for name, kind, value, units in sets:
            described = {**common, "set": name, "set_kind": kind, "set_value": value}
            if units.size == 0:
                rows.append({**described, "draw": -1, "n_units": 0})
                continue
            try:
                null_seed = mix_seed(settings["seed"], "causal-null", c.concept, name)
                draws = cz.matched_random_units(
                    layout, units, n_draws=settings["n_random"], seed=null_seed
                )
            except ValueError as err:  # a set holding most of a module has no matched null
                log.warning("%s %s: no random null: %s", c.concept, name, err)
                draws = np.zeros((0, units.size), dtype=np.int64)
            force = forcing and (
                settings["forcing"] == "all"
                or (settings["forcing"] == "k" and kind == "k")
                or name == top
            )
            set_rows = []
            for draw, chosen_units in enumerate([units, *draws], start=-1):
                ablate = (m, tok, layout, chosen_units, neg_mean[i][chosen_units])
                row = {
                    **described,
                    "draw": draw,
                    "n_units": int(chosen_units.size),
                    "delta_nll": cz.delta_word_nll(
                        *ablate, c.test, c.word, c.pos, baseline=base_word[c.concept], **scoring
                    ),
                    "delta_neutral_nll": cz.delta_text_nll(
                        *ablate, neutral, baseline=base_neutral, **scoring
                    ),
                }
                if force:
                    forced = (m, tok, layout, chosen_units, pos_median[i][chosen_units])
                    effect = cz.forcing_effect(
                        *forced, own_prompts, seeds, c.word, c.pos, **generation
                    )
                    row["naming_share"] = effect.share
                    row["log_perplexity"] = effect.log_perplexity
                set_rows.append(row)
            experts, null = set_rows[0], set_rows[1:]
            if name == top and np.array_equal(units, top_sets[c.concept][top]):
                own_cross[c.concept] = experts["delta_nll"]  # the matrix's diagonal entry
            for measure, p_name in (("delta_nll", "p_delta_nll"), ("naming_share", "p_naming")):
                values = [r.get(measure, math.nan) for r in null]
                if null and math.isfinite(experts.get(measure, math.nan)):
                    experts[p_name] = cz.empirical_p(experts[measure], values)
            rows += set_rows
        log.info(
            "concept %d of %d (%s): %d sets in %.1fs",
            i + 1,
            len(checked),
            c.concept,
            len(sets),
            time.perf_counter() - began,
        )
    rows += [
        {"record": "units", "concept": concept, "set": name, "units": units.tolist()}
        for concept, sets in top_sets.items()
        for name, units in sets.items()
    ]
    rows += _cross_rows(lm, layout, checked, everyone, top_sets, neg_mean, base_word, own_cross,
                        settings, scoring, men)  # fmt: skip
    return rows


def _cross_rows(lm, layout, checked, everyone, top_sets, neg_mean, base_word, own_cross,
                settings, scoring, men):  # fmt: skip
    """The part's rows of the cross-concept matrix at causal.cross_k (rows ``cross``): each
    of its concepts' experts ablated, every checked concept's word scored, with the pair's MEN
    score (NaN if not judged). The diagonal is taken from ``own_cross`` (the effect rows'
    same ablation of the same sentences) where the effect rows have the cross_k set."""
    from expertalign.causal import delta_word_nll, word_nll

    top = f"k={settings['cross_k']}"
    scores = _men_scores(men)
    rows = []
    for cb in everyone:
        if cb.concept not in base_word:  # another part's concept: its unmodified NLL here
            base_word[cb.concept] = word_nll(
                lm.model, lm.tokenizer, cb.test, cb.word, cb.pos, **scoring
            )
    for a, ca in enumerate(checked):
        units = top_sets[ca.concept][top]
        for cb in everyone:
            ablate = (lm.model, lm.tokenizer, layout, units, neg_mean[a][units])
            if cb.concept == ca.concept and ca.concept in own_cross:
                delta = own_cross[ca.concept]
            else:
                delta = delta_word_nll(
                    *ablate, cb.test, cb.word, cb.pos, baseline=base_word[cb.concept], **scoring
                )
            rows.append(
                {
                    "record": "cross",
                    "concept": cb.concept,
                    "ablated": ca.concept,
                    "set": top,
                    "delta_nll": delta,
                    "men": scores.get(frozenset((ca.word.lower(), cb.word.lower())), math.nan),
                }
            )
    return rows


def causal_summary(
    files: Sequence[str],
    table_out: str,
    overlap_out: str,
    figure_out: str,
    *,
    judged_k: int,
    n_boot: int,
) -> None:
    """tables/causal.csv (one row per source x model x set), tables/causal_overlap.csv (the
    cross-concept Spearman rho) and the figure, from the jobs' tables."""
    from expertalign.analysis import causal as summary
    from expertalign.storage import write_frame_atomic

    frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    table = summary.summarize(frame, judged_k=judged_k, n_boot=n_boot)
    write_frame_atomic(table, table_out)
    write_frame_atomic(summary.overlap(frame, judged_k=judged_k, n_boot=n_boot), overlap_out)
    summary.plot_causal(table, figure_out)
    log.info("wrote %s: %d rows from %d jobs", table_out, len(table), len(files))
