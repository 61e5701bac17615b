"""Reading a plan's run folder for the report: ``plan.json`` (every number and the decision),
each candidate's full comparison by split (``compare/<split>/<name>.json``, with the
per-persona rows), each
run's learning curves (``runs/<name>/training.json``), the step times of the ledger, and the
cluster pictures. The folder is only read, never written.

A piece that is missing (a candidate skipped, failed or not run; a plan still running or
killed) reads as ``None`` or empty, so that a report renders at any point of a plan's life.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personalab.errors import PersonalabError
PLAN_JSON = "plan.json"  # = personalab.plan.record.PLAN_JSON; importing the planner would pull in torch

LEDGER = "ledger.sqlite"
STEP_KINDS = ("cluster", "train", "evaluate", "compare", "references")


@dataclass(frozen=True)
class StepTime:
    """One ledgered step: ``kind`` of work on ``name`` (a strategy, or a clustering)."""

    kind: str
    name: str
    seconds: float | None
    status: str = "done"
    attempts: int = 1


@dataclass(frozen=True)
class PlanFolder:
    root: Path
    plan: dict[str, Any]

    @property
    def baseline(self) -> dict[str, Any]:
        return self.plan["baseline"]

    @property
    def candidates(self) -> list[dict[str, Any]]:
        return self.plan["candidates"]

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The baseline, then the candidates in the order tried."""
        return [self.baseline, *self.candidates]

    @property
    def chosen(self) -> str | None:
        return (self.plan.get("decision") or {}).get("chosen")

    @property
    def select_on(self) -> str:
        return self.plan.get("select_on", "val")

    def comparison(self, name: str, split: str) -> dict[str, Any] | None:
        """``compare/<split>/<name>.json``: the candidate against the baseline, every persona included."""
        return _read_json(self.root / "compare" / split / f"{name}.json")

    def training(self, entry: dict[str, Any]) -> dict[str, Any]:
        """What the run's training recorded (learning curves under ``training``), or ``{}``."""
        return _read_json(self._run(entry) / "training.json") or {}

    def run_picture(self, entry: dict[str, Any]) -> bytes | None:
        return _read_bytes(self._run(entry) / "clusters.png")

    def picture(self, relative: str) -> bytes | None:
        return _read_bytes(self.root / relative)

    def step_times(self) -> list[StepTime]:
        """Every step's time from the ledger; from ``plan.json`` when the ledger cannot be read."""
        return _ledger_steps(self.root / LEDGER) or _recorded_steps(self.entries)

    def _run(self, entry: dict[str, Any]) -> Path:
        return self.root / (entry.get("run") or f"runs/{entry['name']}")


def open_plan_folder(root: str | Path) -> PlanFolder:
    """The plan folder at ``root``; a ``PersonalabError`` saying what is wrong when it is not one."""
    root = Path(root)
    if not root.exists():
        raise PersonalabError(f"{root}: no such folder")
    if not root.is_dir():
        raise PersonalabError(f"{root} is not a folder; give the RUN_DIR of a plan "
                              "(`personalab plan CONFIG --out RUN_DIR`)")
    path = root / PLAN_JSON
    if not path.exists():
        hint = (" (it looks like one strategy's run; `personalab evaluate` and `personalab compare` report on those)"
                if (root / "personalizer.json").exists() else "")
        raise PersonalabError(f"{root} is not a plan run folder: it has no {PLAN_JSON}{hint}; "
                              f"run `personalab plan CONFIG --out {root}` first")
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PersonalabError(f"{path} cannot be read: {error}") from None
    if not isinstance(plan, dict):
        raise PersonalabError(f"{path} is not a plan record (a JSON object is expected)")
    if "split" in plan and "select_on" not in plan:
        raise PersonalabError(f"{path} was written by an earlier personalab, which chose on the rows it reported; "
                              "re-run the plan (`personalab plan CONFIG --out RUN_DIR`) to choose on validation "
                              "rows and confirm on test")
    missing = [key for key in ("baseline", "candidates", "acceptance", "select_on") if key not in plan]
    if missing:
        raise PersonalabError(f"{path} is not a plan record (missing: {', '.join(missing)})")
    return PlanFolder(root, plan)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _read_bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _ledger_steps(path: Path) -> list[StepTime]:
    if not path.exists():
        return []
    try:
        # Read-only: a report never blocks (or writes to) the plan that may be running.
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)) as db:
            rows = db.execute("SELECT kind, name, seconds, status, attempts FROM steps ORDER BY started, step")
            return [StepTime(*row) for row in rows.fetchall()]
    except sqlite3.Error:
        return []


def _recorded_steps(entries: list[dict[str, Any]]) -> list[StepTime]:
    return [StepTime(kind, entry["name"], seconds)
            for entry in entries for kind, seconds in (entry.get("seconds") or {}).items()]
