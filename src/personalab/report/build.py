"""Assembling the report from a plan folder: the title and facts of the run, then the sections
in reading order — the decision and its evidence, the strategy table and the acceptance rule,
the pictures (``personalab.report.pictures``), and the notes."""

from __future__ import annotations

from typing import Any

from personalab.report.document import Bullets, Paragraph, Report, Section, Trail, inline, prose, strong
from personalab.report.folder import PlanFolder
from personalab.report.pictures import clusters_section, gains_section, times_section, training_section
from personalab.report.story import decision_paragraphs, evidence
from personalab.report.table import strategy_table


def build_report(folder: PlanFolder) -> Report:
    plan = folder.plan
    sections = (decision_section(plan), strategies_section(plan), gains_section(folder),
                clusters_section(folder), training_section(folder), times_section(folder), notes_section(plan))
    versions = plan.get("versions") or {}
    footer = "Written by personalab from plan.json" + (
        " · " + ", ".join(f"{name} {version}" for name, version in versions.items()) if versions else "")
    return Report(f"Plan report: {plan.get('source') or folder.root.name}", _meta(plan), sections,
                  description=plan.get("description") or "", footer=footer)


def decision_section(plan: dict[str, Any]) -> Section:
    blocks: list[Any] = _status_warning(plan)
    blocks += decision_paragraphs(plan)
    if plan["candidates"]:
        blocks += [Paragraph(inline(strong("The evidence"), ", candidate by candidate in the order tried "
                                    f"(stop: {plan.get('stop', '?')}):")), Trail(tuple(evidence(plan)))]
    else:
        blocks.append(Paragraph(inline("The plan has no candidates: only the baseline was measured."), "note"))
    return Section("decision", "Decision", tuple(blocks))


def strategies_section(plan: dict[str, Any]) -> Section:
    confidence = plan["acceptance"].get("confidence", 0.95)
    intro = inline(f"Measured on the {plan['split']} split; every candidate against the baseline ",
                   strong(plan["baseline"]["name"]), " on the same rows. Δ: accuracy difference in percentage "
                   f"points with its {confidence:.0%} paired bootstrap interval; McNemar p: exact test on the rows "
                   "where the two disagree; personas +/=/−: better, equal, worse; significant +/−: personas "
                   "significantly better / worse after correction across personas; time: the strategy's steps.")
    return Section("strategies", "Strategies", (Paragraph(intro), strategy_table(plan), Paragraph(_rule(plan))))


def notes_section(plan: dict[str, Any]) -> Section:
    notes = [prose(note) for note in plan.get("notes") or []]
    budget = plan.get("budget") or {}
    if budget.get("minutes") is not None:
        used = "ran out: later candidates were skipped" if budget.get("exhausted") else "was not used up"
        notes.append(inline(f"The time budget of {budget['minutes']:g} min {used}."))
    if plan.get("error"):
        notes.append(inline("Error: ", strong(plan["error"])))
    return Section("notes", "Notes", (Bullets(tuple(notes)),) if notes else ())


def _rule(plan: dict[str, Any]):
    rule = plan["acceptance"]
    personas = ("" if rule.get("max_share_worse") is None else
                f", and at most {rule['max_share_worse']:.0%} of personas are significantly worse "
                f"({rule.get('correction', 'holm')} correction)")
    return inline(strong("Acceptance rule"), f": a candidate is accepted when its exact McNemar p-value is below "
                  f"{rule['alpha']:g}, its accuracy gain is at least {rule['min_gain'] * 100:g} points{personas}. "
                  f"Stopping rule: {plan.get('stop', '?')}.")


def _status_warning(plan: dict[str, Any]) -> list[Paragraph]:
    status = plan.get("status")
    if status == "done":
        return []
    if status == "running":
        text = (f"The plan is still running (last update {_when(plan.get('updated')) or '?'}): this is what it "
                "had done by then.")
    else:
        text = f"The plan {status or 'did not finish'}" + (f": {plan['error']}" if plan.get("error") else "") + \
            ". This is what it had done by then; re-run the same `personalab plan` command to resume."
    return [Paragraph(inline(text), "warning")]


def _meta(plan: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    spec = plan.get("spec") or {}
    model = (spec.get("model") or {}).get("name")
    end = ("finished", plan.get("finished")) if plan.get("finished") else ("updated", plan.get("updated"))
    pairs = (("status", plan.get("status")), ("data", spec.get("data")), ("model", model),
             ("split", plan.get("split")), ("stop", plan.get("stop")), ("started", _when(plan.get("started"))),
             (end[0], _when(end[1])))
    return tuple((name, str(value)) for name, value in pairs if value)


def _when(stamp: str | None) -> str | None:
    """``2026-11-24T02:24:44+00:00`` -> ``2026-11-24 02:24:44 UTC`` (plan.json times are UTC)."""
    if not stamp:
        return None
    return stamp.replace("T", " ").replace("+00:00", " UTC")
