"""The plan's strategy tables as aligned plain text, for the terminal: the same ``Table`` the
report draws (``personalab.report.table``), so that the CLI and the report cannot disagree."""

from __future__ import annotations

from typing import Any


def format_table(plan: dict[str, Any], split: str) -> str:
    """Aligned plain-text columns of every strategy (and the references) on ``split``."""
    from personalab.report.table import strategy_table

    table = strategy_table(plan, split)
    rows = [table.header, *table.rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(table.header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def format_tables(plan: dict[str, Any]) -> str:
    """The selection table, then the test table (with the references), each with its title."""
    select_on = plan.get("select_on", "val")
    parts = [f"selection ({select_on} rows):", format_table(plan, select_on)]
    if select_on != "test":
        parts += ["", "test rows (not used for the decision), with the references that need no adapter:",
                  format_table(plan, "test")]
    return "\n".join(parts)
