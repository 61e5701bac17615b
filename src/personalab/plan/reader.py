"""Checking plain data read from YAML: expected keys and types, each problem reported with its
key path (``candidates[2].options.k``) and, when known, the line of the file it is on.

A wrong value is recorded as a problem and a default is used to go on, so that one run of the
checks reports everything that is wrong with a file, not only the first thing.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import yaml

from personalab.errors import PersonalabError

_TYPES = {"a string": str, "a mapping": dict, "a list": list}


def key_lines(node: yaml.Node | None, path: str = "") -> dict[str, int]:
    """``{"candidates[2].options.k": 14, ...}``: the 1-based line of every key and item."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = join(path, str(key.value))
            lines[child] = key.start_mark.line + 1
            lines.update(key_lines(value, child))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = f"{path}[{index}]"
            lines[child] = item.start_mark.line + 1
            lines.update(key_lines(item, child))
    return lines


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class Reader:
    """Checks values by key path, collecting problems instead of stopping at the first."""

    def __init__(self, source: str, lines: dict[str, int]):
        self.source, self.lines, self.problems = source, lines, []

    def problem(self, path: str, message: str) -> None:
        probe = path
        while probe and probe not in self.lines:  # the nearest enclosing key that has a line
            parent = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", probe)
            probe = "" if parent == probe else parent
        where = f"{self.source}:{self.lines[probe]}" if probe else self.source
        self.problems.append(f"{where}: {path}: {message}" if path else f"{where}: {message}")

    def raise_problems(self) -> None:
        if len(self.problems) == 1:
            raise PersonalabError(f"invalid plan: {self.problems[0]}")
        if self.problems:
            raise PersonalabError(f"invalid plan, {len(self.problems)} problems:\n  " + "\n  ".join(self.problems))

    # ----- typed getters: a wrong value is a problem, and the default is used to go on --------

    def keys(self, mapping: dict, allowed: tuple[str, ...], path: str) -> None:
        for key in mapping:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(allowed)})"
                self.problem(join(path, str(key)), f"unknown key{hint}")

    def value(self, mapping: dict, key: str, path: str, kind: str, default: Any = None, required: bool = False):
        where = join(path, key)
        if mapping.get(key) is None:
            if required:
                self.problem(where, f"missing; {kind} is required here")
            return default
        value = mapping[key]
        if not is_a(value, kind):
            self.problem(where, f"expected {kind}, got {type_name(value)} ({value!r})")
            return default
        return float(value) if kind == "a number" else value

    def number(self, mapping, key, path, default, low=None, high=None, open_low=False, open_high=False):
        if mapping.get(key) is None or not is_a(mapping[key], "a number"):
            return self.value(mapping, key, path, "a number", default)  # reports a wrong type
        value = float(mapping[key])
        below = value <= low if open_low else value < low if low is not None else False
        above = value >= high if open_high else value > high if high is not None else False
        if below or above:
            self.problem(join(path, key), f"{value:g} is out of range {'(' if open_low else '['}"
                         f"{low:g}, {high:g}{')' if open_high else ']'}")
            return default
        return value

    def choice(self, mapping, key, path, choices: tuple[str, ...], default: str) -> str:
        value = self.value(mapping, key, path, "a string", default)
        if value not in choices:
            self.problem(join(path, key), f"{value!r} is not one of {', '.join(choices)}")
            return default
        return value


def is_a(value: Any, kind: str) -> bool:
    if kind == "an integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "a number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "a boolean":
        return isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def kind_of(default: Any) -> str:
    if isinstance(default, bool):
        return "a boolean"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, dict):
        return "a mapping"
    return "a string"


def type_name(value: Any) -> str:
    """YAML's words for a value's type."""
    if value is None:
        return "nothing (null)"
    for kind in ("a boolean", "an integer", "a number", "a string", "a mapping", "a list"):
        if is_a(value, kind):
            return kind
    return type(value).__name__
