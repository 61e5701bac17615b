"""The decision a plan takes, in words: which strategy, which branch of the tree, and why —
from the candidates' statuses and verdicts in ``plan.json``."""

from __future__ import annotations

from typing import Any

FALLBACK = "fallback: keep the baseline"


def describe_decision(plan: dict[str, Any], winner: str | None) -> dict[str, Any]:
    """``{"chosen", "strategy", "branch", "accepted", "why", "trail"}``; ``trail`` lists every
    candidate's outcome in the order tried."""
    baseline, candidates = plan["baseline"], plan["candidates"]
    trail = [f"{c['name']}: {c['status']}" + (f" ({c['reason']})" if c["reason"] else "") for c in candidates]
    if winner is None:
        return {"chosen": baseline["name"], "strategy": baseline["strategy"], "branch": FALLBACK,
                "accepted": False, "why": _no_winner(baseline, candidates), "trail": trail}
    entry = next(c for c in candidates if c["name"] == winner)
    accepted = [c for c in candidates if c["status"] == "accepted"]
    why = f"{winner} beat {baseline['name']} on the {plan['split']} split: " + "; ".join(
        check["text"] for check in entry["verdict"]["checks"])
    if plan["stop"] == "all" and len(accepted) > 1:
        why += f" — the largest gain of the {len(accepted)} accepted candidates"
    elif plan["stop"] == "first_win":
        why += " — the first candidate accepted, in cost order (stop: first_win)"
    return {"chosen": winner, "strategy": entry["strategy"], "branch": entry["branch"] or winner,
            "accepted": True, "why": why, "trail": trail}


def _no_winner(baseline: dict[str, Any], candidates: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for candidate in candidates:
        counts[candidate["status"]] = counts.get(candidate["status"], 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    return (f"no candidate met the acceptance rule ({summary}), so the plan keeps {baseline['name']}; "
            "each candidate's reason says which condition failed")
