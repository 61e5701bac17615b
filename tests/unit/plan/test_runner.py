"""The plan runner on scripted steps: no training, no model — each candidate's comparison with
the baseline is given by the test, so that the branch order, gates, budget, stopping and
resuming are checked exactly and in milliseconds."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from personalab.errors import PersonalabError
from personalab.plan import Steps, parse_plan, run_plan
from personalab.plan.ledger import Ledger


class Script:
    """``results[name] = (difference, p_value, personas_significantly_worse)``."""

    def __init__(self, results: dict, silhouette: float = 0.3, slow: dict | None = None,
                 fail: dict | None = None):
        self.results, self.silhouette = results, silhouette
        self.slow = slow or {}  # name -> seconds its training takes
        self.fail = fail or {}  # name -> exception its training raises
        self.calls: list[tuple[str, str]] = []

    def steps(self) -> Steps:
        return Steps(cluster=self.cluster, train=self.train, evaluate=self.evaluate, compare=self.compare)

    def cluster(self, config, grouping, folder: Path) -> dict:
        self.calls.append(("cluster", folder.name))
        folder.mkdir(parents=True, exist_ok=True)
        return {"silhouette": self.silhouette, "quality": "poor", "k": 3, "grouping": grouping}

    def train(self, config, run_dir: Path, reuse, progress) -> dict:
        self.calls.append(("train", run_dir.name))
        if run_dir.name in self.fail:
            raise self.fail[run_dir.name]
        time.sleep(self.slow.get(run_dir.name, 0))
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "personalizer.json").write_text(json.dumps(config.to_dict(), sort_keys=True))
        return {"reused": [Path(r).name for r in reuse]}

    def evaluate(self, run_dir: Path, split: str, progress) -> dict:
        self.calls.append(("evaluate", run_dir.name))
        folder = run_dir / "eval" / split
        folder.mkdir(parents=True, exist_ok=True)
        # The "predictions" follow from what was trained, as real ones would.
        (folder / "predictions.jsonl").write_text((run_dir / "personalizer.json").read_text())
        (folder / "metrics.json").write_text("{}")
        difference = self.results.get(run_dir.name, (0.0, 1.0, 0))[0]
        return {"n": 100, "accuracy": 0.6 + difference, "macro_f1": 0.55 + difference}

    def compare(self, baseline: Path, candidate: Path, split: str, rule) -> dict:
        self.calls.append(("compare", candidate.name))
        difference, p, worse = self.results[candidate.name]
        return comparison(difference, p, worse)

    def names(self, kind: str) -> list[str]:
        return [name for k, name in self.calls if k == kind]


def comparison(difference: float, p: float, worse: int = 0, n_personas: int = 10) -> dict:
    """A ``compare_runs``-shaped result."""
    return {
        "split": "test",
        "overall": {"n": 100, "accuracy_a": 0.6, "accuracy_b": 0.6 + difference, "difference": difference,
                    "p_value": p, "ci_low": difference - 0.05, "ci_high": difference + 0.05, "confidence": 0.95,
                    "b_better": 10, "a_better": 5, "ci_method": "BCa", "n_resamples": 99, "seed": 0},
        "per_persona": {"method": "holm", "alpha": 0.05, "n_personas": n_personas, "improved": 6, "equal": 2,
                        "worse": 2, "significantly_better": 1, "significantly_worse": worse, "personas": []},
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


# ----- the tree: order, stopping, choosing ---------------------------------------------------------


def test_first_win_stops_at_the_first_accepted_candidate(make_spec, tmp_path):
    script = Script({"a": (0.01, 0.40, 0), "b": (0.03, 0.01, 0), "c": (0.08, 0.001, 0)})
    spec = make_spec([candidate("a"), candidate("b"), candidate("c")], stop="first_win")
    result = run_plan(spec, tmp_path / "out", progress=False, steps=script.steps())
    assert script.names("train") == ["unified", "a", "b"]  # in order; c never trained
    assert statuses(result) == {"a": "rejected", "b": "accepted", "c": "not run"}
    assert "b was accepted first" in result.candidate("c")["reason"]
    assert result.decision["chosen"] == "b" and result.decision["accepted"]
    assert "McNemar p = 0.4 >= alpha 0.05" in result.candidate("a")["reason"]


def test_all_runs_every_candidate_and_picks_the_largest_gain(make_spec, tmp_path):
    script = Script({"a": (0.03, 0.01, 0), "b": (0.08, 0.001, 0), "c": (0.08, 0.002, 0), "d": (0.2, 0.2, 0)})
    spec = make_spec([candidate(n) for n in "abcd"], stop="all")
    result = run_plan(spec, tmp_path / "out", progress=False, steps=script.steps())
    assert script.names("compare") == ["a", "b", "c", "d"]
    assert statuses(result) == {"a": "accepted", "b": "accepted", "c": "accepted", "d": "rejected"}
    assert result.decision["chosen"] == "b"  # ties go to the one tried first (cheaper)
    assert "largest gain of the 3 accepted" in result.decision["why"]


def test_no_winner_keeps_the_baseline_and_says_why(make_spec, tmp_path):
    script = Script({"a": (-0.02, 0.01, 0), "b": (0.05, 0.01, 4)})
    spec = make_spec([candidate("a"), candidate("b")], acceptance={"max_share_worse": 0.3})
    result = run_plan(spec, tmp_path / "out", progress=False, steps=script.steps())
    assert statuses(result) == {"a": "rejected", "b": "rejected"}
    assert "gain -2.00 pts < minimum +0.00 pts" in result.candidate("a")["reason"]
    assert "4 of 10 personas significantly worse" in result.candidate("b")["reason"]
    assert result.decision["chosen"] == "unified" and result.decision["branch"] == "fallback: keep the baseline"
    assert (tmp_path / "out" / "report.md").read_text().count("rejected") >= 2


def test_later_candidates_reuse_every_earlier_run(make_spec, tmp_path):
    script = Script({"a": (0.0, 1.0, 0), "b": (0.0, 1.0, 0)})
    result = run_plan(make_spec([candidate("a"), candidate("b")]), tmp_path / "out", progress=False,
                      steps=script.steps())
    assert result.candidate("a")["training"]["reused"] == ["unified"]
    assert result.candidate("b")["training"]["reused"] == ["unified", "a"]


# ----- gates, budget, failures ---------------------------------------------------------------------


def test_a_failing_gate_skips_the_candidate_with_the_reason(make_spec, tmp_path):
    script = Script({"a": (0.05, 0.01, 0), "b": (0.05, 0.01, 0), "c": (0.05, 0.01, 0)}, silhouette=0.022)
    spec = make_spec([candidate("a", gate={"min_silhouette": 0.1}), candidate("b", gate={"min_silhouette": 0.1}),
                      candidate("c", strategy="per_persona")], stop="all")
    result = run_plan(spec, tmp_path / "out", progress=False, steps=script.steps())
    assert statuses(result) == {"a": "skipped", "b": "skipped", "c": "accepted"}
    assert "gate: silhouette 0.022 < 0.1" in result.candidate("a")["reason"]
    assert script.names("train") == ["unified", "c"]
    assert script.names("cluster") == ["inputs-kmeans-k2-8"]  # the same clustering is made once
    assert result.plan["clustering"]["inputs-kmeans-k2-8"]["silhouette"] == 0.022


def test_a_gate_clusters_with_the_candidates_own_options(make_spec, tmp_path):
    script = Script({"a": (0.0, 1.0, 0)}, silhouette=0.5)
    spec = make_spec([candidate("a", options={"k": 4, "source": "profile"}, gate={"min_silhouette": 0.1})])
    result = run_plan(spec, tmp_path / "out", progress=False, steps=script.steps())
    assert script.names("cluster") == ["profile-kmeans-k4"]
    assert statuses(result) == {"a": "rejected"}


def test_an_exhausted_time_budget_skips_the_remaining_candidates(make_spec, tmp_path):
    script = Script({"a": (0.0, 1.0, 0), "b": (0.0, 1.0, 0), "c": (0.0, 1.0, 0)}, slow={"a": 0.2})
    spec = make_spec([candidate(n) for n in "abc"], time_budget_minutes=0.002)  # 0.12 s
    result = run_plan(spec, tmp_path / "out", progress=False, steps=script.steps())
    assert statuses(result) == {"a": "rejected", "b": "skipped", "c": "skipped"}
    assert "time budget used up" in result.candidate("b")["reason"]
    assert result.plan["budget"]["exhausted"]
    assert "time budget" in (tmp_path / "out" / "report.md").read_text()


def test_a_candidate_that_cannot_run_is_recorded_and_the_tree_goes_on(make_spec, tmp_path):
    script = Script({"b": (0.05, 0.01, 0)}, fail={"a": PersonalabError("too few personas to cluster")})
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
    spec = make_spec([candidate("a"), candidate("b")], stop="all")
    first = Script({"a": (0.05, 0.01, 0), "b": (0.01, 0.5, 0)})
    run_plan(spec, tmp_path / "out", progress=False, steps=first.steps())
    before = rows(tmp_path / "out")
    again = Script({"a": (0.05, 0.01, 0), "b": (0.01, 0.5, 0)})
    result = run_plan(spec, tmp_path / "out", progress=False, steps=again.steps())
    assert again.calls == []
    assert rows(tmp_path / "out") == before
    assert statuses(result) == {"a": "accepted", "b": "rejected"}


def test_a_changed_candidate_reruns_only_its_steps(make_spec, tmp_path):
    results = {"a": (0.0, 1.0, 0), "b": (0.0, 1.0, 0), "c": (0.0, 1.0, 0)}
    run_plan(make_spec([candidate(n) for n in "abc"]), tmp_path / "out", progress=False, steps=Script(results).steps())
    changed = [candidate("a"), candidate("b", options={"k": 3}), candidate("c")]
    script = Script(results)
    run_plan(make_spec(changed), tmp_path / "out", progress=False, steps=script.steps())
    assert script.calls == [("train", "b"), ("evaluate", "b"), ("compare", "b")]
    assert rows(tmp_path / "out")["train:b"].attempts == 2 and rows(tmp_path / "out")["train:a"].attempts == 1


def test_a_changed_baseline_reruns_every_comparison(make_spec, tmp_path):
    results = {"a": (0.0, 1.0, 0), "b": (0.0, 1.0, 0)}
    run_plan(make_spec([candidate("a"), candidate("b")]), tmp_path / "out", progress=False,
             steps=Script(results).steps())
    script = Script(results)
    spec = make_spec([candidate("a"), candidate("b")], baseline={"strategy": "unified", "settings": {"epochs": 7}})
    run_plan(spec, tmp_path / "out", progress=False, steps=script.steps())
    assert script.calls == [("train", "unified"), ("evaluate", "unified"), ("compare", "a"), ("compare", "b")]


def test_a_changed_acceptance_rule_rejudges_without_retesting(make_spec, tmp_path):
    results = {"a": (0.02, 0.01, 0)}
    first = run_plan(make_spec([candidate("a")]), tmp_path / "out", progress=False, steps=Script(results).steps())
    assert statuses(first) == {"a": "accepted"}
    script = Script(results)
    second = run_plan(make_spec([candidate("a")], acceptance={"min_gain": 0.05}), tmp_path / "out",
                      progress=False, steps=script.steps())
    assert script.calls == [] and statuses(second) == {"a": "rejected"}


def test_a_step_left_running_is_redone_from_scratch(make_spec, tmp_path):
    out = tmp_path / "out"
    results = {"a": (0.0, 1.0, 0), "b": (0.0, 1.0, 0)}
    run_plan(make_spec([candidate("a"), candidate("b")]), out, progress=False, steps=Script(results).steps())
    # What a kill in the middle of training "a" leaves: its row says running, a stray file.
    with sqlite3.connect(out / "ledger.sqlite") as db:
        db.execute("UPDATE steps SET status = 'running' WHERE step = 'train:a'")
    (out / "runs" / "a" / "half-written.bin").write_text("x")
    (out / "compare" / ".b.json.123.tmp").write_text("{")
    script = Script(results)
    run_plan(make_spec([candidate("a"), candidate("b")]), out, progress=False, steps=script.steps())
    assert script.calls[0] == ("train", "a")
    assert ("train", "unified") not in script.calls and ("train", "b") not in script.calls
    assert not (out / "runs" / "a" / "half-written.bin").exists()
    assert not list((out / "compare").glob(".*.tmp"))


def test_a_done_step_whose_artifact_is_gone_is_redone(make_spec, tmp_path):
    out = tmp_path / "out"
    run_plan(make_spec([candidate("a")]), out, progress=False, steps=Script({"a": (0.0, 1.0, 0)}).steps())
    (out / "compare" / "a.json").unlink()
    script = Script({"a": (0.0, 1.0, 0)})
    run_plan(make_spec([candidate("a")]), out, progress=False, steps=script.steps())
    assert script.calls == [("compare", "a")]


# ----- what it writes and says ------------------------------------------------------------------


def test_plan_json_and_progress_lines(make_spec, tmp_path, capsys):
    script = Script({"a": (0.05, 0.01, 0)})
    run_plan(make_spec([candidate("a", branch="(1) the first branch")]), tmp_path / "out", steps=script.steps())
    err = capsys.readouterr().err
    assert "[1/5] train unified ..." in err
    assert re.search(r"\[5/5\] compare a \.\.\. done in [\d.]+ s \(elapsed 0:\d\d, nothing left\)", err)
    plan = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert plan["status"] == "done" and plan["decision"]["branch"] == "(1) the first branch"
    entry = plan["candidates"][0]
    assert entry["comparison"]["overall"]["p_value"] == 0.01
    assert set(entry["seconds"]) == {"train", "evaluate", "compare"}
    assert plan["spec"]["candidates"][0]["name"] == "a" and "test split" in plan["notes"][0]
    with sqlite3.connect(tmp_path / "out" / "ledger.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
