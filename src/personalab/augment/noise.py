"""Context noise: small surface perturbations that keep a text's meaning.

What it does to one text (all choices from the row's own random stream):

- typos in ``rate × eligible words`` words (at least one): a word is eligible when it is
  alphabetic and at least 4 letters long; one edit per word, inside the word (its first and
  last letters stay, which keeps it readable): swap two adjacent letters, drop a letter,
  double a letter, or hit a neighbouring key on a QWERTY keyboard;
- with probability ``punctuation_prob``: drop the closing punctuation mark (or add a full
  stop where there is none);
- with probability ``casing_prob``: change the case of the first letter of the text.

The typos are what make a noisy copy a new training row: casing and spacing alone would be
removed again by the deduplication, which compares case-folded, whitespace-collapsed inputs.
Real users type like this, so a model trained on it is less thrown by it; the meaning, and so
the label, stays the same.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

from personalab.augment.base import Token, check_rate, detokenize, edit_count, tokenize

MIN_TYPO_LENGTH = 4
CLOSING_PUNCTUATION = ".!?"
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
# Left and right neighbours on the same keyboard row: the commonest slip of a finger.
QWERTY_NEIGHBOURS = {
    key: row[max(0, i - 1) : i] + row[i + 1 : i + 2]
    for row in _KEYBOARD_ROWS
    for i, key in enumerate(row)
}


@dataclass
class ContextNoiseAugmenter:
    rate: float = 0.15
    punctuation_prob: float = 0.3
    casing_prob: float = 0.2
    name: str = "context_noise"

    def __post_init__(self) -> None:
        check_rate(self.name, self.rate)

    def unavailable(self) -> str | None:
        return None

    def augment(self, texts: Sequence[str], rngs: Sequence[random.Random]) -> list[str]:
        return [self.perturb(text, rng) for text, rng in zip(texts, rngs)]

    def perturb(self, text: str, rng: random.Random) -> str:
        tokens = tokenize(text)
        eligible = [i for i, t in enumerate(tokens) if _typo_eligible(t.text)]
        for i in rng.sample(eligible, edit_count(self.rate, len(eligible))):
            tokens[i] = Token(typo(tokens[i].text, rng), tokens[i].space_before)
        if tokens and rng.random() < self.punctuation_prob:
            tokens = _punctuation_noise(tokens)
        noisy = detokenize(tokens)
        if noisy and rng.random() < self.casing_prob:
            noisy = noisy[0].swapcase() + noisy[1:]
        return noisy


def _typo_eligible(word: str) -> bool:
    return len(word) >= MIN_TYPO_LENGTH and word.isalpha()


def typo(word: str, rng: random.Random) -> str:
    """One edit strictly inside ``word`` (len >= 4): swap, drop, double or neighbour key."""
    i = rng.randrange(1, len(word) - 2)  # edits touch letters i and i + 1, never the last
    kind = rng.choice(("swap", "drop", "double", "neighbour"))
    if kind == "swap" and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    neighbours = QWERTY_NEIGHBOURS.get(word[i].lower(), "")
    if kind == "neighbour" and neighbours:
        key = rng.choice(neighbours)
        return word[:i] + (key.upper() if word[i].isupper() else key) + word[i + 1 :]
    return word[:i] + word[i] + word[i:]  # double (also the fallback: it always changes)


def _punctuation_noise(tokens: list[Token]) -> list[Token]:
    if tokens[-1].text in CLOSING_PUNCTUATION:
        return tokens[:-1]
    return tokens + [Token(".", False)]
