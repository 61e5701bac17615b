"""The strategy tables as the terminal prints them (``personalab plan``): the same cells as the
report's Markdown and HTML tables, in aligned columns under their titles."""

from __future__ import annotations

import json

from personalab.report import REPORT_MD, format_tables
from personalab.report.table import strategy_table
from personalab.report.text import table_text

from .test_markdown import markdown_table


def columns(line: str) -> list[str]:
    """A text-table line cut at runs of two or more spaces (cells hold single spaces only)."""
    return [cell for cell in line.split("  ") if cell.strip()] if line else []


def test_the_terminal_table_has_the_cells_of_the_report_table(rendered):
    plan = json.loads((rendered / "plan.json").read_text())
    lines = table_text(strategy_table(plan, "val")).splitlines()
    assert set(lines[1]) == {"-", " "}  # the rule under the header
    cells = [[cell.strip() for cell in columns(line)] for line in [lines[0], *lines[2:]]]
    assert cells == markdown_table((rendered / REPORT_MD).read_text())


def test_columns_line_up_and_both_splits_are_titled(rendered):
    plan = json.loads((rendered / "plan.json").read_text())
    printed = format_tables(plan)
    assert printed.startswith("selection (val rows):\n")
    assert "\ntest rows (not used for the decision), with the references that need no adapter:\n" in printed
    table = table_text(strategy_table(plan, "val")).splitlines()
    starts = [i for i, char in enumerate(table[1]) if char == "-" and (i == 0 or table[1][i - 1] == " ")]
    for line in table:
        assert all(i == 0 or line[i - 1] == " " for i in starts if i < len(line))  # every cell starts at its column
