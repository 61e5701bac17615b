"""Fixtures of the augmentation tests: small datasets, a deterministic fake augmenter, and a
tiny WordNet database in the real WNDB file format (lines shaped like WordNet 3.0's)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Sequence

import pytest

from personalab.data.schema import Dataset, DatasetSpec, Example, Persona

# A header like the real files' license text: lines starting with two spaces.
WNDB_HEADER = "  1 This software and database is being provided to you, the LICENSEE, by  \n"
# Part of speech -> synsets in sense order; WordNet 3.0 lists these senses of "happy".
TINY_WORDNET = {
    "adj": [
        ["happy"],
        ["felicitous", "happy"],
        ["glad", "happy"],
        ["happy", "well-chosen"],
        ["galore(ip)", "plentiful"],
        # 11 words: the word count field is hexadecimal ("0b")
        ["big", "large", "huge", "vast", "great", "giant", "grand", "bulky", "hefty", "jumbo",
         "massive"],
    ],
    "noun": [["ice_cream", "frozen_dessert"], ["movie", "film", "picture"]],
    "verb": [["love", "adore"]],
}


def write_wndb(folder: Path, synsets_by_pos: dict[str, list[list[str]]]) -> Path:
    """Write ``data.<pos>`` (byte offsets as the format requires) and ``index.<pos>``."""
    folder.mkdir(parents=True, exist_ok=True)
    for pos, synsets in synsets_by_pos.items():
        data, offsets_of = WNDB_HEADER.encode(), {}
        for words in synsets:
            offset = len(data)
            entries = " ".join(f"{word} 0" for word in words)
            line = f"{offset:08d} 00 {pos[0]} {len(words):02x} {entries} 000 | a gloss  \n"
            data += line.encode()
            for word in words:
                offsets_of.setdefault(word.split("(")[0].casefold(), []).append(offset)
        (folder / f"data.{pos}").write_bytes(data)
        index = WNDB_HEADER + "".join(
            f"{lemma} {pos[0]} {len(offs)} 0 {len(offs)} 0 {' '.join(f'{o:08d}' for o in offs)}  \n"
            for lemma, offs in sorted(offsets_of.items())
        )
        (folder / f"index.{pos}").write_text(index)
    return folder


@pytest.fixture
def tiny_wordnet(tmp_path: Path) -> Path:
    return write_wndb(tmp_path / "wordnet", TINY_WORDNET)


@pytest.fixture
def no_default_wordnet(monkeypatch, tmp_path: Path):
    """No WordNet anywhere: neither the environment variable nor any default location."""
    from personalab.augment import wordnet

    monkeypatch.delenv(wordnet.WORDNET_ENV, raising=False)
    monkeypatch.setattr(wordnet, "DEFAULT_LOCATIONS", (tmp_path / "nowhere",))


def make_dataset(rows: Sequence[tuple[str, str, str, str]], choices=("no", "yes")) -> Dataset:
    """rows: (persona_id, input, output, split)."""
    examples = [Example(p, text, out, split) for p, text, out, split in rows]
    personas = {p: Persona(p, f"Persona {p}.") for p in sorted({row[0] for row in rows})}
    return Dataset(DatasetSpec(name="tiny-augment", choices=choices), personas, examples)


class SuffixAugmenter:
    """Appends a number drawn from the row's stream: deterministic, and unique per row."""

    def __init__(self, name: str = "suffix", available: bool = True):
        self.name = name
        self.available = available
        self.calls = 0

    def unavailable(self) -> str | None:
        return None if self.available else "turned off for the test"

    def augment(self, texts: Sequence[str], rngs: Sequence[random.Random]) -> list[str]:
        self.calls += 1
        return [f"{text} #{rng.randrange(10**9)}" for text, rng in zip(texts, rngs)]


class ConstantAugmenter:
    """Returns the same text for every row (to provoke duplicates)."""

    def __init__(self, text: str, name: str = "constant"):
        self.text, self.name = text, name

    def unavailable(self) -> str | None:
        return None

    def augment(self, texts, rngs) -> list[str]:
        return [self.text for _ in texts]


@pytest.fixture
def dataset_of():
    """``dataset_of([(persona, input, output, split), ...])`` -> a ``Dataset``."""
    return make_dataset


@pytest.fixture
def fakes():
    """The fake augmenter classes: ``fakes.Suffix(...)``, ``fakes.Constant(text)``."""

    class Fakes:
        Suffix = SuffixAugmenter
        Constant = ConstantAugmenter

    return Fakes
