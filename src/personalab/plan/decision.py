"""The decision a plan takes, in words: which strategy, which branch of the tree, and why — from
the candidates' selection verdicts, the confirmation on the test rows and the reference
baselines in ``plan.json``."""

from __future__ import annotations

from typing import Any

FALLBACK = "fallback: keep the baseline"


def describe_decision(plan: dict[str, Any], reference: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"chosen", "strategy", "branch", "accepted", "picked", "summary", "why", "reference",
    "trail"}``: ``accepted`` is true only when the pick was confirmed on the test rows;
    ``reference`` is the chosen strategy against the best reference baseline (``best_reference``)."""
    baseline, candidates, confirmation = plan["baseline"], plan["candidates"], plan.get("confirmation")
    trail = [f"{c['name']}: {c['status']}" + (f" ({c['reason']})" if c["reason"] else "") for c in candidates]
    if confirmation is None:
        decision = _kept(baseline, None, "no candidate accepted, baseline kept", _no_pick(plan))
    elif not confirmation["confirmed"]:
        decision = _kept(baseline, confirmation["candidate"], "picked but not confirmed, baseline kept",
                         _picked(plan) + " " + _not_confirmed(plan))
    else:
        entry = next(c for c in candidates if c["name"] == confirmation["candidate"])
        decision = {"chosen": entry["name"], "strategy": entry["strategy"], "branch": entry["branch"] or entry["name"],
                    "accepted": True, "picked": entry["name"], "summary": "confirmed on the test rows",
                    "why": _picked(plan) + " " + _confirmed(plan)}
    if plan.get("select_on") == "test":
        decision["why"] += (" Warning: candidates were chosen on the test rows (select_on: test), the rows that "
                            "also confirm and report the result, so the gain is optimistic.")
    if reference:
        decision["why"] += " " + reference_sentence(decision["chosen"], reference)
    return {**decision, "reference": reference, "trail": trail}


def best_reference(plan: dict[str, Any], split: str = "test") -> str | None:
    """The reference baseline with the highest accuracy on ``split``."""
    scored = [(found["metrics"][split]["accuracy"], name) for name, found in (plan.get("references") or {}).items()
              if split in found.get("metrics", {})]
    return max(scored)[1] if scored else None


def reference_sentence(chosen: str, reference: dict[str, Any]) -> str:
    """Whether ``chosen`` beats the best reference on the test rows, persona-level."""
    overall = reference["comparison"]["overall"]
    gap = (f"{overall['difference'] * 100:+.2f} pts, 95% CI [{overall['ci_low'] * 100:+.2f}, "
           f"{overall['ci_high'] * 100:+.2f}], persona-level p = {overall['p_value']:.4g}")
    head = (f"The best reference that needs no adapter, {reference['label']}, scores {overall['score_a']:.2%} "
            f"on the test rows; {chosen} scores {overall['score_b']:.2%} ({gap})")
    if overall["difference"] > 0 and overall["ci_low"] > 0:
        return head + f": {chosen} beats it."
    if overall["difference"] > 0:
        return head + f": {chosen} is not shown to beat it."
    return head + f": {chosen} does NOT beat it — the adapters are not yet worth their cost here."


def _kept(baseline: dict[str, Any], picked: str | None, summary: str, why: str) -> dict[str, Any]:
    return {"chosen": baseline["name"], "strategy": baseline["strategy"], "branch": FALLBACK, "accepted": False,
            "picked": picked, "summary": summary, "why": why}


def _picked(plan: dict[str, Any]) -> str:
    confirmation = plan["confirmation"]
    entry = next(c for c in plan["candidates"] if c["name"] == confirmation["candidate"])
    accepted = [c for c in plan["candidates"] if c["status"] == "accepted"]
    how = (f"the largest gain of the {len(accepted)} accepted" if plan["stop"] == "all" and len(accepted) > 1
           else "the first accepted, in cost order" if plan["stop"] == "first_win" else "the only one accepted")
    checks = "; ".join(check["text"] for check in entry["verdict"]["checks"])
    return f"{entry['name']} was picked on the {plan['select_on']} rows ({how}): {checks}."


def _confirmed(plan: dict[str, Any]) -> str:
    confirmation = plan["confirmation"]
    checks = "; ".join(check["text"] for check in confirmation["verdict"]["checks"])
    return f"One confirmatory test on the {confirmation['split']} rows held: {checks}."


def _not_confirmed(plan: dict[str, Any]) -> str:
    confirmation = plan["confirmation"]
    failed = "; ".join(confirmation["verdict"]["failed"])
    return (f"It was NOT confirmed on the {confirmation['split']} rows ({failed}), so the plan keeps "
            f"{plan['baseline']['name']}: a pick that does not hold on fresh rows is not adopted, and no other "
            "candidate is tried on them (that would spend the test rows' evidence twice).")


def _no_pick(plan: dict[str, Any]) -> str:
    counts: dict[str, int] = {}
    for candidate in plan["candidates"]:
        counts[candidate["status"]] = counts.get(candidate["status"], 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    return (f"no candidate met the acceptance rule on the {plan.get('select_on', 'val')} rows ({summary}), so the "
            f"plan keeps {plan['baseline']['name']}; each candidate's reason says which condition failed.")
