"""Import a CSV file with one example per row, given which column means what.

Also home of what every CSV-shaped importer shares (``personalab.data.importers.popquorn``
builds on it): reading rows with their CSV line numbers, checking that the needed columns
exist, building one persona per distinct id, and summarizing what was written.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from personalab.data.io import write_dataset
from personalab.data.load import load_dataset
from personalab.data.schema import DatasetSpec, Example, Persona
from personalab.data.split_checks import split_notes
from personalab.data.splits import DEFAULT_SPLIT_BY, assign_split, check_split_by, split_key
from personalab.errors import DataError, PersonalabError, Problem

CsvRow = tuple[int, dict[str, str]]  # (1-based line where the record starts, column -> cell)


@dataclass(frozen=True)
class CsvMapping:
    """Which CSV column holds what; only the persona, input and output columns are required."""

    persona_col: str
    input_col: str
    output_col: str
    split_col: str | None = None  # empty cells get the hash split
    id_col: str | None = None  # becomes ``example_id``, the key of the hash split (the item
    # id under split_by item: rows of one input must share it)
    profile_col: str | None = None  # profile text; else rendered from the attributes
    attribute_cols: tuple[str, ...] = ()  # persona attributes, constant per persona

    def columns(self) -> list[str]:
        optional = [self.split_col, self.id_col, self.profile_col, *self.attribute_cols]
        named = [self.persona_col, self.input_col, self.output_col]
        return named + [c for c in optional if c]


@dataclass(frozen=True)
class ImportSummary:
    """What an importer wrote, counted from the validated result."""

    name: str
    out_dir: str
    n_personas: int
    n_examples: int
    split_counts: dict[str, int]
    label_counts: dict[str, int] = field(default_factory=dict)
    split_by: str = DEFAULT_SPLIT_BY
    notes: tuple[str, ...] = ()  # what the split setting means here (personalab.data.split_checks)


def read_csv_rows(csv_path: str | os.PathLike, required: Sequence[str]) -> list[CsvRow]:
    """All data rows of a CSV file with their line numbers; raises if a column is missing."""
    path = Path(csv_path)
    if not path.is_file():
        raise PersonalabError(f"{path}: CSV file not found")
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            _check_columns(path, reader.fieldnames or [], required)
            rows = [(_start_line(reader.line_num, row), row) for row in reader]
    except UnicodeDecodeError as error:
        raise PersonalabError(f"{path}: not UTF-8 text ({error.reason})") from None
    except csv.Error as error:
        raise PersonalabError(f"{path}:{reader.line_num}: invalid CSV: {error}") from None
    return rows


def _start_line(end_line: int, row: dict) -> int:
    """The line a record starts on: the reader counts to its end, and a quoted cell may hold
    line breaks (blank lines between records are skipped, so counting records would drift)."""
    breaks = sum(value.count("\n") for value in row.values() if isinstance(value, str))
    return end_line - breaks


def _check_columns(path: Path, header: Sequence[str], required: Sequence[str]) -> None:
    missing = [column for column in dict.fromkeys(required) if column not in header]
    if missing:
        noun = "column" if len(missing) == 1 else "columns"
        raise PersonalabError(
            f"{path}: missing {noun} {', '.join(map(repr, missing))}; "
            f"available columns: {', '.join(map(repr, header)) or '(none: is the file empty?)'}"
        )


def build_personas(
    csv_path: str | os.PathLike, rows: Iterable[CsvRow], mapping: CsvMapping
) -> dict[str, Persona]:
    """One persona per distinct id, in order of first appearance.

    A persona's profile and attributes must be the same on all its rows: a conflict means the
    mapping is wrong (or the data is), so it is an error naming both lines.
    """
    personas: dict[str, Persona] = {}
    first_line: dict[str, int] = {}
    problems = []
    for line, row in rows:
        persona = _persona_of_row(row, mapping)
        known = personas.setdefault(persona.persona_id, persona)
        first_line.setdefault(persona.persona_id, line)
        if known != persona:
            message = (
                f"persona '{persona.persona_id}' has a different profile or attributes than "
                f"at line {first_line[persona.persona_id]}"
            )
            problems.append(Problem(str(csv_path), line, message))
    if problems:
        raise DataError(problems)
    return personas


def _persona_of_row(row: dict[str, str], mapping: CsvMapping) -> Persona:
    attributes = {column: row[column] for column in mapping.attribute_cols}
    profile = row[mapping.profile_col] if mapping.profile_col else ""
    # An empty profile is rendered from the attributes when the dataset is loaded.
    return Persona(row[mapping.persona_col], profile, attributes)


def _example_of_row(
    row: dict[str, str], mapping: CsvMapping, split_seed: int, split_by: str
) -> Example:
    persona_id, input_text = row[mapping.persona_col], row[mapping.input_col]
    example_id = (row[mapping.id_col] or None) if mapping.id_col else None
    split = (row[mapping.split_col] or "").strip() if mapping.split_col else ""
    if not split:  # written out explicitly, so the folder shows every row's split
        key = split_key(example_id, input_text)
        split = assign_split(persona_id, key, seed=split_seed, split_by=split_by)
    return Example(persona_id, input_text, row[mapping.output_col], split, None, example_id)


def summarize(out_dir: str | os.PathLike) -> ImportSummary:
    """Load what was written (so an importer never leaves an invalid dataset unnoticed)."""
    dataset = load_dataset(out_dir)
    labels = Counter(e.output for e in dataset.examples)
    return ImportSummary(
        name=dataset.spec.name,
        out_dir=str(out_dir),
        n_personas=len(dataset.personas),
        n_examples=len(dataset.examples),
        split_counts=dataset.split_counts(),
        label_counts=dict(sorted(labels.items())) if dataset.spec.choices else {},
        split_by=dataset.split_by,
        notes=tuple(split_notes(dataset)),
    )


def import_csv(
    csv_path: str | os.PathLike,
    mapping: CsvMapping,
    out_dir: str | os.PathLike,
    *,
    task: str = "classification",
    choices: Sequence[str] | None = None,
    name: str | None = None,
    split_seed: int = 0,
    split_by: str = DEFAULT_SPLIT_BY,
) -> ImportSummary:
    """Turn a CSV file into a dataset folder and validate it.

    ``choices`` defaults, for classification, to the sorted distinct outputs. ``name``
    defaults to the CSV file's stem. Rows keep their CSV order. ``split_by`` is the split
    setting of rows without a split (``personalab.data.splits``); it is recorded in
    ``dataset.yaml`` unless it is the default ``row``.
    """
    check_split_by(split_by)  # before reading: a typo should not cost a pass over a big file
    rows = read_csv_rows(csv_path, mapping.columns())
    personas = build_personas(csv_path, rows, mapping)
    examples = [_example_of_row(row, mapping, split_seed, split_by) for _, row in rows]
    if task == "classification" and choices is None:
        choices = sorted({e.output for e in examples if e.output})
    spec = DatasetSpec(
        name=name or Path(csv_path).stem,
        task=task,  # type: ignore[arg-type]  # validated when the result is loaded
        choices=tuple(choices) if choices is not None else None,
        split_seed=split_seed,
        split_by=split_by,
    )
    write_dataset(out_dir, spec, personas, examples)
    return summarize(out_dir)
