"""Load-time checks of what a config names (expertalign.load_checks) and the effective config
kept beside the results (expertalign.effective_config)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from expertalign.config import ConfigError, check_config, validate_config
from expertalign.effective_config import inherited_note, write_effective_config
from expertalign.judgments import JudgmentFileError, check_judged_pairs
from expertalign.load_checks import (
    check_bank_size,
    check_config_files,
    check_corpora,
    check_provided_files,
    duplicate_keys,
    min_bank_size,
    profile_files,
)

ROOT = Path(__file__).resolve().parents[1]


def config(**sections) -> dict:
    """A schema-valid config with defaults filled; ``sections`` replace whole blocks."""
    base = {
        "concepts": "concepts.tsv",
        "models": [{"name": "m", "source": "embedded"}],
        "sentences": {"n_positives": 8, "sources": {"generated": {}}},
        "negatives": {"bank_source_concepts": 7, "bank_size": 28, "n_negatives": 20},
    }
    base.update(sections)
    return validate_config(base)


# --- a key given twice ----------------------------------------------------------------------


def test_duplicate_keys_are_found_with_line_and_column(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text(
        "experts:\n  shard_size: 8\n"
        "sentences:\n  sources:\n    a: {}\n    b: {seed: 1, seed: 2}\n"
        "experts:\n  taus: [0.5]\n",
        encoding="utf-8",
    )
    assert duplicate_keys(path) == [("sentences.sources.b.seed", 6, 18, 6), ("experts", 7, 1, 1)]
    with pytest.raises(ConfigError) as info:
        check_config_files([ROOT / "config/config.yaml", path])
    message = str(info.value)
    assert message.startswith(f"{path}, line 6, column 18: config key sentences.sources.b.seed ")
    assert "given twice" in message and "first on line 6" in message
    assert "\n" not in message


def test_config_files_without_repeats_pass(tmp_path):
    # the repository's configs and profiles hold no key twice; a missing file is Snakemake's
    files = [*ROOT.glob("config/*.yaml"), *ROOT.glob("profiles/*/config.yaml")]
    assert len(files) >= 4
    check_config_files([*files, tmp_path / "absent.yaml"])


def test_invalid_yaml_is_named_by_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("experts:\n  taus: [0.5\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{path}, line \d+, column \d+: not valid YAML"):
        check_config_files([path])


def test_profile_config_is_among_the_files_read(monkeypatch):
    monkeypatch.delenv("SNAKEMAKE_PROFILE", raising=False)
    monkeypatch.chdir(ROOT)
    found = profile_files(["snakemake", "--profile", "profiles/local", "-n"])
    assert found == [Path("profiles/local/config.yaml")]
    assert profile_files(["snakemake", "--profile=profiles/nothere"]) == []


# --- sizes and files ------------------------------------------------------------------------


def test_bank_size_against_the_sentences_of_its_concepts():
    check_bank_size(config())  # the tiny run's bank: 28 of 7 x 8, 24 left for each concept
    with pytest.raises(ConfigError, match=r"negatives.bank_size: 60 .* 56 at most"):
        check_bank_size(config(negatives={"bank_source_concepts": 7, "bank_size": 60}))
    small = {"bank_source_concepts": 7, "bank_size": 22, "n_negatives": 20}
    with pytest.raises(ConfigError, match=r"leave a source concept 18 .* at least 24$"):
        check_bank_size(config(negatives=small))
    # a source with its own n_positives is held to it
    sources = {"sentences": {"n_positives": 8, "sources": {"a": {}, "b": {"n_positives": 4}}}}
    bank = {"bank_source_concepts": 7, "bank_size": 30, "n_negatives": 20}
    with pytest.raises(ConfigError, match=r"n_positives=4 sentences each \(source 'b'\)"):
        check_bank_size(config(**sources, negatives=bank))


def test_min_bank_size_leaves_n_negatives_after_the_own_share():
    for k, n in [(7, 20), (64, 35), (3, 10), (1000, 1000)]:
        b = min_bank_size(k, n)
        assert b - -(-b // k) >= n and (b - 1) - -(-(b - 1) // k) < n


def test_own_corpus_must_exist_and_have_text(tmp_path):
    def with_corpus(path):
        return config(
            sentences={
                "n_positives": 8,
                "sources": {"generated": {}, "wiki": {"backend": "corpus", "corpus": str(path)}},
            }
        )

    with pytest.raises(ConfigError, match=r"wiki.corpus: corpus file .* does not"):
        check_corpora(with_corpus(tmp_path / "wiki.txt"))
    parquet = tmp_path / "wiki.parquet"
    pd.DataFrame({"sentence": ["A cat sat."]}).to_parquet(parquet)
    with pytest.raises(ConfigError, match=r"wiki.corpus: .*wiki.parquet has no 'text' column"):
        check_corpora(with_corpus(parquet))
    pd.DataFrame({"text": ["A cat sat."]}).to_parquet(parquet)
    check_corpora(with_corpus(parquet))
    (tmp_path / "wiki.csv").write_text("text\nA cat sat.\n")
    with pytest.raises(ConfigError, match=r"'\.csv' file"):
        check_corpora(with_corpus(tmp_path / "wiki.csv"))


def test_provided_files_need_n_positives_distinct_sentences_and_exact_names(tmp_path):
    folder = tmp_path / "sentences"
    folder.mkdir()
    (folder / "cat.txt").write_text("".join(f"A cat {i}.\n" for i in range(8)))
    # 8 lines, but case and spacing make two of them the same sentence
    (folder / "dog.txt").write_text("".join(f"A dog {i}.\n" for i in range(7)) + "a  DOG 0.\n")
    settings = {"n_positives": 8, "provided": f"{folder}/{{concept}}.txt"}
    check_provided_files(config(sentences=dict(settings)), ["cat", "owl"])  # owl: generated
    with pytest.raises(ConfigError, match=rf"sentences.provided: {folder}/dog.txt has 7 distinct"):
        check_provided_files(config(sentences=dict(settings)), ["cat", "dog"])
    (folder / "dog.txt").rename(folder / "Dog.txt")
    with pytest.raises(ConfigError, match=r"'dog' has no file .*dog.txt but .*Dog.txt is there"):
        check_provided_files(config(sentences=dict(settings)), ["cat", "dog"])


def test_fallback_only_on_a_corpus_source():
    sources = {"generated": {"fallback": "brown"}, "brown": {"backend": "corpus"}}
    cfg = config(sentences={"n_positives": 8, "sources": sources})
    with pytest.raises(ConfigError, match=r"sentences.sources.generated.fallback: 'brown' .*"):
        check_config(cfg)


def test_n_boot_has_an_upper_bound():
    with pytest.raises(ConfigError, match=r"alignment.n_boot: .* <= 100000"):
        config(alignment={"n_boot": 100_000_000})


def test_judgment_sets_need_their_file_and_four_pairs(tmp_path):
    words = ["sun", "rain", "cold", "frost", "sunny"]
    with pytest.raises(JudgmentFileError, match=r"^config key alignment.judgments.w.path: .*no"):
        check_judged_pairs({"w": {"path": str(tmp_path / "no.tsv")}}, tmp_path, words)
    with pytest.raises(JudgmentFileError, match=r"^config key alignment.judgments.men \(MEN is"):
        check_judged_pairs({"men": {"split": "full"}}, tmp_path, words)
    pairs = tmp_path / "pairs.tsv"
    rows = ["sun\train\t3", "sun\tsunny\t9", "cold\tfrost\t8"]
    pairs.write_text("word1\tword2\tscore\n" + "\n".join(rows) + "\n")
    # three pairs pass no test that compares two measures (Williams' needs n > 3)
    with pytest.raises(JudgmentFileError, match=r"3 of its 3 pairs .* need at least 4"):
        check_judged_pairs({"w": {"path": str(pairs)}}, tmp_path, words)
    pairs.write_text("word1\tword2\tscore\n" + "\n".join([*rows, "rain\tcold\t5"]) + "\n")
    check_judged_pairs({"w": {"path": str(pairs)}}, tmp_path, words)


# --- the effective config -------------------------------------------------------------------


def test_effective_config_is_written_once_and_kept_when_unchanged(tmp_path):
    cfg = config()
    path = write_effective_config(cfg, tmp_path, ["config/config.yaml", "my.yaml"])
    assert path == tmp_path / "config/effective.yaml"
    text = path.read_text(encoding="utf-8")
    assert yaml.safe_load(text) == cfg
    assert "#   config/config.yaml\n#   my.yaml\n" in text
    old = time.time() - 3600
    os.utime(path, (old, old))
    write_effective_config(cfg, tmp_path, ["config/config.yaml", "my.yaml"])
    assert path.stat().st_mtime == pytest.approx(old)  # same text: not rewritten
    cfg["experts"]["taus"] = [0.5]
    write_effective_config(cfg, tmp_path, ["config/config.yaml", "my.yaml"])
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["experts"]["taus"] == [0.5]
    assert not [p for p in path.parent.iterdir() if p.name != "effective.yaml"]  # no temporary


def test_inherited_note_names_sources_and_analyses_first(tmp_path):
    mine = tmp_path / "my.yaml"
    mine.write_text(
        yaml.safe_dump({"concepts": "c.tsv", "sentences": {"n_positives": 8}, "spp": None})
    )
    note = inherited_note(ROOT / "config/config.yaml", [mine])
    assert note.startswith(f"config: {mine} is laid over {ROOT / 'config/config.yaml'} ")
    # the Brown source and the pilot come from config/config.yaml; spp is set (to null)
    assert "inherits models, sentences.sources (generated, brown), pilot, " in note
    assert "spp" not in note.split("inherits")[1].split("from it")[0].split(", ")
    assert "null" in note and "\n" not in note
    assert inherited_note(ROOT / "config/config.yaml", [ROOT / "config/config.yaml"]) is None
