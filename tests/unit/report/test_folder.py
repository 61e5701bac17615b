"""Reading a plan folder: clear errors for what is not one, and missing pieces read as absent."""

from __future__ import annotations

import pytest

from personalab.errors import PersonalabError
from personalab.report import open_plan_folder
from personalab.report.folder import StepTime


def test_a_folder_without_plan_json_is_refused_with_the_way_out(tmp_path):
    with pytest.raises(PersonalabError, match=r"is not a plan run folder: it has no plan\.json.*personalab plan"):
        open_plan_folder(tmp_path)


def test_a_single_run_is_told_apart(tmp_path):
    (tmp_path / "personalizer.json").write_text("{}")
    with pytest.raises(PersonalabError, match="looks like one strategy's run"):
        open_plan_folder(tmp_path)


def test_a_missing_folder_and_a_file(tmp_path):
    with pytest.raises(PersonalabError, match="no such folder"):
        open_plan_folder(tmp_path / "nothing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(PersonalabError, match="is not a folder"):
        open_plan_folder(tmp_path / "file")


@pytest.mark.parametrize("content, message", [("{not json", "cannot be read"), ("[1, 2]", "not a plan record"),
                                              ('{"baseline": {}}', r"missing: candidates, acceptance, select_on")])
def test_a_broken_plan_json_is_refused(tmp_path, content, message):
    (tmp_path / "plan.json").write_text(content)
    with pytest.raises(PersonalabError, match=message):
        open_plan_folder(tmp_path)


def test_step_times_come_from_the_ledger(plan_dir):
    steps = open_plan_folder(plan_dir).step_times()
    assert steps[0] == StepTime("cluster", "inputs-kmeans-k2-8", 1.5, "done", 1)
    assert StepTime("train", "broken", 0.4, "failed", 1) in steps


def test_without_a_ledger_step_times_come_from_plan_json(plan_dir):
    (plan_dir / "ledger.sqlite").unlink()
    steps = open_plan_folder(plan_dir).step_times()
    assert StepTime("train", "fleet", 9.0) in steps and StepTime("evaluate", "unified", 0.6) in steps


def test_missing_artifacts_read_as_absent(plan_dir):
    folder = open_plan_folder(plan_dir)
    broken = folder.candidates[4]
    assert folder.comparison("broken", "val") is None and folder.training(broken) == {}
    assert folder.run_picture(broken) is None
    assert folder.comparison("fleet", "test")["per_persona"]["personas"][0]["persona_id"] == "p00"


def test_a_plan_json_of_the_old_format_says_to_rerun(tmp_path):
    (tmp_path / "plan.json").write_text('{"baseline": {}, "candidates": [], "acceptance": {}, "split": "test"}')
    with pytest.raises(PersonalabError, match="chose on the rows it reported; re-run the plan"):
        open_plan_folder(tmp_path)
