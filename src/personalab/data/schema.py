"""The in-memory shape of a persona dataset: personas, examples, and the dataset spec.

A dataset on disk is a folder with ``dataset.yaml``, ``personas.jsonl`` and
``examples.jsonl``; ``personalab.data.load`` turns it into a validated ``Dataset``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SPLITS = ("train", "val", "test")
Task = Literal["classification", "generation"]


@dataclass(frozen=True)
class Persona:
    persona_id: str
    profile: str  # rendered from attributes when the file gives none
    attributes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Example:
    persona_id: str
    input: str
    output: str
    split: str  # always one of SPLITS after loading (assigned by the hash rule if absent)
    choices: tuple[str, ...] | None = None  # per-row label set; None means the dataset's
    example_id: str | None = None  # stable key for the split hash (e.g. POPQUORN instance_id)


@dataclass(frozen=True)
class DatasetSpec:
    """What ``dataset.yaml`` says."""

    name: str
    task: Task = "classification"
    choices: tuple[str, ...] | None = None
    # str.format template over a persona's attributes, e.g. "A {age} year old {occupation}";
    # None renders "key: value, key: value".
    profile_template: str | None = None
    split_seed: int = 0
    # Which unit the split rule hashes: "row", "item" or "persona" (personalab.data.splits).
    # A dataset.yaml without the key means "row", so folders written before it existed load
    # unchanged.
    split_by: str = "row"


@dataclass
class Dataset:
    spec: DatasetSpec
    personas: dict[str, Persona]
    examples: list[Example]
    root: str | None = None

    def split(self, name: str) -> list[Example]:
        return [e for e in self.examples if e.split == name]

    def choices_for(self, example: Example) -> tuple[str, ...]:
        return example.choices or self.spec.choices or ()

    @property
    def split_by(self) -> str:
        """The split setting the rows are in ("row", "item" or "persona"), for reports."""
        return self.spec.split_by

    @property
    def profiles(self) -> dict[str, str]:
        return {pid: p.profile for pid, p in self.personas.items()}

    def split_counts(self) -> dict[str, int]:
        return {s: sum(1 for e in self.examples if e.split == s) for s in SPLITS}
