"""The report's strategy tables: one row per strategy — and one per reference baseline that
needs no adapter — on one split, with the plan's metric and the figure beside it (accuracy and
macro-F1, or for generation e.g. ROUGE-L and BLEU), the difference from the baseline and
its persona-level bootstrap confidence interval, the persona-level p-value, how many personas
got better / stayed equal / got worse, the harm check (test rows), the time its steps took, and
its status. The one model of the strategy table: HTML, Markdown and the terminal's plain text
(``report.text``) all draw these ``Table``s."""

from __future__ import annotations

from typing import Any

from personalab.evaluate.figures import companion, label as metric_label, shown
from personalab.report.document import Table
from personalab.report.story import label, plan_metric, status_word

NUMERIC = (False, True, True, True, True, True, True, False, True, False)


def strategy_table(plan: dict[str, Any], split: str, references: bool = True) -> Table:
    """Every strategy on ``split`` (and the references, below them)."""
    chosen = (plan.get("decision") or {}).get("chosen")
    confidence = plan["acceptance"].get("confidence", 0.95)
    figures = (plan_metric(plan), companion(plan_metric(plan)))
    header = ("strategy", *(metric_label(f) for f in figures), "Δ (pts)", f"{confidence:.0%} CI", "p (persona)",
              "personas +/=/−", "harm check", "time", "status")
    entries = [plan["baseline"], *plan["candidates"]]
    rows = [_row(entry, split, index == 0, entry["name"] == chosen, figures) for index, entry in enumerate(entries)]
    kinds = ["chosen" if e["name"] == chosen else "baseline" if i == 0 else "" for i, e in enumerate(entries)]
    if references:
        found = [(name, ref) for name, ref in (plan.get("references") or {}).items() if split in ref.get("metrics", {})]
        rows += [_reference_row(name, ref, split, figures) for name, ref in found]
        kinds += ["reference"] * len(found)
    return Table(header, tuple(rows), NUMERIC, tuple(kinds), status_column=len(header) - 1)


def _row(entry: dict[str, Any], split: str, is_baseline: bool, is_chosen: bool, figures) -> tuple[str, ...]:
    status = "baseline" if is_baseline else status_word(entry)
    return (label(entry), *_cells((entry.get("metrics") or {}).get(split) or {},
                                  (entry.get("comparisons") or {}).get(split) or {}, figures),
            _time(entry.get("seconds") or {}), status + (", chosen" if is_chosen else ""))


def _reference_row(name: str, reference: dict[str, Any], split: str, figures) -> tuple[str, ...]:
    comparison = (reference.get("comparisons") or {}).get(split) or {}
    return (reference.get("label", name), *_cells(reference["metrics"][split], comparison, figures), "–",
            "reference (no adapter)")


def _cells(metrics: dict[str, Any], comparison: dict[str, Any], figures) -> tuple[str, ...]:
    overall, personas, harm = comparison.get("overall"), comparison.get("per_persona"), comparison.get("harm")
    return (
        *(shown(figure, metrics.get(figure)) for figure in figures),
        "–" if not overall else f"{overall['difference'] * 100:+.2f}",
        "–" if not overall else f"[{overall['ci_low'] * 100:+.2f}, {overall['ci_high'] * 100:+.2f}]",
        "–" if not overall else p_value(overall["p_value"]),
        "–" if not personas else f"{personas['improved']}/{personas['equal']}/{personas['worse']}",
        harm_cell(harm),
    )


def harm_cell(harm: dict[str, Any] | None) -> str:
    """``ok (p 0.41)``, ``HARMED (p 0.003)``, ``none flagged`` or ``–``."""
    if not harm:
        return "–"
    if not harm.get("n_tested"):
        return "none flagged"
    return f"{'HARMED' if harm['harmful'] else 'ok'} (p {p_value(harm['p_value'])})"


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
