"""``chosen_run``: which trained run a run folder or a plan folder stands for, on plan.json
files written here (no training): the plan's pick, the baseline it kept, ``--strategy``, and
every way of asking for a run that is not there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personalab.errors import PersonalabError
from personalab.plan.chosen import chosen_run


def _entry(name: str, strategy: str) -> dict:
    return {"name": name, "strategy": strategy, "run": f"runs/{name}"}


def make_plan(root: Path, decision: dict | None, trained=("unified", "per_cluster", "ensemble-0.6")) -> Path:
    plan = {"status": "done" if decision else "running", "decision": decision,
            "baseline": _entry("unified", "unified"),
            "candidates": [_entry("per_cluster", "per_cluster"), _entry("ensemble-0.6", "ensemble"),
                           _entry("moe", "moe")]}
    root.mkdir(parents=True)
    (root / "plan.json").write_text(json.dumps(plan))
    for name in trained:
        (root / "runs" / name).mkdir(parents=True)
        (root / "runs" / name / "personalizer.json").write_text("{}")
    return root


ACCEPTED = {"chosen": "per_cluster", "accepted": True, "summary": "confirmed on the test rows"}
KEPT = {"chosen": "unified", "accepted": False, "summary": "no candidate accepted, baseline kept"}


def test_a_run_folder_is_itself(tmp_path):
    run = make_plan(tmp_path / "plan", ACCEPTED) / "runs" / "unified"
    assert chosen_run(run).path == run and chosen_run(run).note == ""
    with pytest.raises(PersonalabError, match="single trained run"):
        chosen_run(run, "per_cluster")


def test_a_plan_folder_is_the_run_its_plan_chose_and_says_so(tmp_path):
    plan = make_plan(tmp_path / "plan", ACCEPTED)
    chosen = chosen_run(plan)
    assert chosen.path == plan / "runs" / "per_cluster"
    assert chosen.note == "per_cluster (per_cluster): the strategy the plan chose"


def test_a_plan_that_kept_its_baseline_is_the_baseline_run(tmp_path):
    plan = make_plan(tmp_path / "plan", KEPT)
    chosen = chosen_run(plan)
    assert chosen.path == plan / "runs" / "unified" and "the baseline, which the plan kept" in chosen.note


def test_strategy_picks_another_trained_run(tmp_path):
    plan = make_plan(tmp_path / "plan", ACCEPTED)
    chosen = chosen_run(plan, "ensemble-0.6")
    assert chosen.path == plan / "runs" / "ensemble-0.6"
    assert "asked for with --strategy (the plan chose per_cluster)" in chosen.note
    assert chosen_run(plan, "unified").path == plan / "runs" / "unified"


def test_unknown_or_untrained_strategies_name_the_trained_ones(tmp_path):
    plan = make_plan(tmp_path / "plan", ACCEPTED)
    with pytest.raises(PersonalabError, match=r"is not in the plan .*trained: unified, per_cluster, ensemble-0.6\)"
                                              r"; did you mean per_cluster\?"):
        chosen_run(plan, "per_clusters")
    with pytest.raises(PersonalabError, match="'moe' was not trained"):
        chosen_run(plan, "moe")


def test_a_plan_without_a_decision_or_without_the_chosen_run_is_a_clear_error(tmp_path):
    with pytest.raises(PersonalabError, match="has not decided yet .*--strategy NAME .*unified"):
        chosen_run(make_plan(tmp_path / "running", None))
    with pytest.raises(PersonalabError, match="chose 'per_cluster', but its run .* is missing"):
        chosen_run(make_plan(tmp_path / "partial", ACCEPTED, trained=("unified",)))


def test_a_folder_that_is_neither_is_a_clear_error(tmp_path):
    with pytest.raises(PersonalabError, match="neither a trained run .* nor a plan folder"):
        chosen_run(tmp_path)
    (tmp_path / "plan.json").write_text("{not json")
    with pytest.raises(PersonalabError, match="cannot read"):
        chosen_run(tmp_path)
