"""The WordNet reader, where it looks for the database, and synonym replacement."""

from __future__ import annotations

import random

import pytest

from personalab.augment import SynonymAugmenter, WordNet, augment_dataset, find_wordnet
from personalab.augment.base import tokenize
from personalab.augment.wordnet import WORDNET_ENV
from personalab.errors import PersonalabError

HAPPY_SYNONYMS = {"felicitous", "glad", "well-chosen"}  # WordNet 3.0, adjective senses 2-4


def installed_wordnet():
    try:
        return find_wordnet()
    except PersonalabError:  # a wrong $PERSONALAB_WORDNET is tested elsewhere
        return None


def test_reader_lists_synonyms_by_sense_order(tiny_wordnet):
    wordnet = WordNet(tiny_wordnet)
    assert wordnet.synonyms("happy", max_senses=None) == ("felicitous", "glad", "well-chosen")
    assert wordnet.synonyms("Happy", max_senses=2) == ("felicitous",)  # sense 1 is "happy" alone
    assert wordnet.synonyms("unknownword") == ()


def test_reader_handles_hex_counts_markers_and_multiword_lemmas(tiny_wordnet):
    wordnet = WordNet(tiny_wordnet)
    assert len(wordnet.synonyms("big")) == 10  # an 11-word synset: count "0b" is hexadecimal
    assert wordnet.synonyms("plentiful") == ("galore",)  # "galore(ip)" loses its marker
    assert wordnet.synonyms("frozen dessert") == ("ice cream",)
    assert set(wordnet.synonyms("film")) == {"movie", "picture"}
    assert wordnet.synonyms("love") == ("adore",)  # from index.verb / data.verb


def test_synonyms_replace_happy_with_a_wordnet_synonym(tiny_wordnet):
    augmenter = SynonymAugmenter(wordnet_path=tiny_wordnet)
    assert augmenter.unavailable() is None
    outputs = augmenter.augment(["I am happy today."] * 20, [random.Random(s) for s in range(20)])
    replaced = {tokenize(text)[2].text for text in outputs}
    assert replaced <= {"felicitous", "glad"}  # max_senses=3: senses 1-3
    assert replaced == {"felicitous", "glad"}  # and the choice depends on the row's stream
    assert all(text.startswith("I am ") and text.endswith(" today.") for text in outputs)


def test_synonyms_keep_capitals_and_skip_stop_words(tiny_wordnet):
    augmenter = SynonymAugmenter(rate=1.0, wordnet_path=tiny_wordnet)
    augmenter.unavailable()
    text = augmenter.replace("Happy people love a big movie", random.Random(0))
    new = text.split()
    assert new[0] in {"Felicitous", "Glad"} and new[1] == "people" and new[3] == "a"
    assert new[2] == "adore" and new[4] != "big" and new[5] in {"film", "picture"}


def test_synonyms_deterministic_per_seed_and_different_across_seeds(tiny_wordnet):
    augmenter = SynonymAugmenter(rate=1.0, wordnet_path=tiny_wordnet)
    augmenter.unavailable()
    texts = ["a big happy movie"] * 8
    same = [augmenter.augment(texts, [random.Random(s) for s in range(8)]) for _ in range(2)]
    other = augmenter.augment(texts, [random.Random(100 + s) for s in range(8)])
    assert same[0] == same[1] and same[0] != other


def test_explicit_wordnet_folder_that_is_wrong_is_a_user_error(tmp_path):
    with pytest.raises(PersonalabError, match="wordnet-base"):
        find_wordnet(tmp_path)
    with pytest.raises(PersonalabError, match="not a WordNet database folder"):
        SynonymAugmenter(wordnet_path=tmp_path).unavailable()


def test_wordnet_folder_from_the_environment(tiny_wordnet, monkeypatch):
    monkeypatch.setenv(WORDNET_ENV, str(tiny_wordnet))
    assert find_wordnet() == tiny_wordnet


def test_missing_wordnet_skips_the_augmenter_with_a_clear_reason(no_default_wordnet, dataset_of):
    assert find_wordnet() is None
    reason = SynonymAugmenter().unavailable()
    assert "no WordNet database found" in reason and "apt-get install wordnet-base" in reason
    dataset = dataset_of([("a", "I am happy", "yes", "train"), ("a", "I am sad", "no", "val")])
    augmented, report = augment_dataset(dataset, ["synonyms"])
    assert augmented.examples == dataset.examples
    assert report.skipped == {"synonyms": reason}
    assert report.augmenters["synonyms"].produced == 0


@pytest.mark.skipif(
    installed_wordnet() is None,
    reason="no WordNet database installed (apt-get install wordnet-base, or set "
    "PERSONALAB_WORDNET); the reader is tested on a tiny WNDB folder above",
)
def test_real_wordnet_knows_happy():
    wordnet = WordNet(installed_wordnet())
    assert set(wordnet.synonyms("happy", max_senses=None)) >= HAPPY_SYNONYMS
    assert "glad" in wordnet.synonyms("happy")
