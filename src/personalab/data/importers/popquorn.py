"""Import POPQUORN offensiveness ratings exactly as BENCHMARK.md section 1 prescribes.

Persona = annotator (``user_id``), profile = their demographics, example = one rating of one
Reddit comment, ``example_id`` = ``instance_id`` (so the split is the published hash rule),
label = ``offensive`` / ``not offensive`` (binary) or the rating ``1``..``5`` (5way).
``split_by="item"`` holds out whole comments instead (the hash of ``instance_id`` alone), as
published annotator-modelling work does; ``"persona"`` holds out whole annotators.
"""

from __future__ import annotations

import os
from typing import Literal

from personalab.data.importers.csv_import import (
    CsvMapping,
    CsvRow,
    ImportSummary,
    build_personas,
    read_csv_rows,
    summarize,
)
from personalab.data.io import write_dataset
from personalab.data.schema import DatasetSpec, Example, Persona
from personalab.data.splits import DEFAULT_SPLIT_BY, assign_split, check_split_by
from personalab.data.validate import render_profile
from personalab.errors import DataError, PersonalabError, Problem

PopquornTask = Literal["binary", "5way"]
TASKS: tuple[str, ...] = ("binary", "5way")
DEMOGRAPHICS = ("gender", "race", "age", "occupation", "education")
RATING_COL = "offensiveness"
MAPPING = CsvMapping(
    persona_col="user_id",
    input_col="text",
    output_col=RATING_COL,
    id_col="instance_id",
    attribute_cols=DEMOGRAPHICS,
)
CHOICES = {
    "binary": ("not offensive", "offensive"),
    "5way": ("1", "2", "3", "4", "5"),
}
# Ratings at or above this are "offensive" in the binary task (BENCHMARK.md section 1).
OFFENSIVE_FROM = 2


def import_popquorn(
    csv_path: str | os.PathLike,
    task: PopquornTask,
    out_dir: str | os.PathLike,
    split_by: str = DEFAULT_SPLIT_BY,
) -> ImportSummary:
    """Write the POPQUORN dataset folder for ``task`` ("binary" or "5way") and validate it.

    ``split_by`` is the split setting (``personalab.data.splits``); the default ``row`` is the
    published rule and is not written into ``dataset.yaml``.
    """
    if task not in TASKS:
        raise PersonalabError(f"unknown POPQUORN task {task!r}; choose one of {', '.join(TASKS)}")
    check_split_by(split_by)
    rows = read_csv_rows(csv_path, MAPPING.columns())
    personas = _with_profiles(build_personas(csv_path, rows, MAPPING))
    examples = _examples(csv_path, rows, task, split_by)
    spec = DatasetSpec(
        name=f"popquorn-offensiveness-{task}", choices=CHOICES[task], split_by=split_by
    )
    write_dataset(out_dir, spec, personas, examples)
    return summarize(out_dir)


def _with_profiles(personas: dict[str, Persona]) -> dict[str, Persona]:
    """Profile text = the five demographic columns, in the protocol's order."""
    # The attributes are already in DEMOGRAPHICS order, so the default rendering is that text.
    return {pid: Persona(pid, render_profile(p.attributes, None), p.attributes)
            for pid, p in personas.items()}


def _examples(
    csv_path: str | os.PathLike, rows: list[CsvRow], task: str, split_by: str
) -> list[Example]:
    """One example per rating; every unreadable rating is reported with its CSV line."""
    examples, problems = [], []
    for line, row in rows:
        rating = _parse_rating(row[RATING_COL])
        if rating is None:
            message = f"cannot read rating {row[RATING_COL]!r} in column '{RATING_COL}' (want 1-5)"
            problems.append(Problem(str(csv_path), line, message))
            continue
        persona_id, instance_id = row["user_id"], row["instance_id"]
        examples.append(
            Example(
                persona_id=persona_id,
                input=row["text"],
                output=_label(rating, task),
                # seed 0: with split_by "row" this is the published rule
                split=assign_split(persona_id, instance_id, split_by=split_by),
                example_id=instance_id,
            )
        )
    if problems:
        raise DataError(problems)
    return examples


def _parse_rating(cell: str | None) -> int | None:
    """The rating as an int 1..5 ("3.0" in the file), or None when it is not one."""
    try:
        value = float(cell or "")
    except ValueError:
        return None
    if not value.is_integer() or not 1 <= value <= 5:
        return None
    return int(value)


def _label(rating: int, task: str) -> str:
    if task == "binary":
        return "offensive" if rating >= OFFENSIVE_FROM else "not offensive"
    return str(rating)
