"""The plan runner on scripted steps: no training, no model — each candidate's comparison with
the baseline is given by the test, so that the branch order, gates, budget, stopping and
resuming are checked exactly and in milliseconds."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from personalab.errors import PersonalabError
from personalab.plan import Steps, parse_plan, run_plan
from personalab.plan.ledger import Ledger


class Script:
    """``results[name] = (difference, p_value)`` of candidate ``name`` against the baseline on
    the validation rows; ``test[name] = (difference, p_value, harm_p)`` on the test rows
    (default: the validation figures, and a harm check that finds nothing)."""

    def __init__(self, results: dict, silhouette: float = 0.3, slow: dict | None = None,
                 fail: dict | None = None, test: dict | None = None, metric: str = "accuracy"):
        self.results, self.silhouette, self.test = results, silhouette, test or {}
        self.slow = slow or {}  # name -> seconds its training takes, on the scripted clock
        self.now = 0.0  # the scripted clock: only scripted training moves it
        self.fail = fail or {}  # name -> exception its training raises
        self.calls: list[tuple[str, str]] = []
        self.task = "generation" if metric != "accuracy" else "classification"  # what evaluate pretends
        self.metrics: set[str] = set()  # what the comparisons were asked to compare by

    def steps(self) -> Steps:
        return Steps(cluster=self.cluster, train=self.train, evaluate=self.evaluate, compare=self.compare,
                     references=self.references, clock=lambda: self.now)

    def cluster(self, config, grouping, folder: Path) -> dict:
        self.calls.append(("cluster", folder.name))
        folder.mkdir(parents=True, exist_ok=True)
        return {"silhouette": self.silhouette, "quality": "poor", "k": 3, "grouping": grouping}

    def train(self, config, run_dir: Path, reuse, progress) -> dict:
        self.calls.append(("train", run_dir.name))
        if run_dir.name in self.fail:
            raise self.fail[run_dir.name]
        self.now += self.slow.get(run_dir.name, 0)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "personalizer.json").write_text(json.dumps(config.to_dict(), sort_keys=True))
        return {"reused": [Path(r).name for r in reuse], "seed": config.seed}

    def evaluate(self, run_dir: Path, split: str, progress) -> dict:
        self.calls.append(("evaluate", f"{run_dir.name}@{split}"))
        folder = run_dir / "eval" / split
        folder.mkdir(parents=True, exist_ok=True)
        # The "predictions" follow from what was trained, as real ones would.
        (folder / "predictions.jsonl").write_text((run_dir / "personalizer.json").read_text())
        (folder / "metrics.json").write_text("{}")
        difference = self.figures(run_dir.name.partition(".seed")[0], split)[0]
        if self.task == "generation":  # what evaluate returns for generated text
            return {"n": 100, "rouge1": 0.3 + difference, "rougeL": 0.2 + difference, "bleu": 5.0,
                    "own_vs_other": {"share": 0.55, "rows": 40}}
        return {"n": 100, "accuracy": 0.6 + difference, "macro_f1": 0.55 + difference}

    def compare(self, baseline: Path, candidate: Path, split: str, rule, flag_split, metric) -> dict:
        self.calls.append(("compare", f"{candidate.name}@{split}"))
        self.metrics.add(metric)
        difference, p, harm_p = self.figures(candidate.name.partition(".seed")[0], split)
        harm = None if flag_split is None else {"flag_split": flag_split, "n_flagged": 3, "n_tested": 3,
                                                 "flagged_difference": -0.01, "p_value": harm_p, "alpha": 0.05,
                                                 "harmful": harm_p < 0.05}
        return comparison(difference, p, split, harm)

    def references(self, config, folder: Path, splits) -> dict:
        self.calls.append(("references", folder.name))
        for split in splits:
            (folder / "majority" / "eval" / split).mkdir(parents=True, exist_ok=True)
        return {"majority": {split: {"n": 100, "accuracy": 0.5, "macro_f1": 0.33} for split in splits}}

    def figures(self, name: str, split: str) -> tuple[float, float, float]:
        if name == "majority":
            return (-0.1, 0.001, 1.0)
        if split == "test" and name in self.test:
            return self.test[name]
        return (*self.results.get(name, (0.0, 1.0)), 1.0)

    def names(self, kind: str) -> list[str]:
        return [name for k, name in self.calls if k == kind]


def comparison(difference: float, p: float, split: str = "val", harm: dict | None = None) -> dict:
    """A ``compare_runs``-shaped result."""
    return {
        "split": split,
        "overall": {"n": 100, "n_personas": 10, "score_a": 0.6, "score_b": 0.6 + difference,
                    "difference": difference, "p_value": p, "ci_low": difference - 0.05, "ci_high": difference + 0.05,
                    "confidence": 0.95, "b_better": 10, "a_better": 5, "mcnemar_p": p, "ci_method": "BCa",
                    "n_resamples": 99, "seed": 0},
        "per_persona": {"n_personas": 10, "improved": 6, "equal": 2, "worse": 2, "personas": []},
        "harm": harm,
    }


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A folder standing for the dataset (the scripted steps never read it)."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "dataset.yaml").write_text("name: scripted\n")
    return folder


@pytest.fixture
def make_spec(data_dir):
    """``make_spec(candidates=[...], **top_level_keys)`` -> a checked ``PlanSpec``."""

    def make(candidates, **keys):
        plan = {"data": str(data_dir), "model": {"name": "tiny-classifier"}, "baseline": {"strategy": "unified"},
                "candidates": candidates, **keys}
        return parse_plan(plan, "scripted.yaml")

    return make


def candidate(name: str, strategy: str = "per_cluster", **keys) -> dict:
    return {"name": name, "strategy": strategy, **keys}


def statuses(result) -> dict[str, str]:
    return {c["name"]: c["status"] for c in result.plan["candidates"]}


def rows(out: Path) -> dict:
    ledger = Ledger(out / "ledger.sqlite")
    try:
        return {row.step: row for row in ledger.rows()}
    finally:
        ledger.close()


# ----- the tree: order, stopping, choosing, confirming -------------------------------------------


def test_first_win_stops_at_the_first_accepted_candidate(make_spec, tmp_path):
    script = Script({"a": (0.01, 0.40), "b": (0.03, 0.01), "c": (0.08, 0.001)})
    spec = make_spec([candidate("a"), candidate("b"), candidate("c")], stop="first_win")
    result = run_plan(spec, tmp_path / "out", progress=False, steps=script.steps())
    assert script.names("train") == ["unified", "a", "b"]  # in order; c never trained
    assert statuses(result) == {"a": "rejected", "b": "accepted", "c": "not run"}
    assert "b was accepted first" in result.candidate("c")["reason"]
    assert result.decision["chosen"] == "b" and result.decision["accepted"]
    assert "persona-level p = 0.4 >= alpha 0.05" in result.candidate("a")["reason"]


def test_candidates_are_judged_on_validation_and_every_one_is_evaluated_on_test(make_spec, tmp_path):
    # a looks good on test but not on validation: the plan must not pick it for its test rows.
    script = Script({"a": (0.01, 0.40), "b": (0.03, 0.01)}, test={"a": (0.09, 0.0001, 1.0)})
    result = run_plan(make_spec([candidate("a"), candidate("b")]), tmp_path / "out", progress=False,
                      steps=script.steps())
    assert statuses(result) == {"a": "rejected", "b": "accepted"}
    assert script.names("evaluate") == ["unified@val", "unified@test", "a@val", "a@test", "b@val", "b@test"]
    assert result.candidate("a")["comparisons"]["test"]["overall"]["difference"] == 0.09  # shown, not used
    confirmation = result.plan["confirmation"]
    assert confirmation["candidate"] == "b" and confirmation["confirmed"] and confirmation["split"] == "test"
    assert result.decision["chosen"] == "b" and "picked on the val rows" in result.decision["why"]


def test_a_pick_that_fails_its_confirmation_keeps_the_baseline(make_spec, tmp_path):
    script = Script({"a": (0.04, 0.01), "b": (0.08, 0.001)}, test={"a": (0.01, 0.3, 1.0)})
    result = run_plan(make_spec([candidate("a"), candidate("b")]), tmp_path / "out", progress=False,
                      steps=script.steps())
    assert statuses(result) == {"a": "accepted", "b": "not run"}  # no second pick: the test rows are spent
    assert not result.plan["confirmation"]["confirmed"]
    assert result.decision["chosen"] == "unified" and not result.decision["accepted"]
    assert result.decision["picked"] == "a" and "NOT confirmed on the test rows" in result.decision["why"]
    assert "persona-level p = 0.3 >= alpha 0.05" in result.decision["why"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "was picked on the val rows but not confirmed" in report and "NOT confirmed" in report


def test_a_pick_that_harms_the_personas_it_looked_worse_for_is_not_confirmed(make_spec, tmp_path):
    script = Script({"a": (0.04, 0.01)}, test={"a": (0.03, 0.01, 0.002)})
    result = run_plan(make_spec([candidate("a")]), tmp_path / "out", progress=False, steps=script.steps())
    assert result.plan["confirmation"]["comparison"]["harm"]["harmful"]
    assert result.decision["chosen"] == "unified"
    assert "one-sided p = 0.002 < 0.05" in result.decision["why"]
    off = run_plan(make_spec([candidate("a")], acceptance={"harm_alpha": None}), tmp_path / "off", progress=False,
                   steps=Script({"a": (0.04, 0.01)}, test={"a": (0.03, 0.01, 0.002)}).steps())
    assert off.decision["chosen"] == "a"


def test_select_on_test_picks_on_the_test_rows_and_warns(make_spec, tmp_path):
    script = Script({"a": (0.01, 0.40), "b": (0.03, 0.01)}, test={"a": (0.09, 0.0001, 1.0)})
    result = run_plan(make_spec([candidate("a"), candidate("b")], select_on="test"), tmp_path / "out",
                      progress=False, steps=script.steps())
    assert statuses(result) == {"a": "accepted", "b": "not run"} and result.decision["chosen"] == "a"
    assert "Warning: candidates were chosen on the test rows" in result.decision["why"]
    assert "optimistic" in (tmp_path / "out" / "report.md").read_text()


def test_all_runs_every_candidate_and_picks_the_largest_gain(make_spec, tmp_path):
    script = Script({"a": (0.03, 0.01), "b": (0.08, 0.001), "c": (0.08, 0.002), "d": (0.2, 0.2)})
    spec = make_spec([candidate(n) for n in "abcd"], stop="all")
    result = run_plan(spec, tmp_path / "out", progress=False, steps=script.steps())
    assert [n for n in script.names("compare") if n.endswith("@val") and n != "majority@val"] == [
        "a@val", "b@val", "c@val", "d@val"]
    assert statuses(result) == {"a": "accepted", "b": "accepted", "c": "accepted", "d": "rejected"}
    assert result.decision["chosen"] == "b"  # ties go to the one tried first (cheaper)
    assert "largest gain of the 3 accepted" in result.decision["why"]


def test_no_winner_keeps_the_baseline_and_says_why(make_spec, tmp_path):
    script = Script({"a": (-0.02, 0.01), "b": (0.05, 0.2)})
    result = run_plan(make_spec([candidate("a"), candidate("b")]), tmp_path / "out", progress=False,
                      steps=script.steps())
    assert statuses(result) == {"a": "rejected", "b": "rejected"}
    assert "gain -2.00 pts < minimum +0.00 pts" in result.candidate("a")["reason"]
    assert result.plan["confirmation"] is None
    assert result.decision["chosen"] == "unified" and result.decision["branch"] == "fallback: keep the baseline"
    assert (tmp_path / "out" / "report.md").read_text().count("rejected") >= 2


def test_references_are_compared_with_the_baseline_and_the_choice(make_spec, tmp_path):
    script = Script({"a": (0.04, 0.01)})
    result = run_plan(make_spec([candidate("a")]), tmp_path / "out", progress=False, steps=script.steps())
    reference = result.plan["references"]["majority"]
    assert reference["label"] == "majority label" and reference["metrics"]["test"]["accuracy"] == 0.5
    assert set(reference["comparisons"]) == {"val", "test"}
    assert result.decision["reference"]["name"] == "majority"
    assert "The best reference that needs no adapter, majority label" in result.decision["why"]
    assert script.names("compare").count("a@test") == 2  # against the baseline, and against the reference


def test_repeats_train_the_baseline_and_the_pick_under_more_seeds(make_spec, tmp_path):
    script = Script({"a": (0.04, 0.01), "b": (0.05, 0.01)})
    spec = make_spec([candidate("a"), candidate("b")], repeats=3, seed=5,
                     acceptance={"require_every_repeat": True})
    result = run_plan(spec, tmp_path / "out", progress=False, steps=script.steps())
    assert script.names("train") == ["unified", "a", "unified.seed6", "a.seed6", "unified.seed7", "a.seed7"]
    repeats = result.plan["confirmation"]["repeats"]
    assert [r["seed"] for r in repeats] == [5, 6, 7] and all(r["difference"] == 0.04 for r in repeats)
    assert result.decision["chosen"] == "a" and "gain under every repeat seed" in result.decision["why"]
    assert "Repeats" in (tmp_path / "out" / "report.md").read_text()


def test_later_candidates_reuse_every_earlier_run(make_spec, tmp_path):
    script = Script({"a": (0.0, 1.0), "b": (0.0, 1.0)})
    result = run_plan(make_spec([candidate("a"), candidate("b")]), tmp_path / "out", progress=False,
                      steps=script.steps())
    assert result.candidate("a")["training"]["reused"] == ["unified"]
    assert result.candidate("b")["training"]["reused"] == ["unified", "a"]


# ----- gates, budget, failures ---------------------------------------------------------------------


def test_a_failing_gate_skips_the_candidate_with_the_reason(make_spec, tmp_path):
    script = Script({"a": (0.05, 0.01), "b": (0.05, 0.01), "c": (0.05, 0.01)}, silhouette=0.022)
    spec = make_spec([candidate("a", gate={"min_silhouette": 0.1}), candidate("b", gate={"min_silhouette": 0.1}),
                      candidate("c", strategy="per_persona")], stop="all")
    result = run_plan(spec, tmp_path / "out", progress=False, steps=script.steps())
    assert statuses(result) == {"a": "skipped", "b": "skipped", "c": "accepted"}
    assert "gate: silhouette 0.022 < 0.1" in result.candidate("a")["reason"]
    assert script.names("train") == ["unified", "c"]
    assert script.names("cluster") == ["inputs-kmeans-k2-8"]  # the same clustering is made once
    assert result.plan["clustering"]["inputs-kmeans-k2-8"]["silhouette"] == 0.022


def test_a_gate_clusters_with_the_candidates_own_options(make_spec, tmp_path):
    script = Script({"a": (0.0, 1.0)}, silhouette=0.5)
    spec = make_spec([candidate("a", options={"k": 4, "source": "profile"}, gate={"min_silhouette": 0.1})])
    result = run_plan(spec, tmp_path / "out", progress=False, steps=script.steps())
    assert script.names("cluster") == ["profile-kmeans-k4"]
    assert statuses(result) == {"a": "rejected"}


def test_an_exhausted_time_budget_skips_the_remaining_candidates(make_spec, tmp_path):
    script = Script({"a": (0.0, 1.0), "b": (0.0, 1.0), "c": (0.0, 1.0)}, slow={"a": 90.0})
    spec = make_spec([candidate(n) for n in "abc"], time_budget_minutes=1.0)
    result = run_plan(spec, tmp_path / "out", progress=False, steps=script.steps())
    assert statuses(result) == {"a": "rejected", "b": "skipped", "c": "skipped"}
    assert result.candidate("b")["reason"] == "time budget used up: the steps before it took 1.5 min of the 1 min allowed"
    assert result.plan["budget"]["exhausted"]
    assert "time budget" in (tmp_path / "out" / "report.md").read_text()


def test_a_candidate_that_cannot_run_is_recorded_and_the_tree_goes_on(make_spec, tmp_path):
    script = Script({"b": (0.05, 0.01)}, fail={"a": PersonalabError("too few personas to cluster")})
    result = run_plan(make_spec([candidate("a"), candidate("b")]), tmp_path / "out", progress=False,
                      steps=script.steps())
    assert statuses(result) == {"a": "failed", "b": "accepted"}
    assert result.candidate("a")["reason"] == "too few personas to cluster"
    assert rows(tmp_path / "out")["train:a"].status == "failed"


def test_a_bug_stops_the_plan_and_plan_json_says_so(make_spec, tmp_path):
    script = Script({}, fail={"unified": RuntimeError("boom")})
    with pytest.raises(RuntimeError, match="boom"):
        run_plan(make_spec([candidate("a")]), tmp_path / "out", progress=False, steps=script.steps())
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert plan["status"] == "failed" and "boom" in plan["error"]


def test_a_missing_dataset_is_a_clear_error(make_spec, data_dir, tmp_path):
    spec = make_spec([candidate("a")])
    shutil.rmtree(data_dir)
    with pytest.raises(PersonalabError, match="scripted.yaml: data: .* does not exist"):
        run_plan(spec, tmp_path / "out", progress=False, steps=Script({}).steps())
    assert not (tmp_path / "out").exists()


# ----- resuming -------------------------------------------------------------------------------------


def test_a_second_run_redoes_nothing(make_spec, tmp_path):
    spec = make_spec([candidate("a"), candidate("b")], stop="all", repeats=2)
    first = Script({"a": (0.05, 0.01), "b": (0.01, 0.5)})
    run_plan(spec, tmp_path / "out", progress=False, steps=first.steps())
    before = rows(tmp_path / "out")
    again = Script({"a": (0.05, 0.01), "b": (0.01, 0.5)})
    result = run_plan(spec, tmp_path / "out", progress=False, steps=again.steps())
    assert again.calls == []
    assert rows(tmp_path / "out") == before
    assert statuses(result) == {"a": "accepted", "b": "rejected"} and result.decision["chosen"] == "a"


def test_a_changed_candidate_reruns_only_its_steps(make_spec, tmp_path):
    results = {"a": (0.0, 1.0), "b": (0.0, 1.0), "c": (0.0, 1.0)}
    run_plan(make_spec([candidate(n) for n in "abc"]), tmp_path / "out", progress=False, steps=Script(results).steps())
    changed = [candidate("a"), candidate("b", options={"k": 3}), candidate("c")]
    script = Script(results)
    run_plan(make_spec(changed), tmp_path / "out", progress=False, steps=script.steps())
    assert script.calls == [("train", "b"), ("evaluate", "b@val"), ("evaluate", "b@test"), ("compare", "b@val"),
                            ("compare", "b@test")]
    assert rows(tmp_path / "out")["train:b"].attempts == 2 and rows(tmp_path / "out")["train:a"].attempts == 1


def test_a_changed_baseline_reruns_every_comparison(make_spec, tmp_path):
    results = {"a": (0.0, 1.0), "b": (0.0, 1.0)}
    run_plan(make_spec([candidate("a"), candidate("b")]), tmp_path / "out", progress=False,
             steps=Script(results).steps())
    script = Script(results)
    spec = make_spec([candidate("a"), candidate("b")], baseline={"strategy": "unified", "settings": {"epochs": 7}})
    run_plan(spec, tmp_path / "out", progress=False, steps=script.steps())
    assert script.calls[:7] == [("train", "unified"), ("evaluate", "unified@val"), ("evaluate", "unified@test"),
                                ("compare", "a@val"), ("compare", "a@test"), ("compare", "b@val"), ("compare", "b@test")]
    assert ("references", "references") not in script.calls  # they do not depend on the baseline
    assert ("compare", "majority@test") in script.calls  # their comparisons with it do


def test_a_changed_acceptance_rule_rejudges_without_retesting(make_spec, tmp_path):
    results = {"a": (0.02, 0.01)}
    first = run_plan(make_spec([candidate("a")]), tmp_path / "out", progress=False, steps=Script(results).steps())
    assert statuses(first) == {"a": "accepted"}
    script = Script(results)
    second = run_plan(make_spec([candidate("a")], acceptance={"min_gain": 0.05}), tmp_path / "out",
                      progress=False, steps=script.steps())
    assert statuses(second) == {"a": "rejected"} and second.decision["chosen"] == "unified"
    # Nothing trained, evaluated or compared again; only the new choice meets the best reference.
    assert script.calls == [("compare", "unified@test")]


def test_a_step_left_running_is_redone_from_scratch(make_spec, tmp_path):
    out = tmp_path / "out"
    results = {"a": (0.0, 1.0), "b": (0.0, 1.0)}
    run_plan(make_spec([candidate("a"), candidate("b")]), out, progress=False, steps=Script(results).steps())
    # What a kill in the middle of evaluating "b" leaves: its row says running, a stray file.
    with sqlite3.connect(out / "ledger.sqlite") as db:
        db.execute("UPDATE steps SET status = 'running' WHERE step = 'evaluate:b@val'")
    (out / "runs" / "b" / "eval" / "val" / "half-written.bin").write_text("x")
    (out / "compare" / "val" / ".b.json.123.tmp").write_text("{")
    script = Script(results)
    run_plan(make_spec([candidate("a"), candidate("b")]), out, progress=False, steps=script.steps())
    assert script.calls[0] == ("evaluate", "b@val")
    assert not any(call[0] == "train" for call in script.calls)
    assert not (out / "runs" / "b" / "eval" / "val" / "half-written.bin").exists()
    assert not list((out / "compare").rglob(".*.tmp"))


def test_a_training_step_left_running_is_resumed_in_its_folder(make_spec, tmp_path):
    """Training keeps what a killed attempt left (``train_run`` keeps the finished fleet
    shards of the same config and clears the rest), unless its inputs changed."""
    out = tmp_path / "out"
    results = {"a": (0.0, 1.0)}
    run_plan(make_spec([candidate("a")]), out, progress=False, steps=Script(results).steps())
    with sqlite3.connect(out / "ledger.sqlite") as db:
        db.execute("UPDATE steps SET status = 'running' WHERE step = 'train:a'")
    (out / "runs" / "a" / "finished-shard").write_text("x")
    script = Script(results)
    run_plan(make_spec([candidate("a")]), out, progress=False, steps=script.steps())
    assert script.calls[0] == ("train", "a")
    assert (out / "runs" / "a" / "finished-shard").exists()
    with sqlite3.connect(out / "ledger.sqlite") as db:
        db.execute("UPDATE steps SET status = 'running', key = 'older' WHERE step = 'train:a'")
    run_plan(make_spec([candidate("a")]), out, progress=False, steps=Script(results).steps())
    assert not (out / "runs" / "a" / "finished-shard").exists()


def test_a_done_step_whose_artifact_is_gone_is_redone(make_spec, tmp_path):
    out = tmp_path / "out"
    run_plan(make_spec([candidate("a")]), out, progress=False, steps=Script({"a": (0.0, 1.0)}).steps())
    (out / "compare" / "test" / "a.json").unlink()
    script = Script({"a": (0.0, 1.0)})
    run_plan(make_spec([candidate("a")]), out, progress=False, steps=script.steps())
    assert script.calls == [("compare", "a@test")]


# ----- what it writes and says ------------------------------------------------------------------


def test_plan_json_and_progress_lines(make_spec, tmp_path, capsys):
    script = Script({"a": (0.05, 0.01)})
    run_plan(make_spec([candidate("a", branch="(1) the first branch")]), tmp_path / "out", steps=script.steps())
    err = capsys.readouterr().err
    assert re.search(r"\[1/\d+\] train unified \.\.\.", err)
    assert re.search(r"compare a@test \.\.\. done in [\d.]+ s", err)
    assert "plan done: a chosen (confirmed on the test rows)" in err
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert plan["status"] == "done" and plan["decision"]["branch"] == "(1) the first branch"
    entry = plan["candidates"][0]
    assert entry["comparisons"]["val"]["overall"]["p_value"] == 0.01
    assert set(entry["seconds"]) == {"train", "evaluate", "compare-val", "compare-test"}
    assert plan["spec"]["candidates"][0]["name"] == "a" and "confirmed once" in plan["notes"][0]
    assert plan["select_on"] == "val" and plan["split_by"] == "row"
    with sqlite3.connect(tmp_path / "out" / "ledger.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# ----- the metric compared by -------------------------------------------------------------------


def test_a_plan_compares_by_accuracy_or_by_rouge_l_as_its_dataset_s_task_says(make_spec, data_dir, tmp_path):
    script = Script({"a": (0.03, 0.01)})
    result = run_plan(make_spec([candidate("a")]), tmp_path / "classification", progress=False, steps=script.steps())
    assert script.metrics == {"accuracy"} and result.plan["metric"] == "accuracy"
    (data_dir / "dataset.yaml").write_text("name: scripted\ntask: generation\n")
    script = Script({"a": (0.03, 0.01)}, metric="rougeL")
    result = run_plan(make_spec([candidate("a")]), tmp_path / "generation", progress=False, steps=script.steps())
    assert script.metrics == {"rougeL"} and result.plan["metric"] == "rougeL"
    script = Script({"a": (0.03, 0.01)}, metric="rouge1")
    run_plan(make_spec([candidate("a")], metric="rouge1"), tmp_path / "rouge1", progress=False, steps=script.steps())
    assert script.metrics == {"rouge1"}
    report = (tmp_path / "rouge1" / "report.md").read_text()
    assert "| strategy | ROUGE-1 | BLEU |" in report and "30.00%" in report  # the table shows the plan's metric
    assert "ROUGE-1 30.00%, BLEU 5.00, own-vs-other 55.0% on 100 val rows" in report


def test_a_metric_the_dataset_cannot_have_is_refused_before_anything_runs(make_spec, data_dir, tmp_path):
    with pytest.raises(PersonalabError, match="metric: rougeL cannot measure a classification dataset"):
        run_plan(make_spec([candidate("a")], metric="rougeL"), tmp_path / "out", progress=False,
                 steps=Script({}).steps())
    (data_dir / "dataset.yaml").write_text("name: scripted\ntask: generation\n")
    with pytest.raises(PersonalabError, match="cannot measure a generation dataset.*rougeL"):
        run_plan(make_spec([candidate("a")], metric="accuracy"), tmp_path / "out", progress=False,
                 steps=Script({}).steps())
    assert not (tmp_path / "out").exists()
    with pytest.raises(PersonalabError, match="'bleu' is not one of accuracy, rouge1"):
        make_spec([candidate("a")], metric="bleu")
