"""What a dataset's split setting (``split_by``) promises about its rows, checked and described.

``personalab.data.splits`` assigns splits; this module checks, once rows are read, that the
rows keep the promise of the setting that ``dataset.yaml`` states (explicit ``split`` fields
and item ids may break it), and says in words what the setting means for this dataset:

- ``row``: every persona has train rows (a persona without them cannot be personalized);
- ``item``: an input text is in one split for every persona (no test input seen in training);
- ``persona``: all rows of a persona are in one split; personas without train rows are the
  point (cold start), so they get a note, not an error.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from personalab.data.schema import SPLITS, Dataset, Example
from personalab.errors import Problem

Numbered = list[tuple[int, Any]]  # records with the 1-based line they came from

# The unit that must sit in one split, per setting; "row" has none beyond validate's own rule.
_UNIT_OF = {
    "item": lambda e: e.input,  # the promise is about input texts, whatever the item ids say
    "persona": lambda e: e.persona_id,
}


def split_setting_problems(
    split_by: str, personas_file: str, examples_file: str, personas: Numbered, examples: Numbered
) -> list[Problem]:
    """Rows that break ``split_by``'s promise, and personas or datasets left without train rows
    where the setting does not allow it."""
    problems = _units_in_two_splits(split_by, examples_file, examples)
    with_train = {e.persona_id for _, e in examples if e.split == "train"}
    if split_by != "persona":
        problems += _personas_without_train_rows(personas_file, personas, with_train)
    elif examples and not with_train:
        message = ("no train rows at all: split_by persona put every persona in val or test "
                   "(too few personas for the split fractions?)")
        problems.append(Problem(examples_file, None, message))
    return problems


def _units_in_two_splits(split_by: str, file: str, examples: Numbered) -> list[Problem]:
    """One problem per unit (input, persona) found in a second split, at its first such row."""
    unit_of = _UNIT_OF.get(split_by)
    if unit_of is None:
        return []
    first: dict[str, tuple[str, int]] = {}
    reported: set[str] = set()
    problems = []
    for line, example in examples:
        unit = unit_of(example)
        split, seen_at = first.setdefault(unit, (example.split, line))
        if split != example.split and unit not in reported:
            reported.add(unit)
            problems.append(Problem(file, line, _two_splits_message(split_by, example, split,
                                                                    seen_at)))
    return problems


def _two_splits_message(split_by: str, example: Example, split: str, seen_at: int) -> str:
    if split_by == "item":
        return (f"this input is in split '{example.split}' here but in split '{split}' at line "
                f"{seen_at}: with split_by item an input is in one split for every persona "
                "(give rows of one input the same example_id, or no split field)")
    return (f"persona '{example.persona_id}' has rows in split '{example.split}' here and in "
            f"split '{split}' at line {seen_at}: with split_by persona all rows of a persona "
            "are in one split")


def _personas_without_train_rows(
    file: str, personas: Numbered, with_train: set[str]
) -> list[Problem]:
    reported: set[str] = set()
    problems = []
    for line, persona in personas:
        pid = persona.persona_id
        if pid not in with_train and pid not in reported:
            reported.add(pid)
            problems.append(Problem(file, line, f"persona '{pid}' has no train rows"))
    return problems


def split_notes(dataset: Dataset) -> list[str]:
    """What the split setting means for this dataset, in words (nothing for ``row``)."""
    if dataset.split_by == "item":
        units = {e.input: e.split for e in dataset.examples}
        return [f"split_by item: {len(units)} distinct inputs, each in one split for every "
                f"persona ({_count_text(Counter(units.values()))} inputs)"]
    if dataset.split_by == "persona":
        units = {e.persona_id: e.split for e in dataset.examples}
        without_train = sum(1 for pid in dataset.personas if units.get(pid) != "train")
        return [f"split_by persona: {without_train} of {len(dataset.personas)} personas have no "
                "train rows (cold start, by design: they are scored as new personas) "
                f"({_count_text(Counter(units.values()))} personas)"]
    return []


def _count_text(counts: Counter) -> str:
    return " / ".join(f"{split} {counts.get(split, 0)}" for split in SPLITS)
