"""Paraphrase and back-translation: skipped without a model, run with a local one.

The tiny models are random, so what they write is gibberish: these tests check that the
path runs offline, is deterministic, and yields rows, not that the rows are paraphrases."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from personalab.augment import (
    BackTranslationAugmenter,
    DecodeSettings,
    ParaphraseAugmenter,
    augment_dataset,
)
from personalab.augment.model_based import clean_answer
from personalab.errors import PersonalabError

TEXTS = ["I love this movie.", "The weather is cold and rainy.", "Our team won the match."]
FAST = DecodeSettings(max_new_tokens=8, batch_size=2)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine torch's thread pool
    makes each 64-wide matmul take milliseconds instead of microseconds."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def rngs(seed: int, n: int = len(TEXTS)) -> list[random.Random]:
    return [random.Random(seed * 100 + i) for i in range(n)]


@pytest.fixture(scope="module")
def tiny_seq2seq_path(tmp_path_factory, tiny_causal_lm_path) -> Path:
    """A tiny random BART (an encoder-decoder like MarianMT) with the tiny LM's tokenizer."""
    import torch
    import transformers

    folder = tmp_path_factory.mktemp("tiny-seq2seq")
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tiny_causal_lm_path))
    eos = tokenizer.eos_token_id
    config = transformers.BartConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_position_embeddings=128, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=eos, bos_token_id=eos, decoder_start_token_id=eos, init_std=0.3,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        transformers.BartForConditionalGeneration(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.mark.parametrize("make", [ParaphraseAugmenter, BackTranslationAugmenter])
def test_without_a_model_the_augmenter_is_skipped_with_a_reason(make, dataset_of):
    augmenter = make()
    reason = augmenter.unavailable()
    assert reason is not None and "configured" in reason and "local" in reason
    dataset = dataset_of([("a", "x y", "yes", "train"), ("a", "y z", "no", "test")])
    augmented, report = augment_dataset(dataset, [augmenter], copies=2)
    assert augmented.examples == dataset.examples
    assert report.skipped == {augmenter.name: reason}
    assert report.to_dict()["augmenters"][augmenter.name]["skipped"] == reason


def test_back_translation_needs_both_directions():
    assert BackTranslationAugmenter(forward_path="somewhere").unavailable() is not None


@pytest.mark.parametrize(
    "augmenter",
    [
        ParaphraseAugmenter(model_path="/no/such/model"),
        BackTranslationAugmenter(forward_path="/no/such/a", backward_path="/no/such/b"),
    ],
)
def test_a_configured_model_that_is_not_there_is_a_user_error(augmenter):
    with pytest.raises(PersonalabError, match="not a local folder"):
        augmenter.unavailable()


def test_paraphrase_with_a_tiny_causal_lm_is_deterministic(tiny_causal_lm_path):
    first = ParaphraseAugmenter(model_path=tiny_causal_lm_path, decode=FAST, device="cpu")
    assert first.unavailable() is None
    outputs = first.augment(TEXTS, rngs(0))
    again = ParaphraseAugmenter(model_path=tiny_causal_lm_path, decode=FAST, device="cpu")
    assert again.augment(TEXTS, rngs(0)) == outputs
    assert len(outputs) == len(TEXTS) and all(isinstance(text, str) for text in outputs)
    assert any(text for text in outputs)


def test_paraphrase_rows_reach_the_dataset(tiny_causal_lm_path, dataset_of):
    dataset = dataset_of(
        [("a", text, "yes", "train") for text in TEXTS] + [("a", "held out", "no", "val")]
    )
    augmenter = ParaphraseAugmenter(model_path=tiny_causal_lm_path, decode=FAST, device="cpu")
    augmented, report = augment_dataset(dataset, [augmenter], copies=2, seed=0)
    stats = report.augmenters["paraphrase"]
    assert stats.produced == 2 * len(TEXTS) and stats.kept > 0
    assert len(augmented.examples) == len(dataset.examples) + stats.kept
    again, _ = augment_dataset(dataset, [augmenter], copies=2, seed=0)
    assert again.examples == augmented.examples


def test_sampling_is_seeded_per_row(tiny_causal_lm_path):
    sampled = DecodeSettings(max_new_tokens=8, sample=True, temperature=1.0)
    augmenter = ParaphraseAugmenter(model_path=tiny_causal_lm_path, decode=sampled, device="cpu")
    augmenter.unavailable()
    outputs = augmenter.augment(TEXTS, rngs(0))
    assert augmenter.augment(TEXTS[::-1], rngs(0)[::-1]) == outputs[::-1]
    assert augmenter.augment(TEXTS, rngs(1)) != outputs


def test_back_translation_with_tiny_seq2seq_models(tiny_seq2seq_path):
    def make():
        return BackTranslationAugmenter(
            forward_path=tiny_seq2seq_path, backward_path=tiny_seq2seq_path, decode=FAST,
            device="cpu",
        )

    augmenter = make()
    assert augmenter.unavailable() is None
    outputs = augmenter.augment(TEXTS, rngs(0))
    assert len(outputs) == len(TEXTS) and any(outputs)
    other = make()
    other.unavailable()
    assert other.augment(TEXTS, rngs(0)) == outputs


class Reverse:
    """A pluggable generator: reverses the word order (and records what it was given)."""

    def __init__(self):
        self.seen: list[str] = []

    def generate(self, texts, seeds):
        self.seen += list(texts)
        return [" ".join(reversed(text.split())) for text in texts]


class Shout(Reverse):
    def generate(self, texts, seeds):
        return [text.upper() + " !" for text in texts]


def test_back_translation_chains_pluggable_generators():
    forward, backward = Reverse(), Shout()
    augmenter = BackTranslationAugmenter(forward=forward, backward=backward)
    assert augmenter.unavailable() is None
    assert augmenter.augment(["a b c"], rngs(0, 1)) == ["C B A !"]
    assert forward.seen == ["a b c"]


def test_paraphrase_takes_a_pluggable_generator():
    class Echo:
        def chat_prompt(self, instruction, text):
            return f"{instruction}|{text}"

        def generate(self, texts, seeds):
            return [f'Paraphrase: "{text.split("|")[1]} indeed"\nextra line' for text in texts]

    augmenter = ParaphraseAugmenter(generator=Echo())
    assert augmenter.unavailable() is None
    assert augmenter.augment(["it rains"], rngs(0, 1)) == ["it rains indeed"]


@pytest.mark.parametrize(
    "raw, clean",
    [("  \nRewritten: Hello there.\nmore", "Hello there."), ("'quoted'", "quoted"), ("", "")],
)
def test_clean_answer(raw, clean):
    assert clean_answer(raw) == clean
