"""``RUN_DIR/plan.json``: what the plan did and decided, rewritten atomically after every step
so that it is always complete and readable, even while the plan runs or after it was killed.

    status        running | done | failed
    spec          the plan as resolved (every default filled in)
    split_by      how the dataset's rows were split: row, item (whole inputs held out) or persona
    select_on     the rows candidates are chosen on (val by default); the pick is confirmed on test
    metric        the per-row score every comparison is by (accuracy, or e.g. rougeL for generation)
    baseline      its metrics by split (accuracy and macro-F1, or ROUGE and BLEU) and step times
    candidates    in the order tried: status (pending, accepted = met the rule on the select_on
                  rows, rejected, skipped, not run, failed), reason, metrics by split, the
                  persona-level comparison with the baseline by split (difference, CI, p,
                  personas better / equal / worse; on test also the harm check), the selection
                  verdict, step times
    references    the baselines that need no adapter: metrics and comparison with the baseline
    confirmation  the pick's one test on the test rows: comparison, repeats, verdict, confirmed
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
FORMAT = 2


def selection_notes(select_on: str) -> list[str]:
    """What a reader must know about where the decision was measured."""
    if select_on == "test":
        return ["Candidates were screened and chosen on the test rows (`select_on: test`), the same rows "
                "that confirm and report the result: the chosen gain is optimistic, the more so the more "
                "candidates were tried, and the plan's chance of a false acceptance is no longer bounded by "
                "alpha. The default, `select_on: val`, chooses on validation rows and confirms once on test."]
    return [f"Candidates are screened and chosen on the {select_on} rows; the pick is confirmed once against "
            "the baseline on the test rows, so the plan's chance of adopting a candidate that is no better "
            "stays at most alpha however many candidates it tries. The test numbers of the candidates not "
            "picked are shown for information and were not used for the decision.",
            "The validation rows also drive early stopping and the weights tuned on validation (ensemble "
            "weight, LoraHub weights, temperatures), for the baseline and every candidate alike; their "
            "validation scores are therefore slightly optimistic for all of them, not for one."]


class PlanRecord:
    """The content of ``plan.json`` in memory, and writing it."""

    def __init__(self, spec: PlanSpec, out: Path, versions: dict[str, Any], metric: str = "accuracy"):
        self.path = Path(out) / PLAN_JSON
        self.started = time.perf_counter()
        self.data: dict[str, Any] = {
            "format": FORMAT, "status": "running", "source": spec.source, "description": spec.description,
            "started": _now(), "updated": None, "finished": None, "select_on": spec.select_on,
            "repeats": spec.repeats, "stop": spec.stop, "split_by": split_setting(spec.data), "metric": metric,
            "acceptance": asdict(spec.acceptance), "spec": spec.to_dict(), "versions": versions,
            "baseline": _entry(spec.baseline), "candidates": [_entry(c) for c in spec.candidates],
            "references": {}, "confirmation": None, "clustering": {}, "decision": None,
            "notes": selection_notes(spec.select_on),
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
        "status": "pending", "reason": None, "training": None, "metrics": {}, "comparisons": {},
        "verdict": None, "seconds": {},
    }


def split_setting(data: str) -> str:
    """How the dataset's rows were split (``split_by`` in its dataset.yaml; ``row`` if unsaid)."""
    from personalab.data.io import SPEC_FILE
    from personalab.data.yaml_reader import read_yaml_mapping

    # A dataset.yaml that cannot be read is reported where the data is loaded, not here.
    spec, _, _ = read_yaml_mapping(Path(data) / SPEC_FILE)
    return str((spec or {}).get("split_by") or "row")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
