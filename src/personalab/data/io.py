"""Reading and writing dataset files on disk: the JSONL and YAML formats.

This module owns bytes <-> rows: it writes every file through ``personalab.data.atomic`` (no
reader ever sees half a file) and reads ``*.jsonl`` into plain Python objects with their
1-based line numbers, reporting format problems (bad UTF-8, bad JSON) as ``Problem``s.
``dataset.yaml`` is read like every other YAML file, by ``personalab.data.yaml_reader``. What
the rows *mean* is checked in ``personalab.data.validate``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from personalab.data.atomic import atomic_write_jsonl, atomic_write_text
from personalab.data.schema import DatasetSpec, Example, Persona
from personalab.errors import Problem

SPEC_FILE = "dataset.yaml"
PERSONAS_FILE = "personas.jsonl"
EXAMPLES_FILE = "examples.jsonl"
DATASET_FILES = (SPEC_FILE, PERSONAS_FILE, EXAMPLES_FILE)

_UTF8_BOM = b"\xef\xbb\xbf"


# --- writing a dataset -----------------------------------------------------------------------


# Keys left out of dataset.yaml at these values: a folder written with the default setting
# is then byte-for-byte what it was before the key existed.
_SPEC_DEFAULTS_LEFT_OUT = {"split_by": "row"}


def spec_to_dict(spec: DatasetSpec) -> dict[str, Any]:
    """The ``dataset.yaml`` mapping for ``spec``; unset optional keys are left out, and so is
    ``split_by`` when it is the default ``row``."""
    data: dict[str, Any] = {}
    for spec_field in fields(spec):
        value = getattr(spec, spec_field.name)
        if value is None or _SPEC_DEFAULTS_LEFT_OUT.get(spec_field.name) == value:
            continue
        data[spec_field.name] = list(value) if isinstance(value, tuple) else value
    return data


def persona_to_row(persona: Persona) -> dict[str, Any]:
    return {
        "persona_id": persona.persona_id,
        "profile": persona.profile,
        "attributes": dict(persona.attributes),
    }


def example_to_row(example: Example) -> dict[str, Any]:
    row: dict[str, Any] = {}
    if example.example_id is not None:
        row["example_id"] = example.example_id
    row.update(persona_id=example.persona_id, input=example.input, output=example.output)
    row["split"] = example.split
    if example.choices is not None:
        row["choices"] = list(example.choices)
    return row


def write_dataset(
    directory: str | os.PathLike,
    spec: DatasetSpec,
    personas: Iterable[Persona] | Mapping[str, Persona],
    examples: Iterable[Example],
) -> Path:
    """Write ``dataset.yaml``, ``personas.jsonl`` and ``examples.jsonl`` into ``directory``.

    Each file is written atomically; ``dataset.yaml`` goes last so that a folder holding it
    has had both row files written. Returns the folder.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    persona_list = personas.values() if isinstance(personas, Mapping) else personas
    atomic_write_jsonl(root / EXAMPLES_FILE, (example_to_row(e) for e in examples))
    atomic_write_jsonl(root / PERSONAS_FILE, (persona_to_row(p) for p in persona_list))
    spec_text = yaml.safe_dump(spec_to_dict(spec), sort_keys=False, allow_unicode=True)
    atomic_write_text(root / SPEC_FILE, spec_text)
    return root


# --- reading ---------------------------------------------------------------------------------


def read_jsonl(path: str | os.PathLike) -> tuple[list[tuple[int, dict]], list[Problem]]:
    """Every JSON object of a JSONL file with its 1-based line number, plus format problems.

    Blank lines are skipped. A line that is not UTF-8, not JSON, or not an object becomes a
    problem and is left out, so that one bad line does not hide the rest of the file.
    """
    rows: list[tuple[int, dict]] = []
    problems: list[Problem] = []
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        return [], [Problem(str(path), None, f"cannot read the file: {error.strerror}")]
    if data.startswith(_UTF8_BOM):  # editors on Windows add one; it is not content
        data = data[len(_UTF8_BOM):]
    for number, raw in enumerate(data.split(b"\n"), start=1):
        row, message = _parse_json_line(raw)
        if message:
            problems.append(Problem(str(path), number, message))
        elif row is not None:
            rows.append((number, row))
    return rows, problems


def _parse_json_line(raw: bytes) -> tuple[dict | None, str | None]:
    """(object, None) for a good line, (None, None) for a blank one, (None, reason) else."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, f"invalid UTF-8 (byte {error.start + 1} of the line)"
    if not text.strip():
        return None, None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return None, f"invalid JSON: {error.msg} (column {error.colno})"
    if not isinstance(value, dict):
        return None, f"expected a JSON object, got {json_type_name(value)}"
    return value, None


def json_type_name(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages ("a string", "an array", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
