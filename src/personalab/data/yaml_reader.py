"""Reading the YAML files a user writes — plans, run configs, a dataset's ``dataset.yaml`` —
and checking their plain data key by key.

This module owns the one way every such file is read: its text becomes a mapping plus the
1-based line of every key (``candidates[2].options.k``), and a file that cannot be read, is
not YAML or is not a mapping becomes a ``Problem`` with file and line. A ``Reader`` then checks
the mapping, recording each wrong value as a ``Problem`` (``FILE:LINE: key.path: what is
wrong``, with a close-match hint for an unknown key) and going on with a default, so that one
run of the checks reports everything that is wrong with a file, not only the first thing.

The keys and types of a config kind are described once, by the dataclass the config becomes
(``RunConfig``, ``ModelSpec``, ``TrainSettings``, ...): ``Reader.fields`` checks a mapping
against its fields and their annotations.
"""

from __future__ import annotations

import difflib
import os
import re
import types
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from personalab.errors import PersonalabError, Problem

_TYPES = {"a string": str, "a mapping": dict, "a list": (list, tuple)}
# Python types as YAML words; bool before int, since a bool is an int to Python.
_KINDS = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
          (dict, "a mapping"), (list, "a list"), (tuple, "a list"))


# --- reading a file --------------------------------------------------------------------------


def read_yaml_mapping(
    path: str | os.PathLike, what: str = "YAML", example: str = ""
) -> tuple[dict | None, dict[str, int], list[Problem]]:
    """The mapping in the YAML file at ``path`` (an empty file is ``{}``), the line of every key
    and list item by key path, and the problems that stopped the reading (then the mapping is
    None). ``what`` names the kind of file and ``example`` its keys, for the messages."""
    where = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        return None, {}, [Problem(where, None, f"invalid UTF-8 (byte {error.start + 1})")]
    except OSError as error:
        return None, {}, [Problem(where, None, f"cannot read the {what} file ({error.strerror or error})")]
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        return None, {}, [_syntax_problem(where, text, error)]
    if value is None:
        return {}, {}, []
    if not isinstance(value, dict):
        return None, {}, [Problem(where, 1, f"a {what} must be a mapping of keys{example}, got {type_name(value)}")]
    return value, key_lines(node), []


def load_yaml_mapping(path: str | os.PathLike, what: str, example: str = "") -> tuple[dict, dict[str, int]]:
    """``read_yaml_mapping`` for a caller that stops at a file it cannot read: a problem is
    raised as a ``PersonalabError`` (the CLI prints it, exit code 2)."""
    value, lines, problems = read_yaml_mapping(path, what, example)
    if problems:
        raise PersonalabError("\n".join(map(str, problems)))
    return value, lines


def _syntax_problem(where: str, text: str, error: yaml.YAMLError) -> Problem:
    """The line YAML stopped on, what it expected, and the text of the line(s) involved, which
    name the key a user has to fix (the line itself is blank when a bracket is never closed)."""
    mark, context_mark = getattr(error, "problem_mark", None), getattr(error, "context_mark", None)
    reason = getattr(error, "problem", None) or str(error)
    source = text.splitlines()
    quoted = _line_text(source, mark)
    if quoted:
        reason += f"; the line reads {quoted!r}"
    context = getattr(error, "context", None)
    if context and context_mark is not None and context_mark.line != getattr(mark, "line", None):
        reason += f" ({context} from line {context_mark.line + 1}: {_line_text(source, context_mark)!r})"
    return Problem(where, mark.line + 1 if mark is not None else None, f"invalid YAML: {reason}")


def _line_text(source: list[str], mark: Any) -> str:
    return source[mark.line].strip() if mark is not None and mark.line < len(source) else ""


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


def unknown_key_hint(key: str, allowed: tuple[str, ...] | list[str]) -> str:
    """``; did you mean 'alpha'?`` when a known key is close, else the list of known keys."""
    close = difflib.get_close_matches(str(key), list(allowed), n=1)
    return f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(allowed)})"


# --- checking the data -----------------------------------------------------------------------


class Reader:
    """Checks values by key path, collecting problems instead of stopping at the first.

    ``what`` names the file's kind in the error (``invalid plan: ...``); ``lines`` maps key
    paths to lines, as ``read_yaml_mapping`` gives them (empty for data not read from a file).
    """

    def __init__(self, source: str, lines: dict[str, int], what: str = "config"):
        self.source, self.lines, self.what = source, lines, what
        self.problems: list[Problem] = []

    def problem(self, path: str, message: str) -> None:
        probe = path
        while probe and probe not in self.lines:  # the nearest enclosing key that has a line
            parent = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", probe)
            probe = "" if parent == probe else parent
        self.problems.append(Problem(self.source, self.lines.get(probe), f"{path}: {message}" if path else message))

    def raise_problems(self) -> None:
        if len(self.problems) == 1:
            raise PersonalabError(f"invalid {self.what}: {self.problems[0]}")
        if self.problems:
            listing = "\n  ".join(map(str, self.problems))
            raise PersonalabError(f"invalid {self.what}, {len(self.problems)} problems:\n  {listing}")

    # ----- typed getters: a wrong value is a problem, and the default is used to go on --------

    def keys(self, mapping: dict, allowed: tuple[str, ...], path: str) -> None:
        for key in mapping:
            if key not in allowed:
                self.problem(join(path, str(key)), f"unknown key{unknown_key_hint(str(key), allowed)}")

    def value(self, mapping: dict, key: str, path: str, kind: str, default: Any = None, required: bool = False):
        where = join(path, key)
        if mapping.get(key) is None:
            if required:
                self.problem(where, f"missing; {kind} is required here")
            return default
        value = mapping[key]
        if not is_a(value, kind):
            self.problem(where, f"expected {kind}, got {type_name(value)} ({value!r}){_number_hint(value, kind)}")
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

    def integer(self, mapping, key, path, default: int, low: int) -> int:
        """An integer of at least ``low`` (``default`` when absent, or after a problem)."""
        value = self.value(mapping, key, path, "an integer", default)
        if value < low:
            self.problem(join(path, key), f"must be at least {low}, got {value}")
            return default
        return value

    def choice(self, mapping, key, path, choices: tuple[str, ...], default: str) -> str:
        value = self.value(mapping, key, path, "a string", default)
        if value not in choices:
            self.problem(join(path, key), f"{value!r} is not one of {', '.join(choices)}")
            return default
        return value

    def fields(self, mapping: Any, cls: type, path: str, extra: tuple[str, ...] = ()) -> dict[str, Any] | None:
        """The entries of ``mapping`` that fit the dataclass ``cls``: its keys are the fields
        (and ``extra``), each of the type its annotation says. Values come back as given, so
        that a valid config reads exactly as before; a wrong one is reported and left out.
        None when ``mapping`` is not a mapping at all."""
        if not isinstance(mapping, dict):
            self.problem(path, f"expected a mapping, got {type_name(mapping)} ({mapping!r})")
            return None
        kinds = field_kinds(cls)
        self.keys(mapping, (*kinds, *extra), path)
        good = {}
        for key, kind in kinds.items():
            if mapping.get(key) is None:
                continue
            if kind is None or self._fits(mapping, key, path, kind):
                good[key] = mapping[key]
        return good

    def _fits(self, mapping: dict, key: str, path: str, kind: str | tuple) -> bool:
        if isinstance(kind, tuple):  # a Literal: one of these values
            if mapping[key] in kind:
                return True
            self.problem(join(path, key), f"{mapping[key]!r} is not one of {', '.join(map(str, kind))}")
            return False
        return self.value(mapping, key, path, kind) is not None


def field_kinds(cls: type) -> dict[str, str | tuple | None]:
    """Each field of the dataclass ``cls`` and what YAML must give for it: a kind (``"an
    integer"``), a tuple of allowed values (a ``Literal``), or None (anything)."""
    hints = get_type_hints(cls)
    return {f.name: _kind_of_type(hints[f.name]) for f in fields(cls)}


def _kind_of_type(hint: Any) -> str | tuple | None:
    origin, args = get_origin(hint), [a for a in get_args(hint) if a is not type(None)]
    if origin is Literal:
        return tuple(args)
    if origin in (Union, types.UnionType):  # Optional[X]: null means "not given"
        return _kind_of_type(args[0]) if len(args) == 1 else None
    if is_dataclass(hint):
        return "a mapping"
    base = origin or hint
    return next((kind for cls, kind in _KINDS if base is cls), None)


def is_a(value: Any, kind: str) -> bool:
    if kind == "an integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "a number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "a boolean":
        return isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def _number_hint(value: Any, kind: str) -> str:
    # YAML 1.1 reads 5e-4 as text: it wants a dot in the mantissa (5.0e-4).
    if kind == "a number" and isinstance(value, str) and re.fullmatch(r"[-+]?\d+[eE][-+]?\d+", value.strip()):
        return f"; YAML reads {value} as text, write it with a dot: {value.replace('e', '.0e').replace('E', '.0E')}"
    return ""


def type_name(value: Any) -> str:
    """YAML's words for a value's type."""
    if value is None:
        return "nothing (null)"
    for kind in ("a boolean", "an integer", "a number", "a string", "a mapping", "a list"):
        if is_a(value, kind):
            return kind
    return type(value).__name__
