"""The campaign plan (expertalign.plan) without Snakemake: shards, runs, sentence batches that
keep their names whatever is missing, canonical params, and the config errors it raises."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import yaml
from workflow_helpers import REPO

from expertalign.config import load_config
from expertalign.plan import Campaign, canonical
from expertalign.sentences import sentences_frame, write_sentences_atomic


@pytest.fixture(scope="module")
def default_config(tmp_path_factory):
    """The default config with the planning sizes these tests were written for, whatever the
    default run's own: the first 64 concepts of its table, 16 per sentence batch, 32 per shard."""
    config = load_config(REPO / "config/config.yaml")
    lines = (REPO / config["concepts"]).read_text(encoding="utf-8").splitlines(keepends=True)
    table = tmp_path_factory.mktemp("plan") / "concepts.tsv"
    table.write_text("".join(lines[:65]), encoding="utf-8")
    config["concepts"] = str(table)
    config["sentences"]["concepts_per_job"] = 16
    config["experts"]["shard_size"] = 32
    return config


def campaign_in(config, results) -> Campaign:
    return Campaign({**copy.deepcopy(config), "results": str(results)})


def write_sentences(campaign: Campaign, source: str, concepts) -> None:
    """Sentence files as a finished job leaves them: with the fingerprint the plan expects."""
    prints = campaign.sentence_fingerprints(source)
    for concept in concepts:
        frame = sentences_frame(concept, [f"a {concept} here"], "facts", source)
        write_sentences_atomic(
            frame, campaign.sentence_sets[source].outputs[concept], prints[concept]
        )


def test_shards_are_blocks_of_the_table(default_config, tmp_path):
    campaign = campaign_in(default_config, tmp_path)
    assert campaign.shard_ids() == ["0000", "0001"]
    ids = campaign.concept_ids
    assert campaign.shard_concepts("0001") == ids[32:64]
    assert [r for _, r in campaign.model_revisions()] == ["final", "final"]


def test_batches_are_fixed_blocks_named_by_position(default_config, tmp_path):
    campaign = campaign_in(default_config, tmp_path)
    ids = campaign.concept_ids
    generated = campaign.sentence_blocks("generated")
    assert list(generated) == ["gpu-000", "gpu-001", "gpu-002", "gpu-003"]
    assert generated["gpu-002"] == ids[32:48]
    # a corpus source needs no GPU
    assert list(campaign.sentence_blocks("brown")) == ["cpu-000", "cpu-001", "cpu-002", "cpu-003"]
    # nothing exists yet: every block is planned, whole
    assert campaign.planned_batches("generated") == generated


def test_batch_names_do_not_move_when_batches_finish(default_config, tmp_path):
    """The issue's replay: 40 concepts missing, then the first 16 made; the batches still to
    run keep the names (and members) the first plan gave them."""
    ids = Campaign({**default_config, "results": str(tmp_path)}).concept_ids
    first = campaign_in(default_config, tmp_path)
    write_sentences(first, "generated", ids[40:])
    before = first.planned_batches("generated")
    assert list(before) == ["gpu-000", "gpu-001", "gpu-002"]
    assert before["gpu-002"] == ids[32:40]  # only the block's missing members

    second = campaign_in(default_config, tmp_path)  # a SLURM job re-plans when it starts
    write_sentences(second, "generated", ids[:16])
    after = campaign_in(default_config, tmp_path).planned_batches("generated")
    assert after == {name: before[name] for name in ("gpu-001", "gpu-002")}
    # a job queued under its old name finds its members, as its remote replay would
    assert campaign_in(default_config, tmp_path).batch_members("generated", "gpu-002") == ids[32:40]
    # and a batch that finished meanwhile is empty, not an error
    assert campaign_in(default_config, tmp_path).batch_members("generated", "gpu-000") == []


def test_an_unknown_batch_is_named_with_the_batches_there_are(default_config, tmp_path):
    campaign = campaign_in(default_config, tmp_path)
    with pytest.raises(ValueError, match=r"no batch 'gpu-009'.*gpu-000, gpu-001"):
        campaign.batch_members("generated", "gpu-009")


def test_a_stale_member_is_planned_again(default_config, tmp_path):
    """A file made with other settings (another fingerprint) is remade, in its own block."""
    campaign = campaign_in(default_config, tmp_path)
    ids = campaign.concept_ids
    write_sentences(campaign, "brown", ids)
    frame = sentences_frame(ids[20], ["old"], "facts", "brown")
    write_sentences_atomic(frame, campaign.sentence_sets["brown"].outputs[ids[20]], "other")
    planned = campaign_in(default_config, tmp_path).planned_batches("brown")
    assert planned == {"cpu-001": [ids[20]]}


def test_adding_a_concept_plans_only_it_in_a_new_block(default_config, tmp_path):
    table = Path(default_config["concepts"]).read_text(encoding="utf-8")
    header, *rows = table.splitlines()
    columns = header.split("\t")
    new_row = dict.fromkeys(columns, "")
    new_row.update(concept="zebra", word="zebra", pos="noun", definition="a striped horse")
    concepts = tmp_path / "concepts.tsv"
    concepts.write_text(
        "\n".join([header, *rows, "\t".join(new_row[c] for c in columns)]) + "\n",
        encoding="utf-8",
    )
    results = tmp_path / "results"
    campaign = campaign_in(default_config, results)
    write_sentences(campaign, "brown", campaign.concept_ids)
    grown = campaign_in({**default_config, "concepts": str(concepts)}, results)
    assert grown.planned_batches("brown") == {"cpu-004": ["zebra"]}
    assert grown.shard_ids() == ["0000", "0001", "0002"]


def test_batch_params_are_canonical_and_hold_only_members_to_make(default_config, tmp_path):
    campaign = campaign_in(default_config, tmp_path)
    ids = campaign.concept_ids
    write_sentences(campaign, "generated", ids[1:16])
    params = campaign_in(default_config, tmp_path).batch_params("generated", "gpu-000")
    assert [row["concept"] for row in params["concepts"]] == [ids[0]]
    assert list(params["fingerprints"]) == [ids[0]]
    assert params == canonical(params)


def test_canonical_sorts_keys_at_every_depth():
    a = {"b": {"y": 1, "x": [1, {"q": 2, "p": 3}]}, "a": (1, 2)}
    b = {"a": [1, 2], "b": {"x": [1, {"p": 3, "q": 2}], "y": 1}}
    assert repr(canonical(a)) == repr(canonical(b))
    assert list(canonical(a)) == ["a", "b"]


def test_reordered_config_keys_give_the_same_params(default_config, tmp_path):
    reordered = copy.deepcopy(default_config)
    reordered["experts"] = dict(reversed(list(reordered["experts"].items())))
    reordered["models"] = [dict(reversed(list(m.items()))) for m in reordered["models"]]
    a, b = campaign_in(default_config, tmp_path), campaign_in(reordered, tmp_path)
    assert repr(a.expert_settings()) == repr(b.expert_settings())
    for model in a.models:
        assert repr(a.model_load_spec(model)) == repr(b.model_load_spec(model))


def test_speed_settings_are_not_expert_params(default_config, tmp_path):
    faster = copy.deepcopy(default_config)
    faster["experts"]["max_tokens"] = 999
    assert (
        campaign_in(default_config, tmp_path).expert_settings()
        == campaign_in(faster, tmp_path).expert_settings()
    )


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"negatives": {"bank_source_concepts": 10_000}}, "negatives.bank_source_concepts"),
        ({"negatives": {"n_negatives": 100}}, "sentences.n_positives / negatives.n_negatives"),
    ],
)
def test_a_config_that_cannot_be_planned_names_its_key(default_config, tmp_path, change, key):
    config = copy.deepcopy(default_config)
    for section, values in change.items():
        config[section].update(values)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        campaign_in(config, tmp_path)


def test_the_paper_plan_sizes_every_run(tmp_path):
    """The paper's design from its config alone: shards sized per model, 24 runs, Pythia-12b on
    the large cards, and a stable batch layout of its 1,249 concepts."""
    paper = load_config(REPO / "config/paper.yaml")
    campaign = campaign_in(paper, tmp_path)
    assert len(campaign.concept_ids) == 1249 and len(campaign.shard_ids()) == 105
    # shards per model: as many concepts as a card holds (models[].shard_size)
    sizes = {m: len(campaign.shard_ids(m)) for m in ("pythia-70m", "pythia-1b", "pythia-12b")}
    assert sizes == {"pythia-70m": 4, "pythia-1b": 13, "pythia-12b": 63}
    assert campaign.shard_concepts("0003", "pythia-70m") == campaign.concept_ids[939:]
    assert campaign.expert_job_resources("pythia-1b", 100)["gpu_mem_mb"] < 40_000
    assert campaign.expert_job_resources("pythia-12b", 20)["gpu_mem_mb"] < 80_000
    assert len(campaign.model_revisions()) == 24
    assert [m for m in campaign.models if campaign.needs_large_gpu(m)] == [
        "pythia-12b",
        "pythia-12b-random",
    ]
    blocks = campaign.sentence_blocks("generated")
    assert len(blocks) == 79 and all(name.startswith("gpu-") for name in blocks)


def test_provided_files_are_read_from_the_pattern(tmp_path):
    tiny = yaml.safe_load((REPO / "tests/data/tiny_config.yaml").read_text())
    shutil.copytree(REPO / "tests/data/sentences", tmp_path / "sentences")
    path = tmp_path / "tiny.yaml"
    tiny["sentences"]["provided"] = f"{tmp_path}/sentences/{{concept}}.txt"
    tiny["concepts"] = str(REPO / tiny["concepts"])
    path.write_text(yaml.safe_dump(tiny))
    campaign = campaign_in(load_config(path), tmp_path / "results")
    assert "frost" not in campaign.provided["generated"]
    assert campaign.provided["generated"]["rain"].endswith("sentences/rain.txt")
    # frost is generated: its block needs the GPU generator, a fully provided block does not
    blocks = campaign.sentence_blocks("generated")
    (frost_block,) = [name for name, members in blocks.items() if "frost" in members]
    assert frost_block.startswith("gpu-")


def test_a_block_needs_the_gpu_only_for_members_still_to_generate(tmp_path):
    """Once the generated concept of a block is made, adding a provided concept to the block
    makes a CPU job (collect_sentences), not a generator load."""
    tiny = yaml.safe_load((REPO / "tests/data/tiny_config.yaml").read_text())
    shutil.copytree(REPO / "tests/data/sentences", tmp_path / "sentences")
    tiny["sentences"]["provided"] = f"{tmp_path}/sentences/{{concept}}.txt"
    tiny["concepts"] = str(REPO / tiny["concepts"])
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny, sort_keys=False))
    campaign = campaign_in(load_config(path), tmp_path / "results")
    assert list(campaign.planned_batches("generated")) == ["gpu-000"]  # frost is generated
    write_sentences(campaign, "generated", campaign.concept_ids)
    (made,) = [c for c in campaign.concept_ids if c in campaign.provided["generated"]][:1]
    frame = sentences_frame(made, ["old"], "facts", "generated")
    write_sentences_atomic(frame, campaign.sentence_sets["generated"].outputs[made], "other")
    again = campaign_in(load_config(path), tmp_path / "results")
    assert again.planned_batches("generated") == {"cpu-000": [made]}


def test_causal_sources_and_parts(default_config, tmp_path):
    """The default checks Brown only, in parts of 3 concepts; a source a config turns off is
    left out of causal.sources, and a list with no source on (or a name that is no source) is
    refused by key. Parts are blocks of the checked concepts, and a job's words are only its
    concepts'."""
    campaign = campaign_in(default_config, tmp_path)
    assert campaign.causal_sources() == ["brown"]
    concepts = campaign.causal_concepts()
    assert len(concepts) == 6
    parts = campaign.causal_parts()
    assert parts == {"0000": concepts[:3], "0001": concepts[3:]}
    assert set(campaign.causal_words()) == set(concepts)
    both = copy.deepcopy(default_config)
    both["causal"]["sources"] = None
    assert campaign_in(both, tmp_path).causal_sources() == list(campaign.sources)
    small = copy.deepcopy(default_config)
    small["causal"]["concepts_per_job"] = 4
    parts = campaign_in(small, tmp_path).causal_parts()
    assert [len(c) for c in parts.values()] == [4, 2] and list(parts) == ["0000", "0001"]
    off = copy.deepcopy(default_config)
    off["sentences"]["sources"]["brown"] = None
    with pytest.raises(ValueError, match=r"causal\.sources: \['brown'\] are all turned off"):
        campaign_in(off, tmp_path).causal_sources()
    off["sentences"]["sources"]["brown"] = default_config["sentences"]["sources"]["brown"]
    off["causal"]["sources"] = ["brwon"]
    with pytest.raises(ValueError, match=r"causal\.sources: \['brwon'\] are not sentence"):
        campaign_in(off, tmp_path).causal_sources()
