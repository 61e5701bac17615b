"""Random swap and random deletion of words: two of EDA's four operations (Wei & Zou 2019,
"EDA: Easy Data Augmentation Techniques for Boosting Performance on Text Classification").

Both work on word tokens only, so punctuation stays in place (a sentence still ends with its
full stop after its last word moved). ``rate`` is EDA's alpha: the share of the words
touched, at least one, so that every output differs from its input where it can.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from personalab.augment.base import (
    Token,
    check_rate,
    detokenize,
    edit_count,
    tokenize,
    word_positions,
)


@dataclass
class SwapAugmenter:
    """Swap ``rate × words`` random pairs of words (at least one pair)."""

    rate: float = 0.1
    name: str = "swap"

    def __post_init__(self) -> None:
        check_rate(self.name, self.rate)

    def unavailable(self) -> str | None:
        return None

    def augment(self, texts: Sequence[str], rngs: Sequence[random.Random]) -> list[str]:
        return [self.swap(text, rng) for text, rng in zip(texts, rngs)]

    def swap(self, text: str, rng: random.Random) -> str:
        tokens = tokenize(text)
        words = word_positions(tokens)
        if len(words) < 2:
            return text
        for _ in range(edit_count(self.rate, len(words))):
            i = rng.choice(words)
            # Swapping two equal words ("a" ... "a") would change nothing.
            partners = [j for j in words if tokens[j].text != tokens[i].text]
            if not partners:
                continue
            j = rng.choice(partners)
            # Swap the words, not the spacing: each position keeps its own whitespace flag.
            tokens[i], tokens[j] = (
                Token(tokens[j].text, tokens[i].space_before),
                Token(tokens[i].text, tokens[j].space_before),
            )
        return detokenize(tokens)


@dataclass
class DeleteAugmenter:
    """Delete ``rate × words`` random words (at least one, never all of them)."""

    rate: float = 0.1
    name: str = "delete"

    def __post_init__(self) -> None:
        check_rate(self.name, self.rate)

    def unavailable(self) -> str | None:
        return None

    def augment(self, texts: Sequence[str], rngs: Sequence[random.Random]) -> list[str]:
        return [self.delete(text, rng) for text, rng in zip(texts, rngs)]

    def delete(self, text: str, rng: random.Random) -> str:
        tokens = tokenize(text)
        words = word_positions(tokens)
        if len(words) < 2:
            return text  # deleting the only word would leave no input
        n = min(edit_count(self.rate, len(words)), len(words) - 1)
        doomed = set(rng.sample(words, n))
        kept = [token for i, token in enumerate(tokens) if i not in doomed]
        if kept and tokens[0] is not kept[0]:
            kept[0] = Token(kept[0].text, False)  # a new first token gets no leading space
        return detokenize(kept)
