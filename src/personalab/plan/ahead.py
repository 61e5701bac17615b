"""Candidates run ahead: a plan on an executor elsewhere (Ray) sends the candidates that can
run now to its workers together, each a whole run — train, then evaluate on every split — as
one task with the executor's resource request (``personalab.run.step_tasks``).

The runner still takes every decision itself, in the plan's candidate order: it waits for a
candidate's task when the candidate's turn comes, writes the run folder the task sent back,
records its steps in the ledger, compares and judges it, exactly as if it had run the steps in
this process — so plan.json decides the same. What it no longer needs (a candidate after the
first winner under ``stop: first_win``, or past the time budget) is cancelled: a task not yet
started never runs, one already running is interrupted (its work so far wasted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from personalab.plan.steps import evaluation_metrics, train_metrics
from personalab.run.step_tasks import RunInputs, RunJob, RunResult, install, run_task


@dataclass
class Ran:
    """A step's outcome when it ran elsewhere: its metrics, the seconds it took there (not
    the driver's wait for it), and where it ran (the ledger's ``task``)."""

    metrics: dict[str, Any]
    seconds: float
    task: dict[str, Any] | None = None


class Ahead:
    """The candidate runs in flight on ``executor``, by candidate name."""

    def __init__(self, executor: Any):
        self.executor = executor
        self.futures: dict[str, Any] = {}
        self.results: dict[str, RunResult] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}

    def __contains__(self, name: str) -> bool:
        return name in self.futures or name in self.results

    def submit(self, jobs: dict[str, RunJob], inputs: RunInputs) -> None:
        shared = self.executor.share(inputs)  # the data and the lenders, once for all of them
        for name, job in jobs.items():
            self.futures[name] = self.executor.submit(run_task, job, shared, label=job.label)

    def result(self, name: str) -> RunResult:
        """``name``'s run, waited for the first time it is asked for; the task's error raised
        (a ``PersonalabError`` when the candidate cannot run, as in this process)."""
        if name not in self.results:
            future = self.futures.pop(name)
            seen = len(self.executor.events)
            for _ in self.executor.as_completed([future]):
                pass
            self.events[name] = [e for e in self.executor.events[seen:] if e.get("task") == future.label]
            self.results[name] = future.result()
        return self.results[name]

    def install_run(self, name: str, run_dir: Path) -> Ran:
        """``name``'s train step: its run folder written to ``run_dir``, its ledger metrics."""
        result = self.result(name)
        install(result.train, run_dir)
        metrics = {**train_metrics(run_dir), "executor": {"kind": self.executor.kind, "events": self.events[name]}}
        return Ran(metrics, result.seconds["train"], result.where)

    def install_evaluation(self, name: str, folder: Path, split: str) -> Ran:
        """``name``'s evaluation on ``split``: written to ``folder``, its ledger metrics."""
        result = self.result(name)
        install(result.evaluations[split], folder)
        metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        return Ran(evaluation_metrics(metrics), result.seconds[split], result.where)

    def forget(self, name: str) -> None:
        """Drop ``name``'s files once they are in place (a fleet's run may be large)."""
        self.results.pop(name, None)

    def cancel(self, name: str) -> None:
        future = self.futures.pop(name, None)
        if future is not None:
            self.executor.cancel(future)

    def cancel_all(self) -> None:
        for name in list(self.futures):
            self.cancel(name)
