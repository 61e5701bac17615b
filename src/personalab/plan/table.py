"""The strategy table of a plan — one row per strategy: accuracy, macro-F1, the difference
from the baseline with its confidence interval, the McNemar p-value, how many personas got
better / stayed equal / got worse, wall time and status — as plain text (the CLI) or Markdown
(the report). It reads ``plan.json`` only."""

from __future__ import annotations

from typing import Any

HEADER = ("strategy", "accuracy", "macro-F1", "vs baseline (CI)", "McNemar p", "personas +/=/-", "time", "status")


def table_rows(plan: dict[str, Any]) -> list[tuple[str, ...]]:
    chosen = (plan.get("decision") or {}).get("chosen")
    rows = [_row(plan["baseline"], "baseline", chosen)]
    rows += [_row(candidate, candidate["status"], chosen) for candidate in plan["candidates"]]
    return rows


def format_table(plan: dict[str, Any]) -> str:
    """Aligned plain-text columns."""
    rows = [HEADER, *table_rows(plan)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _row(entry: dict[str, Any], status: str, chosen: str | None) -> tuple[str, ...]:
    metrics, comparison = entry.get("metrics") or {}, entry.get("comparison")
    if entry["name"] == chosen:
        status += ", chosen"
    return (
        entry["name"] if entry["name"] == entry["strategy"] else f"{entry['name']} ({entry['strategy']})",
        _percent(metrics.get("accuracy")),
        f"{metrics['macro_f1']:.4f}" if metrics.get("macro_f1") is not None else "-",
        _difference(comparison["overall"]) if comparison else "-",
        _p(comparison["overall"]["p_value"]) if comparison else "-",
        _personas(comparison["per_persona"]) if comparison else "-",
        _seconds(entry.get("seconds") or {}),
        status,
    )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def _difference(overall: dict[str, Any]) -> str:
    return (f"{overall['difference'] * 100:+.2f} pts [{overall['ci_low'] * 100:+.2f}, "
            f"{overall['ci_high'] * 100:+.2f}]")


def _p(value: float) -> str:
    return f"{value:.4f}" if value >= 1e-4 else f"{value:.1e}"


def _personas(personas: dict[str, Any]) -> str:
    text = f"{personas['improved']}/{personas['equal']}/{personas['worse']}"
    if personas.get("significantly_worse"):
        text += f" ({personas['significantly_worse']} sig. worse)"
    return text


def _seconds(seconds: dict[str, float | None]) -> str:
    values = [s for s in seconds.values() if s is not None]
    if not values:
        return "-"
    total = sum(values)
    return f"{total:.0f} s" if total < 600 else f"{total / 60:.1f} min"
