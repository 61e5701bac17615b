"""The augmenter contract, per-row random streams, and the word tokens the text edits work on.

An augmenter turns a batch of texts into new texts, each with its own ``random.Random``. It
never sees the dataset: ``personalab.augment.dataset`` decides which rows it gets, derives each
row's stream from (seed, augmenter, persona, row key, copy) and deduplicates what comes back.
That keeps every augmenter deterministic per row, whatever the order or the other rows are.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable


@runtime_checkable
class Augmenter(Protocol):
    """What ``augment_dataset`` needs from an augmenter."""

    name: str  # unique within one call; goes into the augmented rows' example_id

    def unavailable(self) -> str | None:
        """``None`` when the augmenter can run, else why it is skipped (missing model or data).

        May load what the augmenter needs; raises ``PersonalabError`` only for an explicit
        setting that is wrong (a configured path that does not exist), never for a default
        resource that is simply absent."""

    def augment(self, texts: Sequence[str], rngs: Sequence[random.Random]) -> list[str]:
        """One new text per input text; ``rngs[i]`` is the only randomness ``texts[i]`` may use."""


def row_seed(*parts: object) -> int:
    """A 64-bit seed from the parts' text. Python's ``hash`` of a str is salted per process,
    so a digest is used: the same parts give the same seed in every run and on every machine."""
    text = "\x1f".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def row_rng(*parts: object) -> random.Random:
    return random.Random(row_seed(*parts))


def edit_count(rate: float, n_candidates: int) -> int:
    """How many words an edit at ``rate`` touches: at least one (an edit that changes nothing
    only makes a duplicate), at most every candidate."""
    if n_candidates <= 0:
        return 0
    return min(n_candidates, max(1, round(rate * n_candidates)))


def check_rate(name: str, rate: float) -> None:
    from personalab.errors import PersonalabError

    if not 0.0 < rate <= 1.0:
        raise PersonalabError(f"{name}: rate must be in (0, 1], got {rate}")


# --- word tokens ---------------------------------------------------------------------------

# A word keeps its inner apostrophes and hyphens ("don't", "twelve-hour"); anything else that
# is not a space is a token of its own, so punctuation stays where it was when words move.
_TOKEN = re.compile(r"\w+(?:['’-]\w+)*|\S")


@dataclass(frozen=True)
class Token:
    text: str
    space_before: bool  # whether whitespace preceded it: detokenizing restores the spacing

    @property
    def is_word(self) -> bool:
        return self.text[0].isalnum() or self.text[0] == "_"


def tokenize(text: str) -> list[Token]:
    return [
        Token(match.group(), match.start() > 0 and text[match.start() - 1].isspace())
        for match in _TOKEN.finditer(text)
    ]


def detokenize(tokens: Sequence[Token]) -> str:
    """The text back, with single spaces where the original had whitespace."""
    return "".join(
        (" " if token.space_before and i else "") + token.text for i, token in enumerate(tokens)
    )


def word_positions(tokens: Sequence[Token]) -> list[int]:
    return [i for i, token in enumerate(tokens) if token.is_word]


def match_case(template: str, word: str) -> str:
    """``word`` cased like ``template``: Title, UPPER or as given."""
    if template.isupper() and len(template) > 1:
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word
