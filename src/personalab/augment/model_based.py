"""Paraphrase and back-translation: augmenters whose new texts come from a generator model.

Both take either a ready generator (anything with ``generate(texts, seeds)``) or local model
folders, loaded on first use. With neither, they are skipped with a message that says what to
configure: a model is an explicit choice (a few hundred MB to load), never a default.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from personalab.augment.generators import (
    CausalLMGenerator,
    DecodeSettings,
    PromptedGenerator,
    Seq2SeqGenerator,
    TextGenerator,
)

# Several wordings of one request: with greedy decoding, the instruction is what makes two
# copies of the same row differ. Each row's stream picks one.
PARAPHRASE_INSTRUCTIONS = (
    "Paraphrase the following sentence, keeping its meaning. Reply with the paraphrase only.",
    "Rewrite this sentence in different words without changing what it says. Reply with the "
    "rewritten sentence only.",
    "Say the same thing as this sentence in another way. Reply with one sentence only.",
)
# A model that echoes its prompt's labels ("Paraphrase: ...") gets them removed.
_ANSWER_PREFIXES = ("paraphrase:", "rewritten:", "rewritten sentence:", "sentence:")


@dataclass
class ParaphraseAugmenter:
    """Paraphrases by prompting a local causal LM (an instruct model such as Qwen2.5-Instruct)."""

    model_path: str | Path | None = None
    generator: PromptedGenerator | None = None
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    device: str = "auto"
    instructions: tuple[str, ...] = PARAPHRASE_INSTRUCTIONS
    name: str = "paraphrase"

    def unavailable(self) -> str | None:
        if self.generator is None and self.model_path is None:
            return (
                "no paraphrase model configured: give ParaphraseAugmenter(model_path=...) a "
                "local causal LM folder (an instruct model), or a generator"
            )
        if self.generator is None:
            self.generator = CausalLMGenerator(self.model_path, self.decode, self.device)
        return None

    def augment(self, texts: Sequence[str], rngs: Sequence[random.Random]) -> list[str]:
        _require_available(self)
        generator = self.generator
        assert generator is not None
        prompts = [
            generator.chat_prompt(rng.choice(self.instructions), text)
            for text, rng in zip(texts, rngs)
        ]
        seeds = [rng.getrandbits(63) for rng in rngs]
        return [clean_answer(answer) for answer in generator.generate(prompts, seeds)]


@dataclass
class BackTranslationAugmenter:
    """Translates to a pivot language and back with two local seq2seq models (e.g. MarianMT
    ``opus-mt-en-de`` then ``opus-mt-de-en``); the round trip rewords the text."""

    forward_path: str | Path | None = None  # source language -> pivot
    backward_path: str | Path | None = None  # pivot -> source language
    forward: TextGenerator | None = None
    backward: TextGenerator | None = None
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    device: str = "auto"
    name: str = "back_translation"

    def unavailable(self) -> str | None:
        has_forward = self.forward is not None or self.forward_path is not None
        has_backward = self.backward is not None or self.backward_path is not None
        if not (has_forward and has_backward):
            return (
                "no translation models configured: give BackTranslationAugmenter "
                "forward_path= (source -> pivot) and backward_path= (pivot -> source), local "
                "seq2seq model folders such as MarianMT opus-mt-en-de / opus-mt-de-en"
            )
        if self.forward is None:
            self.forward = Seq2SeqGenerator(self.forward_path, self.decode, self.device)
        if self.backward is None:
            self.backward = Seq2SeqGenerator(self.backward_path, self.decode, self.device)
        return None

    def augment(self, texts: Sequence[str], rngs: Sequence[random.Random]) -> list[str]:
        _require_available(self)
        assert self.forward is not None and self.backward is not None
        forward_seeds = [rng.getrandbits(63) for rng in rngs]
        backward_seeds = [rng.getrandbits(63) for rng in rngs]
        pivot = self.forward.generate(texts, forward_seeds)
        return [text.strip() for text in self.backward.generate(pivot, backward_seeds)]


def clean_answer(answer: str) -> str:
    """The first non-empty line, without a label the model echoed or wrapping quotes."""
    line = next((line.strip() for line in answer.splitlines() if line.strip()), "")
    for prefix in _ANSWER_PREFIXES:
        if line.casefold().startswith(prefix):
            line = line[len(prefix) :].strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'":
        line = line[1:-1].strip()
    return line


def _require_available(augmenter) -> None:
    reason = augmenter.unavailable()
    if reason is not None:
        raise RuntimeError(f"{augmenter.name} is unavailable: {reason}")
