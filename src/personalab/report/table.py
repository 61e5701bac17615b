"""The report's strategy table: one row per strategy with accuracy, macro-F1, the difference
from the baseline and its bootstrap confidence interval, the exact McNemar p-value, how many
personas got better / stayed equal / got worse and how many significantly so, the time its
steps took, and its status. Both renderers draw this one ``Table``."""

from __future__ import annotations

from typing import Any

from personalab.report.document import Table
from personalab.report.story import label, status_word

NUMERIC = (False, True, True, True, True, True, True, True, True, False)


def strategy_table(plan: dict[str, Any]) -> Table:
    chosen = (plan.get("decision") or {}).get("chosen")
    confidence = plan["acceptance"].get("confidence", 0.95)
    header = ("strategy", "accuracy", "macro-F1", "Δ (pts)", f"{confidence:.0%} CI", "McNemar p",
              "personas +/=/−", "significant +/−", "time", "status")
    entries = [plan["baseline"], *plan["candidates"]]
    rows = tuple(_row(entry, index == 0, entry["name"] == chosen) for index, entry in enumerate(entries))
    kinds = tuple("chosen" if e["name"] == chosen else "baseline" if i == 0 else "" for i, e in enumerate(entries))
    return Table(header, rows, NUMERIC, kinds, status_column=len(header) - 1)


def _row(entry: dict[str, Any], is_baseline: bool, is_chosen: bool) -> tuple[str, ...]:
    metrics = entry.get("metrics") or {}
    comparison = entry.get("comparison") or {}
    overall, personas = comparison.get("overall"), comparison.get("per_persona")
    status = "baseline" if is_baseline else status_word(entry)
    return (
        label(entry),
        "–" if metrics.get("accuracy") is None else f"{metrics['accuracy']:.2%}",
        "–" if metrics.get("macro_f1") is None else f"{metrics['macro_f1']:.4f}",
        "–" if not overall else f"{overall['difference'] * 100:+.2f}",
        "–" if not overall else f"[{overall['ci_low'] * 100:+.2f}, {overall['ci_high'] * 100:+.2f}]",
        "–" if not overall else p_value(overall["p_value"]),
        "–" if not personas else f"{personas['improved']}/{personas['equal']}/{personas['worse']}",
        "–" if not personas else f"{personas.get('significantly_better', 0)}/{personas['significantly_worse']}",
        _time(entry.get("seconds") or {}),
        status + (", chosen" if is_chosen else ""),
    )


def _time(seconds: dict[str, float | None]) -> str:
    return duration(sum(s for s in seconds.values() if s is not None), empty=not seconds)


def p_value(value: float) -> str:
    return f"{value:.4f}" if value >= 1e-4 else f"{value:.1e}"


def duration(seconds: float | None, empty: bool = False) -> str:
    """``12.3 s``, ``4.2 min``, ``1.5 h``; ``–`` for nothing recorded."""
    if empty or seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"
