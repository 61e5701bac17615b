"""Candidates run ahead on an executor elsewhere, on scripted steps: the plan decides exactly as
in this process, a step that ran as a task says so in the ledger, and what ``first_win`` no
longer needs is cancelled, never run."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from personalab.plan import run_plan
from personalab.plan import ahead as ahead_module
from personalab.plan.runner import _Runner
from personalab.run.executor import LocalExecutor
from personalab.run.step_tasks import RunResult, pack

from .test_runner import Script, candidate, data_dir, make_spec, rows, statuses  # noqa: F401 (fixtures)


@dataclass
class Elsewhere(LocalExecutor):
    """Tasks "elsewhere" (not in this process's objects), run lazily when their outcome is
    asked for; a cancelled one never runs."""

    kind: str = "elsewhere"
    in_process: bool = False
    labels: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)

    def submit(self, fn, *args, label=""):
        self.labels.append(label)
        future = super().submit(fn, *args, label=label)
        future.label = label
        return future

    def cancel(self, future):
        self.cancelled.append(future.label)
        super().cancel(future)


@pytest.fixture
def scripted_tasks(monkeypatch):
    """A run task that does the script's training and evaluation in a private folder, as the
    real one does ``train_run`` and ``evaluate_run``."""
    holder = {}

    def run_task(job, inputs):
        script = holder["script"]
        with tempfile.TemporaryDirectory() as temporary:
            run_dir = Path(temporary) / job.label.removeprefix("step train:")
            script.train(job.config, run_dir, [], False)
            for split in job.splits:
                metrics = script.evaluate(run_dir, split, False)
                (run_dir / "eval" / split / "metrics.json").write_text(json.dumps(metrics))
            return RunResult(pack(run_dir, skip=("eval",)), {s: pack(run_dir / "eval" / s) for s in job.splits},
                             {"train": 1.0, **{s: 0.5 for s in job.splits}}, {"pid": 1, "label": job.label})

    monkeypatch.setattr(ahead_module, "run_task", run_task)
    monkeypatch.setattr(_Runner, "_dataset", lambda self: None)  # the scripted data folder has none
    return holder


def outcome(result) -> dict:
    return {"candidates": [{k: c[k] for k in ("name", "status", "metrics", "comparisons", "reason")}
                           for c in result.plan["candidates"]], "decision": result.decision}


def here_and_there(make_spec, tmp_path, scripted_tasks, stop: str):
    """The same scripted plan of three candidates run in this process and on an executor
    elsewhere: (here, there, that executor, the script behind there)."""
    results = {"a": (0.01, 0.40), "b": (0.03, 0.01), "c": (0.08, 0.001)}
    spec = make_spec([candidate(n, "per_persona") for n in "abc"], stop=stop)
    here = run_plan(spec, tmp_path / "here", progress=False, steps=Script(results).steps())
    script = scripted_tasks["script"] = Script(results)
    executor = Elsewhere()
    steps = script.steps()
    steps.executor = executor
    there = run_plan(spec, tmp_path / "there", progress=False, steps=steps)
    return here, there, executor, script


def test_candidates_run_ahead_decide_as_in_this_process(make_spec, tmp_path, scripted_tasks):
    here, there, executor, _ = here_and_there(make_spec, tmp_path, scripted_tasks, stop="all")
    assert outcome(there) == outcome(here)
    assert executor.labels == ["step train:a", "step train:b", "step train:c"]
    ledger = rows(tmp_path / "there")
    assert ledger["train:unified"].task == {}  # the baseline alone, in the driver
    assert ledger["train:b"].task == {"pid": 1, "label": "step train:b"} == ledger["evaluate:b@test"].task
    assert ledger["train:b"].seconds == 1.0 and ledger["evaluate:b@val"].seconds == 0.5  # as measured there


def test_what_first_win_no_longer_needs_is_cancelled(make_spec, tmp_path, scripted_tasks):
    here, there, executor, script = here_and_there(make_spec, tmp_path, scripted_tasks, stop="first_win")
    assert outcome(there) == outcome(here) and statuses(there)["c"] == "not run"
    assert executor.cancelled == ["step train:c"] and script.names("train") == ["unified", "a", "b"]
    assert "train:c" not in rows(tmp_path / "there")
