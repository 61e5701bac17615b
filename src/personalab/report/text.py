"""Rendering strategy tables as aligned plain text, for the terminal: what ``personalab plan``
and ``personalab demo`` print after the decision. It is the third renderer of the one
``Table`` that ``report.table.strategy_table`` builds from a plan record (``html`` and
``markdown`` are the others), so that the terminal and the report cannot disagree."""

from __future__ import annotations

from typing import Any

from personalab.report.document import Table
from personalab.report.table import strategy_table


def table_text(table: Table) -> str:
    """Left-aligned columns two spaces apart, a dashed rule under the header."""
    rows = [table.header, *table.rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(table.header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_tables(plan: dict[str, Any]) -> str:
    """The selection table, then the test table (with the references), each with its title."""
    select_on = plan.get("select_on", "val")
    parts = [f"selection ({select_on} rows):", table_text(strategy_table(plan, select_on))]
    if select_on != "test":
        parts += ["", "test rows (not used for the decision), with the references that need no adapter:",
                  table_text(strategy_table(plan, "test"))]
    return "\n".join(parts)
