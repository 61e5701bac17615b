"""User-facing errors: everything the CLI turns into a clear message and exit code 2.

Anything raised as a ``PersonalabError`` is the user's input being wrong (a file, a flag, a
config), never a bug: the CLI prints it without a traceback. Bugs stay ordinary exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass


class PersonalabError(Exception):
    """An error caused by the user's input; printed without a traceback, exit code 2."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input file: where it is and what is wrong."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


class DataError(PersonalabError):
    """A dataset failed validation; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem], limit: int = 50):
        self.problems = list(problems)
        shown = [str(p) for p in self.problems[:limit]]
        if len(self.problems) > limit:
            shown.append(f"... and {len(self.problems) - limit} more problems")
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"{len(self.problems)} {noun} found:\n" + "\n".join(shown))
