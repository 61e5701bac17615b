"""Every rule a dataset folder must satisfy, checked at once, each problem with file and line.

``validate_dataset`` reads the three files (formats are ``personalab.data.io``'s business),
turns rows into ``Persona`` / ``Example`` records, renders missing profiles, assigns missing
splits by the hash rule under the dataset's split setting (``split_by``), and then checks the
rules that span rows (the split setting's own are in ``personalab.data.split_checks``). It
never stops at the first problem, so that a user fixes a file in one pass instead of one
error per run.
"""

from __future__ import annotations

import os
import string
from collections import Counter
from dataclasses import fields
from functools import partial
from pathlib import Path
from typing import Any

from personalab.data.io import (
    DATASET_FILES,
    EXAMPLES_FILE,
    PERSONAS_FILE,
    SPEC_FILE,
    json_type_name,
    read_jsonl,
)
from personalab.data.schema import SPLITS, Dataset, DatasetSpec, Example, Persona
from personalab.data.split_checks import split_setting_problems
from personalab.data.splits import DEFAULT_SPLIT_BY, assign_split, split_by_message, split_key
from personalab.data.yaml_reader import read_yaml_mapping, unknown_key_hint
from personalab.errors import Problem

TASKS = ("classification", "generation")
SPEC_KEYS = tuple(f.name for f in fields(DatasetSpec))

Numbered = list[tuple[int, Any]]  # records with the 1-based line they came from


def validate_dataset(directory: str | os.PathLike) -> tuple[Dataset | None, list[Problem]]:
    """Check a dataset folder. Returns the dataset and no problems, or None and all of them."""
    root = Path(directory)
    if not root.is_dir():
        return None, [Problem(str(root), None, "dataset folder not found")]
    problems = [
        Problem(str(root / name), None, "file not found")
        for name in DATASET_FILES
        if not (root / name).is_file()
    ]
    spec = read_spec(root, problems) if (root / SPEC_FILE).is_file() else None
    template = spec.profile_template if spec else None
    # Rows without a split get one by the rule dataset.yaml states (the default when it is bad:
    # that problem is reported already, and the rows are still checked).
    assign = partial(assign_split, seed=spec.split_seed if spec else 0,
                     split_by=spec.split_by if spec else DEFAULT_SPLIT_BY)
    personas = _read_rows(root / PERSONAS_FILE, problems, _persona_from_row, template)
    examples = _read_rows(root / EXAMPLES_FILE, problems, _example_from_row, assign)
    if personas is not None and examples is not None:
        problems += _check_across_rows(root, spec, personas, examples)
    if problems or spec is None:
        return None, sorted(problems, key=_problem_order)
    persona_map = {p.persona_id: p for _, p in personas}
    return Dataset(spec, persona_map, [e for _, e in examples], root=str(root)), []


def _problem_order(problem: Problem) -> tuple[int, int]:
    name = Path(problem.file).name
    rank = DATASET_FILES.index(name) if name in DATASET_FILES else -1
    return rank, problem.line or 0


# --- dataset.yaml ----------------------------------------------------------------------------


def read_spec(root: Path, problems: list[Problem]) -> DatasetSpec | None:
    """The folder's dataset.yaml as a ``DatasetSpec``; None (and ``problems``) when it is wrong."""
    path = root / SPEC_FILE
    raw, key_lines, found = read_yaml_mapping(path, SPEC_FILE, " (name, task, choices, ...)")
    problems += found
    if raw is None:
        return None
    messages = _spec_messages(raw)
    problems += [Problem(str(path), key_lines.get(key), text) for key, text in messages]
    if messages:
        return None
    return DatasetSpec(
        name=raw.get("name", root.resolve().name),  # the folder's name unless one is given
        task=raw.get("task", "classification"),
        choices=tuple(raw["choices"]) if raw.get("choices") is not None else None,
        profile_template=raw.get("profile_template"),
        split_seed=raw.get("split_seed", 0),
        split_by=raw.get("split_by", DEFAULT_SPLIT_BY),  # absent: the rule before the key existed
    )


def _spec_messages(raw: dict) -> list[tuple[str, str]]:
    """(key, reason) for everything wrong in the dataset.yaml mapping."""
    messages = [
        (key, f"unknown key '{key}'{unknown_key_hint(str(key), SPEC_KEYS)}")
        for key in raw
        if key not in SPEC_KEYS
    ]
    name = raw.get("name", "")
    if not isinstance(name, str) or ("name" in raw and not name.strip()):
        messages.append(("name", "name must be a non-empty string"))
    task = raw.get("task", "classification")
    if task not in TASKS:
        messages.append(("task", f"task must be one of {', '.join(TASKS)}, got {task!r}"))
    if raw.get("choices") is not None:
        messages += [("choices", m) for m in _choices_messages(raw["choices"])]
        if task == "generation":
            messages.append(("choices", "choices given but a generation task has no label set"))
    messages += [("profile_template", m) for m in _template_messages(raw.get("profile_template"))]
    seed = raw.get("split_seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        messages.append(("split_seed", f"split_seed must be an integer, got {seed!r}"))
    split_by = split_by_message(raw.get("split_by", DEFAULT_SPLIT_BY))
    if split_by:
        messages.append(("split_by", split_by))
    return messages


def _choices_messages(choices: Any) -> list[str]:
    if not isinstance(choices, list):
        return [f"choices must be a list of strings, got {json_type_name(choices)}"]
    if not choices:
        return ["choices is empty"]
    if not all(isinstance(c, str) for c in choices):
        return ["choices must all be strings (quote numbers: '1' rather than 1)"]
    messages = ["choices contain an empty label"] if any(not c.strip() for c in choices) else []
    duplicates = sorted(c for c, n in Counter(choices).items() if n > 1)
    if duplicates:
        messages.append(f"duplicate choices: {', '.join(map(repr, duplicates))}")
    return messages


def _template_messages(template: Any) -> list[str]:
    if template is None:
        return []
    if not isinstance(template, str):
        return [f"profile_template must be a string, got {json_type_name(template)}"]
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        return [f"profile_template is not a valid format string: {error}"]
    if any(not name or name.isdigit() for name in names):
        return ["profile_template must name attributes, e.g. '{occupation}', not '{}' or '{0}'"]
    return []


# --- personas.jsonl and examples.jsonl rows ----------------------------------------------------


def _read_rows(path: Path, problems: list[Problem], convert, context) -> Numbered | None:
    """Records of one JSONL file, or None when the file is missing (already reported)."""
    if not path.is_file():
        return None
    rows, found = read_jsonl(path)
    problems += found
    records = []
    for line, row in rows:
        record, messages = convert(row, context)
        problems += [Problem(str(path), line, message) for message in messages]
        if record is not None:
            records.append((line, record))
    return records


def _text_field(
    row: dict, key: str, messages: list[str], *, required: bool, allow_int: bool = False
) -> str | None:
    """A string field of a row; problems go to ``messages``. Ids may be JSON integers."""
    value = row.get(key)
    if value is None:
        if required:
            messages.append(f"missing required field '{key}'")
        return None
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # ids exported as numbers are common; they mean the same string
    if not isinstance(value, str):
        messages.append(f"field '{key}' must be a string, got {json_type_name(value)}")
        return None
    if required and not value.strip():
        messages.append(f"field '{key}' is empty")
        return None
    return value


def render_profile(attributes: dict, template: str | None) -> str:
    """A profile from attributes: ``template.format(**attributes)``, or "key: value, ..."."""
    if template is None:
        return ", ".join(f"{key}: {value}" for key, value in attributes.items())
    return template.format(**attributes)


def _persona_from_row(row: dict, template: str | None) -> tuple[Persona | None, list[str]]:
    """The persona of a row. With a readable id it is returned even when something else is
    wrong, so that its examples are not also reported as having an unknown persona."""
    messages: list[str] = []
    persona_id = _text_field(row, "persona_id", messages, required=True, allow_int=True)
    profile = _text_field(row, "profile", messages, required=False) or ""
    attributes = row.get("attributes") or {}
    if not isinstance(attributes, dict):
        messages.append(f"field 'attributes' must be an object, got {json_type_name(attributes)}")
        attributes = {}
    if not profile.strip() and not messages:
        try:
            profile = render_profile(attributes, template)
        except KeyError as error:
            messages.append(f"profile_template names attribute {error} that this persona lacks")
        except (AttributeError, IndexError, TypeError, ValueError) as error:
            messages.append(f"cannot render profile_template for this persona: {error}")
    return (Persona(persona_id, profile, attributes) if persona_id else None), messages


def _example_from_row(row: dict, assign) -> tuple[Example | None, list[str]]:
    """The example of a row; ``assign(persona_id, key)`` gives the split of a row without one."""
    messages: list[str] = []
    persona_id = _text_field(row, "persona_id", messages, required=True, allow_int=True)
    input_text = _text_field(row, "input", messages, required=True)
    output = _text_field(row, "output", messages, required=True)
    example_id = _text_field(row, "example_id", messages, required=False, allow_int=True)
    split = _text_field(row, "split", messages, required=False)
    if split is not None and split not in SPLITS:
        messages.append(f"split {split!r} is not one of {', '.join(SPLITS)}")
    choices = row.get("choices")
    if choices is not None:
        messages += [f"row {m}" for m in _choices_messages(choices)]
    if messages:
        return None, messages
    if split is None:
        split = assign(persona_id, split_key(example_id, input_text))
    row_choices = tuple(choices) if choices is not None else None
    return Example(persona_id, input_text, output, split, row_choices, example_id), []


# --- rules across rows -----------------------------------------------------------------------


def _check_across_rows(
    root: Path, spec: DatasetSpec | None, personas: Numbered, examples: Numbered
) -> list[Problem]:
    personas_file, examples_file = str(root / PERSONAS_FILE), str(root / EXAMPLES_FILE)
    problems = _duplicate_personas(personas_file, personas)
    known = {persona.persona_id for _, persona in personas}
    for line, example in examples:
        if example.persona_id not in known:
            message = f"unknown persona_id '{example.persona_id}' (not in {PERSONAS_FILE})"
            problems.append(Problem(examples_file, line, message))
    if spec is not None and spec.task == "classification":
        problems += _label_problems(root, spec, examples)
    problems += _duplicate_and_leaking_rows(examples_file, examples)
    split_by = spec.split_by if spec is not None else DEFAULT_SPLIT_BY
    problems += split_setting_problems(split_by, personas_file, examples_file, personas, examples)
    if not personas:
        problems.append(Problem(personas_file, None, "no personas (empty, or no usable row)"))
    if not examples:
        problems.append(Problem(examples_file, None, "no examples (empty, or no usable row)"))
    return problems


def _duplicate_personas(file: str, personas: Numbered) -> list[Problem]:
    first_line: dict[str, int] = {}
    problems = []
    for line, persona in personas:
        pid = persona.persona_id
        if pid in first_line:
            message = f"duplicate persona_id '{pid}' (first at line {first_line[pid]})"
            problems.append(Problem(file, line, message))
        first_line.setdefault(pid, line)
    return problems


def _label_problems(root: Path, spec: DatasetSpec, examples: Numbered) -> list[Problem]:
    """Outputs outside their label set, and rows that have no label set at all."""
    problems, unlabeled = [], []
    for line, example in examples:
        label_set = example.choices or spec.choices
        if label_set is None:
            unlabeled.append(line)
        elif example.output not in label_set:
            message = f"output {example.output!r} is not in the label set {list(label_set)}"
            problems.append(Problem(str(root / EXAMPLES_FILE), line, message))
    if unlabeled:
        message = (
            "a classification task needs a label set: give 'choices' here or on every row "
            f"({len(unlabeled)} rows have none, first at {EXAMPLES_FILE} line {unlabeled[0]})"
        )
        problems.append(Problem(str(root / SPEC_FILE), None, message))
    return problems


def _duplicate_and_leaking_rows(file: str, examples: Numbered) -> list[Problem]:
    """Exact duplicate rows, and one (persona, input) in two splits (test rows seen in train)."""
    first_line: dict[Example, int] = {}
    first_split: dict[tuple[str, str], tuple[str, int]] = {}
    problems = []
    for line, example in examples:
        if example in first_line:
            message = f"duplicate row (same as line {first_line[example]})"
            problems.append(Problem(file, line, message))
            continue
        first_line[example] = line
        pair = (example.persona_id, example.input)
        split, seen_at = first_split.setdefault(pair, (example.split, line))
        if split != example.split:
            message = (
                f"persona '{example.persona_id}' has this input in split '{example.split}' "
                f"and in split '{split}' (line {seen_at}): a row may be in one split only"
            )
            problems.append(Problem(file, line, message))
    return problems
