"""Tests for expertalign.judgments on the shared MEN copy and on small hand-written files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from prerequisites import DATA, require

from expertalign.judgments import (
    JudgmentFileError,
    pairs_in_vocabulary,
    read_men,
    read_word_pairs,
)


@pytest.fixture
def men_data():
    """The shared MEN files: skipped without them locally, a failure in CI."""
    require(
        (DATA / "MEN" / "MEN_dataset_natural_form_full").is_file(),
        f"MEN under {DATA} (set EXPERTALIGN_DATA)",
    )


needs_men = pytest.mark.usefixtures("men_data")


@needs_men
def test_men_split_sizes_and_vocabulary() -> None:
    sizes = {s: len(read_men(DATA, s)) for s in ("full", "dev", "test")}
    assert sizes == {"full": 3000, "dev": 2000, "test": 1000}
    full = read_men(DATA, "full")
    assert len(set(full.word1) | set(full.word2)) == 751
    assert list(full.columns) == ["word1", "word2", "score"]
    assert full.score.between(0, 50).all()
    # natural form, not lemma form
    assert not full.word1.str.contains(r"-[nvj]$").any()


@needs_men
def test_men_dev_and_test_partition_full() -> None:
    full = read_men(DATA, "full")
    dev, test = read_men(DATA, "dev"), read_men(DATA, "test")
    key = lambda d: set(zip(d.word1, d.word2, d.score))  # noqa: E731
    assert key(dev).isdisjoint(key(test))
    assert key(dev) | key(test) == key(full)


@needs_men
@pytest.mark.parametrize("split", ["dev", "test"])
def test_men_split_agrees_with_derived_files(split: str) -> None:
    ours = read_men(DATA / "MEN", split)  # the MEN folder itself is accepted too
    derived = read_word_pairs(DATA / "MEN" / f"DERIVED_natural_form.{split}", 0, 1, 2)
    pd.testing.assert_frame_equal(ours, derived)


@needs_men
def test_men_first_test_pair() -> None:
    test = read_men(DATA, "test")
    # lemma file line 1 is "display-n pond-n 10.000000"
    assert tuple(test.iloc[0]) == ("display", "pond", 10.0)


def test_read_men_rejects_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        read_men(tmp_path, "train")


def test_read_men_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(JudgmentFileError, match="MEN_dataset_natural_form_full"):
        read_men(tmp_path, "test")


def test_read_men_misaligned_split(tmp_path: Path) -> None:
    (tmp_path / "MEN_dataset_natural_form_full").write_text("sun sunlight 50\ncar auto 49\n")
    (tmp_path / "MEN_dataset_lemma_form_full").write_text("sun-n sunlight-n 50\ncar-n auto-n 49\n")
    (tmp_path / "MEN_dataset_lemma_form.test").write_text("car-n auto-n 49\nfoo-n bar-n 1\n")
    with pytest.raises(JudgmentFileError, match=r"line 2: pair foo-n bar-n"):
        read_men(tmp_path, "test")


def test_read_word_pairs_tsv_with_mapping(tmp_path: Path) -> None:
    f = tmp_path / "simlex.txt"
    f.write_text("word1\tword2\tPOS\tSimLex999\nold\tnew\tA\t1.58\nsmart\tintelligent\tA\t9.2\n")
    df = read_word_pairs(f, score="SimLex999")
    assert list(df.word1) == ["old", "smart"]
    assert list(df.score) == [1.58, 9.2]


def test_read_word_pairs_csv_sniffed(tmp_path: Path) -> None:
    f = tmp_path / "pairs.csv"
    f.write_text("a,b,sim\ncat,dog,7.5\n\ncar, truck ,6\n")
    df = read_word_pairs(f, word1="a", word2="b", score="sim")
    rows = list(df.itertuples(index=False, name=None))
    assert rows == [("cat", "dog", 7.5), ("car", "truck", 6.0)]


def test_read_word_pairs_missing_column_names_it(tmp_path: Path) -> None:
    f = tmp_path / "pairs.tsv"
    f.write_text("word1\tword2\trating\ncat\tdog\t3\n")
    expected = r"pairs\.tsv: line 1: missing column\(s\) \['score'\]"
    with pytest.raises(JudgmentFileError, match=expected):
        read_word_pairs(f)


def test_read_word_pairs_non_numeric_score_names_row_and_column(tmp_path: Path) -> None:
    f = tmp_path / "pairs.tsv"
    f.write_text("word1\tword2\tscore\ncat\tdog\t3\ncar\ttruck\thigh\n")
    expected = r"pairs\.tsv: line 3, column 'score': score 'high'"
    with pytest.raises(JudgmentFileError, match=expected):
        read_word_pairs(f)


def test_read_word_pairs_wrong_field_count_names_row(tmp_path: Path) -> None:
    f = tmp_path / "pairs.tsv"
    f.write_text("word1\tword2\tscore\ncat\tdog\t3\ncar\t5\n")
    with pytest.raises(JudgmentFileError, match=r"line 3: expected 3 fields"):
        read_word_pairs(f)


def test_read_word_pairs_empty_word_and_nan_score(tmp_path: Path) -> None:
    f = tmp_path / "p.csv"
    f.write_text("word1,word2,score\ncat,,3\n")
    with pytest.raises(JudgmentFileError, match=r"line 2, column 'word2': empty word"):
        read_word_pairs(f)
    f.write_text("word1,word2,score\ncat,dog,nan\n")
    with pytest.raises(JudgmentFileError, match=r"line 2, column 'score'.*not finite"):
        read_word_pairs(f)


def test_read_word_pairs_headerless_positions(tmp_path: Path) -> None:
    f = tmp_path / "men_like"
    f.write_text("sun sunlight 50.000000\nriver water 49\n")
    df = read_word_pairs(f, 0, 1, 2)
    assert df.score.tolist() == [50.0, 49.0]
    with pytest.raises(JudgmentFileError, match="line 2, column 'score'"):
        f.write_text("sun sunlight 50\nriver water x\n")
        read_word_pairs(f, 0, 1, 2)


def test_read_word_pairs_missing_file(tmp_path: Path) -> None:
    with pytest.raises(JudgmentFileError, match="not found"):
        read_word_pairs(tmp_path / "nope.tsv")


def test_pairs_in_vocabulary_filters_and_counts() -> None:
    pairs = pd.DataFrame(
        {
            "word1": ["Cat", "dog", "cat", "car", "sun", "cat"],
            "word2": ["dog", "CAT", "cat", "truck", "moon", "mouse"],
            "score": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        }
    )
    out = pairs_in_vocabulary(pairs, {"cat", "DOG", "car", "truck", "mouse"})
    assert list(zip(out.word1, out.word2)) == [("Cat", "dog"), ("car", "truck"), ("cat", "mouse")]
    assert out.score.tolist() == [1.0, 4.0, 6.0]
    assert out.attrs["vocabulary_filter"] == {
        "n_input": 6,
        "n_out_of_vocabulary": 1,
        "n_self_pairs": 1,
        "n_duplicates": 1,
        "n_kept": 3,
    }


def test_pairs_in_vocabulary_rejects_string_vocabulary() -> None:
    pairs = pd.DataFrame({"word1": ["a"], "word2": ["b"], "score": [1.0]})
    with pytest.raises(TypeError):
        pairs_in_vocabulary(pairs, "ab")
