"""Jobs of ``workflow/rules/experts.smk``: a model's units table and the AP vectors of a shard.

    >>> from expertalign.jobs import experts, runtime
    >>> runtime.start_job(snakemake.log[0], threads=snakemake.threads,
    ...                   gpus=snakemake.resources, rule=snakemake.rule)
    >>> experts.experts(sentence_files, bank_file, output_path, model=spec, revision="step512",
    ...                 concepts=["cat", ...], n_negatives=1000,
    ...                 settings={"max_length": 128, "max_tokens": 8192, "unit_stats": True})
    >>> lm = experts.load_model_for(spec, "step512")  # also the baselines' and the pilot's load

Each job reads its inputs, computes, and writes its output atomically (``write_table_atomic``).
A shard's log shows its progress (:mod:`expertalign.progress`): the model load, the forward
pass at most every ``$EXPERTALIGN_PROGRESS_SECONDS`` (30 s), and one line per concept::

    forward pass: 1200 of 5000 sentences, 41.3 sentences/s, elapsed 0:29, ETA 1:32
    concept 3 of 12 (cat): 1012 sentences (12 positives, 1000 negatives), 9.8 sentences/s, ...
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from expertalign.paths import expert_shard, hub_revision, parse_run
from expertalign.storage import expertise_table, write_frame_atomic, write_table_atomic

__all__ = ["load_model_for", "weights_metadata", "units_table", "experts"]

log = logging.getLogger("expertalign")


def load_model_for(spec: Mapping, revision: str, commit: str = ""):
    """Load a configured model (``spec``: its ``source``, ``dtype``, ``random_init``, ``seed``)
    at ``revision`` (:func:`expertalign.models.load_model`); with ``commit`` (its prefetch
    record's), that exact Hub commit, so a branch moved since the prefetch cannot slip other
    weights under the record."""
    from expertalign.models import load_model

    return load_model(
        spec["source"],
        commit or hub_revision(revision),
        dtype=spec.get("dtype", "auto"),
        random_init=spec.get("random_init", False),
        seed=spec.get("seed", 0),
    )


def weights_metadata(spec: Mapping, lm, record: Mapping | None) -> dict[str, str]:
    """What a result file records about the weights it was computed from: the prefetch
    record's commit and hashes; for a random-init model also its seed and a SHA-256 of the drawn
    state dict (the only trace of weights that no file holds)."""
    from expertalign import provenance

    meta = provenance.result_metadata(record)
    if spec.get("random_init", False):
        meta["init_seed"] = str(spec.get("seed", 0))
        meta["state_dict_sha256"] = provenance.state_dict_sha256(lm.model)
    return meta


def _write_word_vectors(
    lm, concepts: Sequence[str], words: Mapping[str, str], metadata: Mapping[str, str], output: str
) -> None:
    from expertalign.baselines import vectors_table, word_vectors

    missing = [c for c in concepts if c not in words]
    if missing:
        raise ValueError(f"no word given for concepts {missing[:5]} of this shard")
    chosen = [words[c] for c in concepts]
    frame = vectors_table(concepts, chosen, word_vectors(lm.model, lm.tokenizer, chosen))
    write_frame_atomic(frame, output, metadata)
    log.info("wrote %s: word vectors of %d concepts", output, len(concepts))


def units_table(spec: Mapping, revision: str, output: str) -> None:
    """The units table of a model at ``revision``, from its config alone (weights are never
    loaded; every checkpoint of a model has the same units)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from expertalign.models import EMBEDDED, embedded_model_dir
    from expertalign.units import find_units

    source = str(embedded_model_dir()) if spec["source"] == EMBEDDED else spec["source"]
    revision = hub_revision(revision)
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
    weights_record: str | None = None,
    config: Mapping | None = None,
    leave_out: bool = False,
    words: Mapping[str, str] | None = None,
    vectors_output: str | None = None,
) -> None:
    """AP vectors of a shard's concepts for one (model, revision): one model load, one pass.

    With ``vectors_output``, the same load also writes the word vectors of every concept of the
    shard (``words``: concept to word; left-out concepts too) for the embedding baselines
    (:func:`expertalign.baselines.vectors_table`), with the shard's metadata.

    A concept whose sentence file records that it has none stops the shard, unless
    ``leave_out`` (the source's ``too_few: leave_out``): then the shard has no row for it and
    the log says why (a shard all of whose concepts are left out has no rows).

    ``weights_record``: the model's prefetch marker; its Hub commit is what is loaded, and its
    commit and weights hash go into the shard's metadata (:mod:`expertalign.provenance`). The
    job refuses before loading anything when existing results of this (model, revision) were
    computed from another commit, unless ``config`` (the workflow's, whose SHA-256 and the
    package version also go into the metadata) gives the model ``accept_revision_change: true``
    (:func:`expertalign.provenance.check_revision`)."""
    from expertalign import provenance
    from expertalign.extract import ConceptSentences, shard_expertise
    from expertalign.units import find_units

    bank = pd.read_parquet(bank_file).sort_values("bank_rank", kind="stable")
    bank_ids = bank["sentence_id"].tolist()
    shard = []
    from expertalign.sentences import failure_of, read_concept_sentences

    for concept, path in zip(concepts, sentence_files):
        if leave_out and (reason := failure_of(path)) is not None:
            log.warning(
                "concept %s left out of this source (too_few: leave_out): %s", concept, reason
            )
            continue
        frame = read_concept_sentences(path)  # a concept without sentences stops this shard only
        if frame.empty:
            raise ValueError(f"{path}: no sentences for concept {concept!r}")
        own = set(bank.loc[bank["concept"] == concept, "sentence_id"])
        shard.append(ConceptSentences(concept, frame["text"].tolist(), own))
    span = f"{shard[0].concept} to {shard[-1].concept}" if shard else "none"
    log.info("shard of %d concepts (%s): loading %s@%s", len(shard), span, model["name"], revision)
    start = time.perf_counter()
    record = provenance.read_record(weights_record) if weights_record else None
    commit = (record or {}).get("commit", "")
    try:
        run = parse_run(output)
        layout_path = expert_shard("", run.source, model["name"], revision, run.shard)
    except ValueError:  # an output outside the results layout has no siblings to compare
        layout_path = ""
    provenance.check_revision(
        provenance.results_folder(output, layout_path),
        model=model["name"],
        source=model["source"],
        revision=revision,
        record=record,
        marker=weights_record,
        accept=provenance.accepts_revision_change(config, model["name"]),
    )
    lm = load_model_for(model, revision, commit)
    origin = {**weights_metadata(model, lm, record), **provenance.run_metadata(config)}
    metadata = {
        "model": model["name"],
        "source": model["source"],
        "revision": revision,
        "random_init": str(model.get("random_init", False)),
        **origin,
    }
    if vectors_output is not None:
        _write_word_vectors(lm, concepts, words or {}, metadata, vectors_output)
    layout = find_units(lm.model)
    log.info(
        "loaded %s@%s in %.1fs: %d units",
        model["name"],
        revision,
        time.perf_counter() - start,
        layout.n_units,
    )
    if not shard:
        write_table_atomic(
            expertise_table(
                [],
                np.zeros((0, layout.n_units), dtype=np.float32),
                n_pos=[],
                n_neg=[],
                metadata=metadata,
            ),
            output,
        )
        log.info("wrote %s: every concept of the shard left out, no rows", output)
        return
    result = shard_expertise(
        lm,
        layout,
        shard,
        bank_ids,
        bank["text"].tolist(),
        n_negatives,
        max_tokens=settings["max_tokens"],
        max_length=settings["max_length"],
        unit_stats=settings["unit_stats"],
        # progress lines go to the log (expertalign.extract); a tqdm bar would write its
        # carriage-return updates into the same file, on the same lines as those
        progress=False,
        negatives_mode=settings.get("negatives_mode", "shared"),
        negatives_seed=settings.get("negatives_seed", 0),
    )
    log.info("timings: %s", result.timings)
    table = expertise_table(
        result.concepts,
        result.ap,
        n_pos=result.n_positives,
        n_neg=result.n_negatives,
        metadata=metadata,
        unit_stats=result.unit_stats,
    )
    write_table_atomic(table, output)
    log.info("wrote %s: %d concepts", output, len(result.concepts))
