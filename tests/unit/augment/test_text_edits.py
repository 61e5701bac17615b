"""The word-level augmenters: swap, delete, context noise, and the tokens they edit."""

from __future__ import annotations

import random

import pytest

from personalab.augment import ContextNoiseAugmenter, DeleteAugmenter, SwapAugmenter, normalize
from personalab.augment.base import detokenize, tokenize, word_positions
from personalab.augment.noise import typo
from personalab.errors import PersonalabError

SENTENCES = [
    "The new ramen place downtown serves a twelve-hour pork broth.",
    "Our striker scored twice in the last ten minutes of the derby.",
    "A pianist I saw last night plays standards with surprising new harmonies!",
    "I don't like waiting in line, it's boring (and a waste of time).",
]
WORD_LEVEL = [SwapAugmenter, DeleteAugmenter, ContextNoiseAugmenter]


def words(text: str) -> list[str]:
    tokens = tokenize(text)
    return [tokens[i].text for i in word_positions(tokens)]


def run(augmenter, texts, seed: int) -> list[str]:
    return augmenter.augment(texts, [random.Random(seed * 1000 + i) for i in range(len(texts))])


@pytest.mark.parametrize("text", SENTENCES + ["  spaced   out  ", "", "one"])
def test_detokenize_restores_text_up_to_whitespace(text):
    assert detokenize(tokenize(text)) == " ".join(text.split())


def test_tokens_keep_contractions_and_hyphens_whole():
    assert words(SENTENCES[3])[:3] == ["I", "don't", "like"]
    assert "twelve-hour" in words(SENTENCES[0])


@pytest.mark.parametrize("make", WORD_LEVEL)
def test_same_seed_same_output_other_seed_other_output(make):
    first, again = run(make(), SENTENCES, 0), run(make(), SENTENCES, 0)
    other = run(make(), SENTENCES, 1)
    assert first == again
    assert first != other
    assert all(normalize(new) != normalize(old) for new, old in zip(first, SENTENCES))


@pytest.mark.parametrize("make", WORD_LEVEL)
def test_output_depends_only_on_its_own_stream(make):
    alone = make().augment([SENTENCES[2]], [random.Random(7)])
    batched = make().augment(SENTENCES, [random.Random(x) for x in (1, 2, 7, 3)])
    assert batched[2] == alone[0]


def test_swap_moves_words_keeps_the_words_and_the_punctuation():
    for new, old in zip(run(SwapAugmenter(rate=0.3), SENTENCES, 3), SENTENCES):
        assert sorted(words(new)) == sorted(words(old))
        assert words(new) != words(old)
        assert new[-1] == old[-1]  # the closing mark stays at the end


def test_swap_never_just_swaps_equal_words():
    # Only "a" repeats: a swap of the two would change nothing; every result must differ.
    text = "a dog saw a cat"
    outputs = {SwapAugmenter().swap(text, random.Random(seed)) for seed in range(30)}
    assert text not in outputs


def test_delete_removes_some_words_never_all():
    for new, old in zip(run(DeleteAugmenter(rate=0.3), SENTENCES, 0), SENTENCES):
        kept, before = words(new), words(old)
        assert 0 < len(kept) < len(before)
        assert all(word in before for word in kept)
    assert DeleteAugmenter(rate=1.0).delete("two words", random.Random(0)) in ("two", "words")
    assert DeleteAugmenter().delete("single", random.Random(0)) == "single"


def test_context_noise_puts_typos_inside_words():
    typos_only = ContextNoiseAugmenter(casing_prob=0, punctuation_prob=0)
    for new, old in zip(run(typos_only, SENTENCES, 2), SENTENCES):
        changed = [(a, b) for a, b in zip(words(new), words(old)) if a != b]
        assert len(words(new)) == len(words(old))
        assert 1 <= len(changed) <= 3
        for noisy, clean in changed:
            assert (noisy[0], noisy[-1]) == (clean[0], clean[-1])
            assert abs(len(noisy) - len(clean)) <= 1


def test_typo_always_changes_the_word():
    for seed in range(200):
        assert typo("boot", random.Random(seed)) != "boot"


def test_context_noise_punctuation_and_casing():
    noisy = ContextNoiseAugmenter(punctuation_prob=1, casing_prob=1).perturb(
        "Good morning everyone.", random.Random(0)
    )
    assert noisy.startswith("g") and not noisy.endswith(".")


@pytest.mark.parametrize("make", WORD_LEVEL)
@pytest.mark.parametrize("rate", [0, -0.1, 1.5])
def test_bad_rate_is_a_user_error(make, rate):
    with pytest.raises(PersonalabError, match="rate"):
        make(rate=rate)
