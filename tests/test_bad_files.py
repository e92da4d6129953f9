"""Bad concept tables, provided sentence files, judgment files and configs are named."""

from __future__ import annotations

import pytest
import yaml
from workflow_helpers import REPO, _expect

TINY = REPO / "tests/data/tiny_config.yaml"


def test_two_senses_of_one_word_are_refused_at_table_load(tmp_path):
    from expertalign.concepts import ConceptTableError, load_concepts, word_concepts

    table = tmp_path / "c.tsv"
    table.write_text(
        "concept\tword\tpos\nbank_n\tbank\tnoun\ncat\tcat\tnoun\nbank_v\tBank\tverb\n",
        encoding="utf-8",
    )
    _expect(
        lambda: load_concepts(table),
        ConceptTableError,
        f"{table}, line 4, column 'word'",
        "'bank_n' (line 2)",
    )
    import pandas as pd

    frame = pd.DataFrame({"concept": ["bank_n", "bank_v"], "word": ["bank", "bank"]})
    _expect(lambda: word_concepts(frame), ValueError, "'bank_n' and 'bank_v'")


def test_concept_table_header_with_a_byte_order_mark_is_read(tmp_path):
    from expertalign.concepts import load_concepts

    table = tmp_path / "c.tsv"
    table.write_bytes("\ufeffconcept\tword\tpos\ncat\tcat\tnoun\n".encode())
    assert load_concepts(table)["concept"].tolist() == ["cat"]


def test_concept_table_bad_byte_is_reported_on_its_line(tmp_path):
    from expertalign.concepts import ConceptTableError, load_concepts

    table = tmp_path / "c.tsv"
    table.write_bytes(b"concept\tword\tpos\ncat\tcat\tnoun\ndog\td\xf6g\tnoun\n")
    _expect(lambda: load_concepts(table), ConceptTableError, f"{table}, line 3", "0xf6")


@pytest.mark.parametrize("suffix", [".txt", ".tsv", ".csv"])
def test_provided_file_with_a_byte_order_mark_loses_it(tmp_path, suffix):
    from expertalign.sentences import read_provided_sentences

    body = {
        ".txt": "A cat sat.\nA cat ran.\n",
        ".tsv": "text\nA cat sat.\nA cat ran.\n",
        ".csv": "text\nA cat sat.\nA cat ran.\n",
    }[suffix]
    path = tmp_path / f"cat{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    assert read_provided_sentences(path) == ["A cat sat.", "A cat ran."]


def test_provided_file_that_is_not_utf8_is_named(tmp_path):
    from expertalign.sentences import read_provided_sentences

    path = tmp_path / "cat.txt"
    path.write_bytes(b"A cat sat.\nA c\xe4t ran.\n")
    _expect(lambda: read_provided_sentences(path), ValueError, f"{path}, line 2", "UTF-8")


def test_provided_file_with_too_few_sentences_names_it(tmp_path):
    from expertalign.sentences import SentenceGenerationError, provided_concept_sentences

    path = tmp_path / "cat.txt"
    path.write_text("A cat sat.\n", encoding="utf-8")
    _expect(
        lambda: provided_concept_sentences({"concept": "cat"}, path, 3),
        SentenceGenerationError,
        "concept 'cat'",
        str(path),
        "3 needed",
    )


@pytest.mark.parametrize(
    "pattern, words",
    [
        ("s/cat.txt", ("sentences.provided", "no {concept}")),
        ("s/{name}/{concept}.txt", ("sentences.provided", "{name}")),
        ("s/{concept.txt", ("sentences.provided", "not a valid pattern")),
    ],
)
def test_provided_pattern_is_checked(pattern, words):
    from expertalign.config import ConfigError, check_provided_pattern

    _expect(lambda: check_provided_pattern(pattern), ConfigError, *words)


def test_judgment_file_that_is_not_utf8_is_named(tmp_path):
    from expertalign.judgments import JudgmentFileError, read_word_pairs

    path = tmp_path / "pairs.tsv"
    path.write_bytes(b"word1\tword2\tscore\ncat\tdog\t3\ncaf\xe9\ttea\t4\n")
    _expect(lambda: read_word_pairs(path), JudgmentFileError, f"{path}: line 3", "UTF-8")


def test_judgment_score_that_is_no_number_is_named(tmp_path):
    from expertalign.judgments import JudgmentFileError, read_word_pairs

    path = tmp_path / "pairs.tsv"
    path.write_text("word1\tword2\tscore\ncat\tdog\tthree\n", encoding="utf-8")
    _expect(lambda: read_word_pairs(path), JudgmentFileError, str(path), "line 2", "'score'")


def test_no_judged_pair_names_the_set_and_its_file():
    from expertalign.judgments import (
        JudgmentFileError,
        judged_among,
        judgment_source,
        read_judgment_set,
    )

    data = REPO.parent / "shared/data"
    spec = {"split": "full"}
    men = read_judgment_set("men", spec, data)
    _expect(
        lambda: judged_among(men, ["qwertz", "asdfg"], "men", judgment_source("men", spec, data)),
        JudgmentFileError,
        "judgment set 'men'",
        "MEN_dataset_natural_form_full",
        "0 of its 3000 pairs",
    )


def test_cli_prefetch_refuses_a_bad_config_in_one_line(tmp_path, capsys):
    from expertalign.cli import main

    config = yaml.safe_load(TINY.read_text(encoding="utf-8"))
    config["experts"]["taus"] = [0.5, 0.5]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["prefetch", "--configfile", str(path)])
    assert "experts.taus" in capsys.readouterr().err
