"""Assembling the report from a plan folder: the title and facts of the run, then the sections
in reading order — the decision and its evidence, the confirmation on the test rows, the
selection table and the acceptance rule, every strategy's test numbers beside the reference
baselines (not used for the decision), the pictures (``personalab.report.pictures``), and the
notes."""

from __future__ import annotations

from typing import Any

from personalab.evaluate.figures import label as label_of
from personalab.report.document import Bullets, Paragraph, Report, Section, Table, Trail, inline, prose, strong
from personalab.report.folder import PlanFolder
from personalab.report.pictures import clusters_section, gains_section, times_section, training_section
from personalab.report.story import decision_paragraphs, evidence, plan_metric
from personalab.report.table import harm_cell, p_value, strategy_table


def build_report(folder: PlanFolder) -> Report:
    plan = folder.plan
    sections = (decision_section(plan), confirmation_section(plan), strategies_section(plan), test_section(plan),
                gains_section(folder),
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


def confirmation_section(plan: dict[str, Any]) -> Section:
    confirmation = plan.get("confirmation")
    title = "Confirmation on the test rows"
    if not confirmation:
        return Section("confirmation", title, (Paragraph(inline(
            "No candidate was picked on the selection rows, so nothing was confirmed: the test rows were used only "
            "for the information below."), "note"),))
    overall = confirmation["comparison"]["overall"]
    verdict = "confirmed" if confirmation["confirmed"] else "NOT confirmed"
    blocks: list[Any] = [Paragraph(inline(
        strong(confirmation["candidate"]), f" (picked on the {confirmation['selected_on']} rows) against ",
        strong(plan["baseline"]["name"]), f" on {overall['n']} test rows of {overall['n_personas']} personas: "
        f"{label_of(overall.get('metric', 'accuracy'))} {overall['score_b']:.2%} vs {overall['score_a']:.2%}, "
        f"Δ {overall['difference'] * 100:+.2f} pts, "
        f"{overall['confidence']:.0%} CI [{overall['ci_low'] * 100:+.2f}, {overall['ci_high'] * 100:+.2f}] "
        f"(persona bootstrap), persona-level p = {p_value(overall['p_value'])} (sign-flip permutation test"
        f"{_mcnemar(overall)}); harm check: "
        f"{harm_cell(confirmation['comparison'].get('harm'))}. ", strong(verdict), "."))]
    blocks.append(Bullets(tuple(inline(("held: " if c["passed"] else "FAILED: ") + c["text"])
                                for c in confirmation["verdict"]["checks"])))
    if confirmation.get("repeats"):
        blocks += repeats_blocks(confirmation["repeats"])
    return Section("confirmation", title, tuple(blocks))


def _mcnemar(overall: dict[str, Any]) -> str:
    # Right/wrong scores only: a continuous metric has no 2x2 table.
    if overall.get("mcnemar_p") is None:
        return ""
    return f"; row-level McNemar p = {p_value(overall['mcnemar_p'])}, shown for reference only"


def repeats_blocks(repeats: list[dict[str, Any]]) -> list[Any]:
    """The gain under each training seed, and its spread."""
    import numpy as np

    gains = np.array([r["difference"] for r in repeats]) * 100
    header = ("seed", "baseline", "candidate", "Δ (pts)", "95% CI", "p (persona)")
    rows = tuple((str(r["seed"]), f"{r['score_baseline']:.2%}", f"{r['score_candidate']:.2%}",
                  f"{r['difference'] * 100:+.2f}", f"[{r['ci_low'] * 100:+.2f}, {r['ci_high'] * 100:+.2f}]",
                  p_value(r["p_value"])) for r in repeats)
    spread = (f"mean {gains.mean():+.2f} pts, standard deviation {gains.std(ddof=1):.2f} over {len(gains)} seeds"
              if len(gains) > 1 else "one seed")
    return [Paragraph(inline(strong("Repeats"), f": the gain under each training seed, {spread}. Each repeat "
                             f"trains the baseline and the pick again ({len(gains) - 1} extra trainings of each).")),
            Table(header, rows, (True, True, True, True, True, True))]


def strategies_section(plan: dict[str, Any]) -> Section:
    split = plan.get("select_on", "val")
    confidence = plan["acceptance"].get("confidence", 0.95)
    intro = inline(f"Selection, on the {split} rows: every candidate against the baseline ",
                   strong(plan["baseline"]["name"]), f" on the same rows. Δ: {label_of(plan_metric(plan))} difference "
                   "in percentage "
                   f"points with its {confidence:.0%} persona-level bootstrap interval (personas resampled with all "
                   "their rows); p: persona-level sign-flip permutation test; personas +/=/−: better, equal, worse; "
                   "time: the strategy's steps; accepted: met the rule on these rows.")
    return Section("strategies", f"Selection ({split} rows)", (Paragraph(intro), strategy_table(plan, split),
                                                               Paragraph(_rule(plan))))


def test_section(plan: dict[str, Any]) -> Section:
    chose_on_test = plan.get("select_on") == "test"
    intro = inline(strong("Not used for the decision" if not chose_on_test else "Used for the decision"),
                   ": every trained strategy, and the reference baselines that need no adapter (majority labels, "
                   "logistic regression on frozen sentence embeddings, with and without a one-hot persona id), "
                   "on the test rows, each against the baseline persona by persona. The harm check tests, on "
                   "these rows, the personas that were worse on the validation rows.")
    return Section("test", "Test rows: every strategy and the references", (Paragraph(intro),
                                                                            strategy_table(plan, "test")))


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
    harm = ("" if rule.get("harm_alpha") is None else
            f", and the personas worse on the validation rows are not significantly worse on the test rows "
            f"(one-sided, level {rule['harm_alpha']:g})")
    repeats = ", and the gain is positive under every repeat seed" if rule.get("require_every_repeat") else ""
    return inline(strong("Acceptance rule"), f": a candidate is accepted on the {plan.get('select_on', 'val')} rows "
                  f"when its persona-level p-value is below {rule['alpha']:g} and its {label_of(plan_metric(plan))} "
                  "gain is at least "
                  f"{rule['min_gain'] * 100:g} points. The one candidate picked (stop: {plan.get('stop', '?')}) is "
                  f"adopted only when the same holds once on the test rows{harm}{repeats}.")


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
             ("split by", plan.get("split_by")), ("chosen on", plan.get("select_on")),
             ("confirmed on", "test"), ("repeats", plan.get("repeats")), ("stop", plan.get("stop")), ("started", _when(plan.get("started"))),
             (end[0], _when(end[1])))
    return tuple((name, str(value)) for name, value in pairs if value)


def _when(stamp: str | None) -> str | None:
    """``2026-11-24T02:24:44+00:00`` -> ``2026-11-24 02:24:44 UTC`` (plan.json times are UTC)."""
    if not stamp:
        return None
    return stamp.replace("T", " ").replace("+00:00", " UTC")
