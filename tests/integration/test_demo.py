"""``personalab demo``: synthetic data -> a plan -> its decision and report files, and a
second run resumes instead of starting over (a tiny model and a two-strategy plan here; the
shipped playbook on MiniLM is what `make demo` runs)."""

from __future__ import annotations

import json

from personalab.cli.main import main
from personalab.data import load_dataset

PLAN = """\
data: unused                 # the demo points the plan at its own synthetic data
model: {name: tiny-classifier}
settings: {epochs: 1}
baseline: {strategy: unified}
candidates:
  - {name: per_cluster, strategy: per_cluster, options: {k: 2}}
stop: first_win
"""


def test_demo_runs_a_plan_on_synthetic_data_and_resumes(tmp_path, capsys):
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--plan", str(plan), "--personas", "8", "--quiet"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "plan" / "plan.json").read_text())
    assert [c["name"] for c in result["candidates"]] == ["per_cluster"]
    assert "report" in printed and (out / "plan" / "report.md").exists()
    # The evidence a reader needs, in the printed summary as in the report: the selection on
    # validation rows, the test rows, persona-level intervals and the references.
    assert "selection (val rows):" in printed and "test rows (not used for the decision)" in printed
    assert "95% CI" in printed and "p (persona)" in printed
    assert "logistic regression on text embeddings + persona id" in printed
    assert "each persona's majority label" in printed
    report = (out / "plan" / "report.html").read_text()
    assert "Confirmation on the test rows" in report and "Selection (val rows)" in report
    assert "reference (no adapter)" in report
    assert main(["demo", "--out", str(out), "--plan", str(plan), "--personas", "8", "--quiet"]) == 0
    assert json.loads((out / "plan" / "plan.json").read_text())["decision"] == result["decision"]


def test_demo_without_its_plan_file_is_a_clear_error(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--plan", str(tmp_path / "missing.yaml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_demo_with_leniency_makes_individually_leaning_personas_and_keeps_its_data_apart(tmp_path, capsys):
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--plan", str(plan), "--personas", "8", "--leniency", "1",
                 "--quiet"]) == 0
    assert load_dataset(out / "data").spec.name.endswith("-len1")
    capsys.readouterr()
    # The same folder asked for other data: a clear error, nothing overwritten.
    assert main(["demo", "--out", str(out), "--plan", str(plan), "--personas", "8", "--quiet"]) == 2
    assert "other settings" in capsys.readouterr().err
