"""The corpus sentence source (expertalign.corpus): part-of-speech matching on tagged sentences,
inflections, dedup, length range, seeded sampling, the too-few message, untagged text and Parquet
corpora, type/token ratio, and one check on the real Brown corpus (skipped locally without the
data, a failure in CI)."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from prerequisites import DATA, require

from expertalign.corpus import (
    Corpus,
    CorpusError,
    TooFewSentencesError,
    detokenize,
    load_corpus,
    type_token_ratio,
)
from expertalign.inflections import normalize_pos, word_forms


def tagged(text: str) -> list[tuple[str, str]]:
    """'The/at cat/nn sat/vbd ./.' -> [("The", "AT"), ...] (Brown's word/tag layout)."""
    return [tuple(tok.rsplit("/", 1)) for tok in text.split()]  # type: ignore[misc]


# A small Brown-style corpus: noun and verb uses of the same spellings, proper nouns, title and
# headline tags, possessives, inflections, a duplicate, a too-short and a too-long sentence.
SENTS = [
    "The/at cat/nn sat/vbd on/in the/at mat/nn in/in the/at sun/nn ./.",  # 0 noun
    "Two/cd cats/nns slept/vbd by/in the/at warm/jj fire/nn ./.",  # 1 plural
    "The/at old/jj woman/nn cats/vbz about/rb the/at house/nn all/abn day/nn ./.",  # 2 verb
    "She/pps visited/vbd the/at Cat/nn-tl Museum/nn-tl last/ap year/nn ./.",  # 3 title
    "The/at cat's/nn$ tail/nn was/bedz long/jj and/cc grey/jj ./.",  # 4 poss.
    "The/at cat/nn sat/vbd on/in the/at mat/nn in/in the/at sun/nn !/.",  # 5 dup of 0
    "A/at cat/nn ./.",  # 6 short
    " ".join(["Many/ap"] + ["very/ql"] * 45 + ["fat/jj", "cats/nns", "./."]),  # 7 long
    "Storms/nns mars/vbz the/at view/nn of/in the/at distant/jj hills/nns ./.",  # 8 verb
    "Mars/np is/bez a/at planet/nn seen/vbn from/in the/at earth/nn ./.",  # 9 name
    "He/pps marred/vbd the/at table/nn with/in a/at knife/nn again/rb ./.",  # 10 verb
    "They/ppss were/bed stopping/vbg the/at cars/nns at/in the/at gate/nn ./.",  # 11 -ing
    "The/at bus/nn made/vbd a/at sudden/jj stop/nn at/in the/at corner/nn ./.",  # 12 noun
    "The/at children/nns ran/vbd home/nr after/cs the/at long/jj lesson/nn ./.",  # 13 irreg.
    "The/at cities/nns grew/vbd quickly/rb after/in the/at war/nn ended/vbd ./.",  # 14 -ies
    "Knives/nns-hl and/cc forks/nns-hl for/in-hl every/at-hl table/nn-hl",  # 15 -ves
]


@pytest.fixture(scope="module")
def small() -> Corpus:
    return Corpus.from_tagged([tagged(s) for s in SENTS], name="small")


def ids(corpus: Corpus, word: str, pos: str, **kw) -> list[int]:
    return corpus.matches(word, pos, **kw)


def test_noun_and_verb_uses_are_told_apart(small):
    assert ids(small, "cat", "noun") == [0, 1, 3, 4]  # 2 is a verb; 5 dup, 6 short, 7 long
    assert ids(small, "cat", "verb") == [2]
    assert ids(small, "mar", "verb") == [8, 10]  # "mars"/vbz, "marred"/vbd
    assert ids(small, "mars", "noun") == []  # Mars/np is a name, not the common noun
    assert ids(small, "stop", "noun") == [12]
    assert ids(small, "stop", "verb") == [11]  # stopping: consonant doubled
    multi = Corpus.from_tagged(
        [
            tagged("We/ppss ate/vbd ice/nn creams/nns at/in noon/nn ./."),
            tagged("The/at ice/nn on/in the/at cream/nn was/bedz thin/jj ./."),
        ]
    )
    assert multi.matches("ice cream", "noun") == [0]


def test_inflections_irregulars_and_tag_suffixes(small):
    assert ids(small, "child", "noun") == [13]
    assert ids(small, "run", "verb") == [13]  # ran
    assert ids(small, "city", "noun") == [14]  # cities
    assert ids(small, "knife", "noun") == [10, 15]  # knives/nns-hl in a headline
    assert ids(small, "table", "noun") == [10, 15]
    assert ids(small, "fork", "n") == [15]  # concept table spellings n/v/a/j too
    assert ids(small, "end", "v") == [14]
    forms = word_forms("bake", "verb")
    assert {"bakes", "baked", "baking"} <= set(forms) and "bakeing" not in forms
    assert forms["baked"] == {"VBD", "VBN"} and forms["baking"] == {"VBG"}
    assert {"cries", "cried", "crying"} <= set(word_forms("cry", "verb"))
    assert {"boxes", "men"} <= set(word_forms("box", "noun")) | set(word_forms("man", "noun"))
    assert {"bigger", "biggest"} <= set(word_forms("big", "adjective"))
    assert normalize_pos("J") == "adjective"
    with pytest.raises(ValueError, match="part of speech 'adverb'"):
        normalize_pos("adverb")


def test_dedup_and_length_range(small):
    assert 5 not in ids(small, "cat", "noun")  # same words as sentence 0
    assert 6 in ids(small, "cat", "noun", min_words=2)  # "A cat." has 2 words
    assert 7 in ids(small, "cat", "noun", max_words=60)
    assert ids(small, "cat", "noun", min_words=9, max_words=9) == [0]  # 9 words
    assert small.count("cat", "noun") == 4
    with pytest.raises(ValueError, match="min_words 9 > max_words 8"):
        small.count("cat", "noun", min_words=9, max_words=8)


def test_detokenized_text_reads_naturally():
    toks = [
        "``",
        "No",
        ",",
        "''",
        "he",
        "said",
        "(",
        "twice",
        ")",
        ";",
        "it",
        "cost",
        "$",
        "5",
        "--",
        "a",
        "lot",
        "!",
    ]
    assert detokenize(toks) == '"No," he said (twice); it cost $5 -- a lot!'
    corpus = Corpus.from_tagged([tagged("The/at cat/nn ,/, fat/jj ,/, sat/vbd ./.")])
    assert corpus.texts == ["The cat, fat, sat."]


def test_seeded_sampling_is_reproducible_and_independent_of_other_concepts():
    words = ["cat", "dog", "bird"]
    sents = [
        tagged(f"Sentence/nn {i}/cd with/in the/at {w}/nn and/cc more/ap words/nns ./.")
        for i in range(30)
        for w in words
    ]
    corpus = Corpus.from_tagged(sents)
    a = corpus.select("cat", "noun", 10, seed=1, concept="cat")
    assert a == corpus.select("cat", "noun", 10, seed=1)  # same seed, same sentences
    assert a != corpus.select("cat", "noun", 10, seed=2)
    assert len(set(a)) == 10 and all(" cat " in t for t in a)
    assert corpus.select("cat", "noun", 15, seed=1)[:10] == a  # more keeps the first ones
    # Other concepts (selected before, or present in the corpus) change nothing.
    corpus.select("dog", "noun", 5, seed=1)
    only_cats = Corpus.from_tagged([s for s in sents if s[4][0] == "cat"])
    assert only_cats.select("cat", "noun", 10, seed=1) == a


def test_too_few_sentences_names_concept_word_pos_counts_and_corpus(small):
    assert small.count("cat", "verb") == 1
    with pytest.raises(TooFewSentencesError) as err:
        small.select("cat", "verb", 40, seed=0, concept="cat_v")
    msg = str(err.value)
    for part in ("concept 'cat_v'", "word 'cat'", "verb", "1 sentence", "40 needed", "'small'"):
        assert part in msg, (part, msg)
    assert isinstance(err.value, ValueError)
    assert (err.value.found, err.value.needed, err.value.corpus) == (1, 40, "small")


def test_untagged_text_corpus(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text(
        "\ufeffThe planet Mars is red and very far away.\n\n"
        "Storms mars the view of the distant hills.\n"
        "the planet  MARS is red and very far away!\n"
        "Dogs barked at the mailman every single morning.\n",
        encoding="utf-8",
    )
    corpus = load_corpus(path)
    assert not corpus.tagged and corpus.name == "mine.txt" and len(corpus.texts) == 4
    # Untagged: word match only, so "mars" the name and the verb both count; dedup ignores case,
    # spacing and punctuation.
    assert corpus.matches("mar", "verb") == [0, 1]  # "Mars" too; 2 = dup of 0
    assert corpus.matches("mars", "noun") == [0, 1]
    assert corpus.select("dog", "noun", 1, seed=0) == [
        "Dogs barked at the mailman every single morning."
    ]
    with pytest.raises(TooFewSentencesError, match="untagged"):
        corpus.select("dog", "noun", 2, seed=0)
    mine = Corpus.from_texts(
        [
            "My neighbour's cat-like dog ate the ice cream.",
            "The cream of the crop, on ice, was sold.",
        ]
    )
    assert mine.matches("cat", "noun") == [0] and mine.matches("dog", "noun") == [0]
    assert mine.matches("ice_cream", "noun") == [0] and mine.matches("ice cream", "n") == [0]


def test_parquet_corpus_and_bad_files(tmp_path):
    path = tmp_path / "wiki.parquet"
    pd.DataFrame(
        {
            "id": [1, 2, 3],
            "text": ["A cat sat on the warm mat.", None, "The cats chased a red ball."],
        }
    ).to_parquet(path)
    corpus = load_corpus(path)
    assert corpus.name == "wiki.parquet" and corpus.count("cat", "noun") == 2
    pd.DataFrame({"sentence": ["x"]}).to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(CorpusError, match="no 'text' column"):
        load_corpus(tmp_path / "bad.parquet")
    with pytest.raises(CorpusError, match="does not exist"):
        load_corpus(tmp_path / "missing.txt")
    with pytest.raises(CorpusError, match="no corpora/ folder"):
        load_corpus("brown", data_dir=tmp_path)


def test_type_token_ratio():
    assert type_token_ratio(["The cat sat.", "the CAT ran"]) == pytest.approx(4 / 6)
    assert type_token_ratio(["a b c d"]) == 1.0
    assert type_token_ratio([]) == 0.0


def test_real_brown_corpus():
    nltk_data = DATA / "nltk_data"
    require((nltk_data / "corpora" / "brown.zip").is_file(), f"Brown under {nltk_data}")
    corpus = load_corpus("brown", data_dir=DATA)
    assert corpus.tagged and len(corpus.texts) == 57340
    assert corpus.load_seconds < 120
    t0 = time.perf_counter()
    n_noun, n_verb = corpus.count("mars", "noun"), corpus.count("mar", "verb")
    assert n_noun == 0 and n_verb >= 3  # "Mars" is np, "mars"/"marred" verbs
    cats = corpus.select("cat", "noun", 20, seed=0, concept="cat")
    assert time.perf_counter() - t0 < 2.0  # the index makes selection fast
    assert len(cats) == 20 and all("cat" in t.lower() for t in cats)
    assert not any("``" in t or "''" in t or " ," in t for t in cats)
    assert cats == corpus.select("cat", "noun", 20, seed=0)
    with pytest.raises(TooFewSentencesError, match=r"concept 'cat' \(word 'cat', noun\): \d+"):
        corpus.select("cat", "noun", 10_000, seed=0, concept="cat")
