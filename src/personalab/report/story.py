"""The decision a plan took and why, in words a person reads: the chosen strategy and branch of
the tree, and each candidate's evidence in the order tried (accepted with the conditions that
held; rejected with the condition that failed; skipped by a gate with the silhouette; not run;
failed; not reached). Reads ``plan.json`` only."""

from __future__ import annotations

from typing import Any

from personalab.evaluate.figures import companion, label as label_of, shown
from personalab.report.document import Evidence, Inline, Paragraph, inline, prose, strong

# plan.json's candidate statuses -> what the report calls them ("pending": never got to it).
STATUS_WORDS = {"accepted": "accepted", "rejected": "rejected", "skipped": "skipped", "not run": "not run",
                "failed": "failed", "pending": "not reached"}


def label(entry: dict[str, Any]) -> str:
    """``name`` or ``name (strategy)`` when they differ."""
    return entry["name"] if entry["name"] == entry["strategy"] else f"{entry['name']} ({entry['strategy']})"


def status_word(entry: dict[str, Any]) -> str:
    return STATUS_WORDS.get(entry["status"], entry["status"])


def plan_metric(plan: dict[str, Any]) -> str:
    """The per-row score the plan compared by (plans from before ``metric`` compared accuracy)."""
    return plan.get("metric") or "accuracy"


def decision_paragraphs(plan: dict[str, Any]) -> list[Paragraph]:
    """The decision (or why there is none yet) and the baseline's score."""
    decision, baseline = plan.get("decision"), plan["baseline"]
    if not decision:
        lead = inline(strong("No decision yet"), f": the plan is {plan.get('status', 'unknown')}.")
        paragraphs = [Paragraph(lead, "lead")]
    elif decision.get("accepted"):
        lead = inline("Chosen: ", strong(decision["chosen"]), f" ({decision['strategy']}) — branch: ",
                      strong(decision["branch"]), f" — picked on the {plan.get('select_on', 'val')} rows and "
                      "confirmed on the test rows.")
        paragraphs = [Paragraph(lead, "lead-accepted"), _why_paragraph(decision)]
    elif decision.get("picked"):
        lead = inline("Kept the baseline ", strong(decision["chosen"]), ": ", strong(decision["picked"]),
                      f" was picked on the {plan.get('select_on', 'val')} rows but not confirmed on the test rows.")
        paragraphs = [Paragraph(lead, "lead"), _why_paragraph(decision)]
    else:
        lead = inline("Kept the baseline ", strong(decision["chosen"]), ": no candidate was accepted, so the tree "
                      "falls back to the baseline.")
        paragraphs = [Paragraph(lead, "lead"), _why_paragraph(decision)]
    return paragraphs + [Paragraph(_baseline_line(plan, baseline))]


def evidence(plan: dict[str, Any]) -> list[Evidence]:
    """Every candidate's outcome in the order tried."""
    return [Evidence(c["name"], label(c), c.get("branch") or "", status_word(c), _why(plan, c))
            for c in plan["candidates"]]


def _why_paragraph(decision: dict[str, Any]) -> Paragraph:
    return Paragraph(inline(strong("Why"), ": ") + prose(_sentence(decision["why"])))


def _baseline_line(plan: dict[str, Any], baseline: dict[str, Any]) -> Inline:
    metric = plan_metric(plan)
    scores = [_score(metrics, split, metric) for split, metrics in (baseline.get("metrics") or {}).items()
              if metrics.get(metric) is not None]
    if not scores:
        return inline("The baseline ", strong(baseline["name"]), " has not been evaluated.")
    branch = f" — {baseline['branch']} —" if baseline.get("branch") else ""
    return inline("The baseline ", strong(baseline["name"]), f"{branch} scored {' and '.join(scores)}; every "
                  "candidate is compared with it on the same rows, persona by persona.")


def _score(metrics: dict[str, Any], split: str, metric: str) -> str:
    second = companion(metric)
    beside = f", {label_of(second)} {shown(second, metrics[second])}" if metrics.get(second) is not None else ""
    share = (metrics.get("own_vs_other") or {}).get("share")
    if share is not None:  # generation: does it write like its own persona? (50%: no more than like another)
        beside += f", own-vs-other {share:.1%}"
    rows = f"{metrics['n']} {split} rows" if metrics.get("n") else f"the {split} rows"
    return f"{label_of(metric)} {shown(metric, metrics[metric])}{beside} on {rows}"


def _why(plan: dict[str, Any], entry: dict[str, Any]) -> str:
    status, reason = entry["status"], entry.get("reason") or ""
    if status in ("accepted", "rejected"):
        return _judged(entry, plan.get("select_on", "val"))
    if status == "skipped" and reason.startswith("gate:"):
        return _sentence(f"Skipped by its gate: {reason[len('gate:'):].strip()}")
    if status == "pending":
        return f"Never reached: the plan is {plan.get('status', 'unknown')} and stopped before this candidate."
    # The reason as the planner wrote it: it may start with a name, whose case is not ours to change.
    return _sentence(reason) if reason else f"{_capital(status_word(entry))}: no reason recorded."


def _judged(entry: dict[str, Any], split: str) -> str:
    verdict = entry.get("verdict") or {}
    checks = verdict.get("checks") or []
    if entry["status"] == "accepted":
        said = (f"Every condition held on the {split} rows: " + "; ".join(c["text"] for c in checks) if checks
                else entry.get("reason") or "")
    else:
        failed = [c["text"] for c in checks if not c["passed"]] or [entry.get("reason") or "the rule was not met"]
        held = [c["text"] for c in checks if c["passed"]]
        said = f"Failed on the {split} rows: " + "; ".join(failed) + (f". Held: {'; '.join(held)}" if held else "")
    return _sentence(said) + _measured(entry, split)


def _measured(entry: dict[str, Any], split: str) -> str:
    overall = ((entry.get("comparisons") or {}).get(split) or {}).get("overall")
    if not overall:
        return ""
    confidence = overall.get("confidence", 0.95)
    name = _capital(label_of(overall.get("metric", "accuracy")))
    return (f" {name} {overall['score_b']:.2%} against the baseline's {overall['score_a']:.2%}: "
            f"{overall['difference'] * 100:+.2f} pts, {confidence:.0%} CI [{overall['ci_low'] * 100:+.2f}, "
            f"{overall['ci_high'] * 100:+.2f}].")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text[-1] in ".!?" else text + "."
