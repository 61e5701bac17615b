"""Which trained run a folder means: a run directory is itself; a plan folder means the run of
the strategy its plan chose (``plan.json``'s decision), or, with ``strategy``, the run of
another strategy the plan trained. ``personalab predict``, ``export`` and ``serve`` all take
either, so that the folder ``personalab plan`` (or ``demo``) printed is enough to use it.

A plan that kept its baseline is served by the baseline's run: that is what it decided.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personalab.errors import PersonalabError
from personalab.plan.record import PLAN_JSON

PERSONALIZER = "personalizer.json"  # what marks a complete run (``personalab.run.rundir``)


@dataclass(frozen=True)
class ChosenRun:
    """The run directory to use, and in words why this one (empty for a plain run)."""

    path: Path
    note: str = ""


def chosen_run(folder: str | Path, strategy: str | None = None) -> ChosenRun:
    """The trained run ``folder`` stands for: itself when it is a run, else the run its plan
    chose, or the run of the plan's ``strategy`` (a candidate's or the baseline's name)."""
    folder = Path(folder)
    if (folder / PERSONALIZER).is_file():
        if strategy:
            raise PersonalabError(f"--strategy picks one of a plan's runs; {folder} is a single trained run "
                                  "(leave --strategy out, or give the plan folder)")
        return ChosenRun(folder)
    if not (folder / PLAN_JSON).is_file():
        raise PersonalabError(f"{folder} is neither a trained run (no {PERSONALIZER}) nor a plan folder (no "
                              f"{PLAN_JSON}); train one with `personalab train` or `personalab plan`")
    plan = _read_plan(folder)
    return _named(folder, plan, strategy) if strategy else _decided(folder, plan)


def trained_strategies(folder: Path, plan: dict[str, Any]) -> list[str]:
    """The names of the plan's baseline and candidates whose runs are complete, in plan order."""
    return [entry["name"] for entry in _entries(plan) if (folder / entry["run"] / PERSONALIZER).is_file()]


def _decided(folder: Path, plan: dict[str, Any]) -> ChosenRun:
    decision = plan.get("decision")
    trained = trained_strategies(folder, plan)
    if not decision:
        raise PersonalabError(f"the plan in {folder} has not decided yet (status {plan.get('status')}); finish it "
                              f"with `personalab plan`, or pass --strategy NAME for a run it trained: "
                              f"{_listing(trained)}")
    name = decision["chosen"]
    entry = _entry(plan, name)
    if entry is None or name not in trained:
        raise PersonalabError(f"the plan in {folder} chose {name!r}, but its run {folder / 'runs' / name} is missing "
                              f"or incomplete; rerun the plan to resume it, or pass --strategy NAME: "
                              f"{_listing(trained)}")
    why = ("the strategy the plan chose" if decision.get("accepted")
           else f"the baseline, which the plan kept ({decision.get('summary', 'no candidate confirmed')})")
    return ChosenRun(folder / entry["run"], f"{name} ({entry['strategy']}): {why}")


def _named(folder: Path, plan: dict[str, Any], strategy: str) -> ChosenRun:
    trained = trained_strategies(folder, plan)
    entry = _entry(plan, strategy)
    if entry is None or strategy not in trained:
        close = difflib.get_close_matches(strategy, trained, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        state = "was not trained (or not finished)" if entry is not None else "is not in the plan"
        raise PersonalabError(f"--strategy {strategy!r} {state} in {folder} (trained: {_listing(trained)}){hint}")
    chosen = (plan.get("decision") or {}).get("chosen")
    why = ("the strategy the plan chose" if strategy == chosen
           else f"asked for with --strategy (the plan chose {chosen})")
    return ChosenRun(folder / entry["run"], f"{strategy} ({entry['strategy']}): {why}")


def _read_plan(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / PLAN_JSON).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise PersonalabError(f"cannot read {folder / PLAN_JSON}: {error}") from None


def _entries(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan["baseline"], *plan.get("candidates", [])]


def _entry(plan: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((entry for entry in _entries(plan) if entry["name"] == name), None)


def _listing(names: list[str]) -> str:
    return ", ".join(names) if names else "none yet"
