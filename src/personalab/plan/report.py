"""The plan's report for people: ``RUN_DIR/report.md``, rebuilt from ``plan.json`` alone.

``write_report(out)`` is the one hook the runner calls at the end of a plan (and that
``personalab report`` can call any time); the HTML report with plots belongs beside the
Markdown here, written from the same ``plan.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from personalab.data.io import atomic_write_text
from personalab.plan.artifacts import read_json
from personalab.plan.record import PLAN_JSON
from personalab.plan.table import markdown_table

REPORT_MD = "report.md"


def write_report(out: str | Path) -> list[Path]:
    """Write the report files of the plan in ``out``; returns their paths."""
    out = Path(out)
    plan = read_json(out / PLAN_JSON)
    path = out / REPORT_MD
    atomic_write_text(path, markdown_report(plan))
    return [path]


def markdown_report(plan: dict[str, Any]) -> str:
    decision = plan.get("decision") or {}
    lines = [f"# Plan: {plan['source']}", ""]
    if plan.get("description"):
        lines += [plan["description"], ""]
    lines += ["## Decision", ""]
    if decision:
        lines += [f"**{decision['chosen']}** ({decision['strategy']}) — branch: {decision['branch']}.", "",
                  decision["why"], ""]
    else:
        lines += [f"No decision yet (the plan is {plan['status']}).", ""]
    lines += ["## Strategies", "", f"Measured on the {plan['split']} split against the baseline "
              f"**{plan['baseline']['name']}**; CI: paired bootstrap {plan['acceptance']['confidence']:.0%} "
              "interval of the accuracy difference; personas +/=/-: better, equal, worse.", "",
              markdown_table(plan), ""]
    lines += ["## What happened to each candidate", ""]
    lines += [f"- **{c['name']}** ({c['branch'] or c['strategy']}): {c['status']}"
              + (f" — {c['reason']}" if c["reason"] else "") for c in plan["candidates"]]
    lines += ["", *_clustering(plan), *_rule(plan), "## Notes", ""]
    lines += [f"- {note}" for note in plan.get("notes", [])]
    lines += [f"- Steps took {plan['compute_seconds'] / 60:.1f} min of compute in all; this run of the "
              f"command took {plan['wall_seconds'] / 60:.1f} min. Status: {plan['status']}."]
    if plan["budget"].get("exhausted"):
        lines.append(f"- The time budget of {plan['budget']['minutes']:g} min ran out: later candidates were skipped.")
    return "\n".join(lines) + "\n"


def _clustering(plan: dict[str, Any]) -> list[str]:
    if not plan.get("clustering"):
        return []
    lines = ["## Clusters seen by the gates", ""]
    for name, c in plan["clustering"].items():
        lines.append(f"- {name}: k = {c.get('k')}, silhouette {c['silhouette']:.3f} ({c.get('quality')}); "
                     f"picture: {c.get('folder', 'cluster/' + name)}/clusters.png")
    return lines + [""]


def _rule(plan: dict[str, Any]) -> list[str]:
    rule = plan["acceptance"]
    personas = ("" if rule["max_share_worse"] is None else
                f", and at most {rule['max_share_worse']:.0%} of personas significantly worse ({rule['correction']})")
    return ["## Acceptance rule", "",
            f"A candidate is accepted when its exact McNemar p-value is below {rule['alpha']:g}, its accuracy "
            f"gain is at least {rule['min_gain'] * 100:g} points{personas}. Stopping rule: {plan['stop']}.", ""]
