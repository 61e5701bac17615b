"""``RUN_DIR/plan.json``: what the plan did and decided, rewritten atomically after every step
so that it is always complete and readable, even while the plan runs or after it was killed.

    status        running | done | failed
    spec          the plan as resolved (every default filled in)
    baseline      its metrics (accuracy, macro-F1) and step times
    candidates    in the order tried: status (pending, accepted, rejected, skipped, not run,
                  failed), reason, metrics, the paired comparison with the baseline (difference,
                  CI, McNemar p, personas better / equal / worse), the verdict, step times
    clustering    the clusterings the gates looked at
    decision      the strategy chosen, the branch of the tree, and why
    budget        the time budget and how much of it the steps used
"""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from personalab.plan.artifacts import write_json
from personalab.plan.spec import Candidate, PlanSpec

PLAN_JSON = "plan.json"
FORMAT = 1


def split_note(split: str) -> str:
    if split == "test":
        return ("The decision is measured on the test split, and the table reports the same test split, as "
                "BENCHMARK.md asks (every strategy against the baseline on the same test rows). Choosing on "
                "the rows that report the result makes the winner's gain optimistic, the more so the more "
                "candidates are tried (stop: all); use `split: val` to choose on validation rows instead.")
    return (f"The decision is measured on the {split} split; its numbers are not a test-set estimate. "
            "Evaluate the chosen run on the test split for the figure to report.")


class PlanRecord:
    """The content of ``plan.json`` in memory, and writing it."""

    def __init__(self, spec: PlanSpec, out: Path, versions: dict[str, Any]):
        self.path = Path(out) / PLAN_JSON
        self.started = time.perf_counter()
        self.data: dict[str, Any] = {
            "format": FORMAT, "status": "running", "source": spec.source, "description": spec.description,
            "started": _now(), "updated": None, "finished": None, "split": spec.split, "stop": spec.stop,
            "acceptance": asdict(spec.acceptance), "spec": spec.to_dict(), "versions": versions,
            "baseline": _entry(spec.baseline), "candidates": [_entry(c) for c in spec.candidates],
            "clustering": {}, "decision": None, "notes": [split_note(spec.split)],
            "budget": {"minutes": spec.time_budget_minutes, "spent_seconds": 0.0, "exhausted": False},
            "wall_seconds": 0.0, "compute_seconds": 0.0, "error": None,
        }

    def entry(self, name: str) -> dict[str, Any]:
        if name == self.data["baseline"]["name"]:
            return self.data["baseline"]
        return next(c for c in self.data["candidates"] if c["name"] == name)

    def save(self, spent_seconds: float) -> None:
        self.data["updated"] = _now()
        self.data["wall_seconds"] = time.perf_counter() - self.started
        self.data["compute_seconds"] = spent_seconds
        self.data["budget"]["spent_seconds"] = spent_seconds
        write_json(self.path, self.data)

    def finish(self, status: str, spent_seconds: float, error: str | None = None) -> None:
        self.data.update(status=status, finished=_now(), error=error)
        self.save(spent_seconds)


def _entry(candidate: Candidate) -> dict[str, Any]:
    return {
        "name": candidate.name, "strategy": candidate.strategy, "preset": candidate.preset,
        "options": dict(candidate.options), "settings": dict(candidate.settings), "branch": candidate.branch,
        "gate": asdict(candidate.gate) if candidate.gate else None, "run": f"runs/{candidate.name}",
        "status": "pending", "reason": None, "training": None, "metrics": None, "comparison": None,
        "verdict": None, "seconds": {},
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
