"""Import POPQUORN's email rewriting as a generation dataset (BENCHMARK.md section 6).

Annotators rewrote a colleague's draft email to make it more polite. Persona = annotator
(``user_id``), profile = their non-empty demographic columns, example = one rewrite: input the
``original email``, output the ``revised email``, ``example_id`` the ``instance_id`` (the source
email, shared by the annotators who rewrote it, so ``split_by="item"`` holds whole emails out).
Rows without a user id (they have no demographics either) cannot belong to a persona: they are
dropped and counted. The file writes user ids as floats (``0.0``); a persona id is the integer
(``0``), and the split hashes ``f"{persona_id}:{instance_id}"`` by the rule of section 1.
"""

from __future__ import annotations

import os
from dataclasses import replace

from personalab.data.importers.csv_import import CsvRow, ImportSummary, read_csv_rows, summarize
from personalab.data.io import write_dataset
from personalab.data.schema import DatasetSpec, Example, Persona
from personalab.data.splits import DEFAULT_SPLIT_BY, assign_split, check_split_by
from personalab.data.validate import render_profile
from personalab.errors import DataError, Problem

DEMOGRAPHICS = ("gender", "race", "age", "occupation", "education")
INPUT_COL, OUTPUT_COL = "original email", "revised email"
COLUMNS = ("instance_id", "user_id", INPUT_COL, OUTPUT_COL, *DEMOGRAPHICS)
NAME = "popquorn-email-rewriting"


def import_popquorn_rewrite(
    csv_path: str | os.PathLike, out_dir: str | os.PathLike, split_by: str = DEFAULT_SPLIT_BY
) -> ImportSummary:
    """Write the email-rewriting dataset folder and validate it; the summary's notes say how
    many rows had no user id."""
    check_split_by(split_by)
    rows = read_csv_rows(csv_path, COLUMNS)
    kept = [(line, row) for line, row in rows if row["user_id"].strip()]
    personas, examples = _personas(csv_path, kept), _examples(kept, split_by)
    write_dataset(out_dir, DatasetSpec(name=NAME, task="generation", split_by=split_by), personas, examples)
    summary = summarize(out_dir)
    dropped = len(rows) - len(kept)
    note = f"{dropped} row{'s' if dropped != 1 else ''} without a user_id dropped (no persona to give them to)"
    return replace(summary, notes=(*summary.notes, note))


def persona_id(cell: str) -> str:
    """``0.0`` -> ``0``: the annotator's id as the integer the file writes as a float."""
    text = cell.strip()
    try:
        value = float(text)
    except ValueError:
        return text
    return str(int(value)) if value.is_integer() else text


def _personas(csv_path: str | os.PathLike, rows: list[CsvRow]) -> dict[str, Persona]:
    """One persona per annotator; its demographics must agree on all its rows."""
    personas: dict[str, Persona] = {}
    problems = []
    for line, row in rows:
        attributes = {column: row[column].strip() for column in DEMOGRAPHICS if row[column].strip()}
        persona = Persona(persona_id(row["user_id"]), render_profile(attributes, None), attributes)
        known = personas.setdefault(persona.persona_id, persona)
        if known != persona:
            problems.append(Problem(str(csv_path), line, f"annotator {persona.persona_id} has other demographics "
                                                         "here than on an earlier row"))
    if problems:
        raise DataError(problems)
    return personas


def _examples(rows: list[CsvRow], split_by: str) -> list[Example]:
    examples = []
    for _, row in rows:
        pid, instance = persona_id(row["user_id"]), row["instance_id"].strip()
        examples.append(Example(pid, row[INPUT_COL], row[OUTPUT_COL],
                                assign_split(pid, instance, split_by=split_by), example_id=instance))
    return examples
