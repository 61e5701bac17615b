"""Running a plan: the playbook's decision tree as a sequence of ledgered, resumable steps.

    RUN_DIR/.lock                  held for the whole run: one plan at a time per folder
    RUN_DIR/ledger.sqlite          one row per step (``personalab.plan.ledger``)
    RUN_DIR/plan.json              what was done and decided (``personalab.plan.record``)
    RUN_DIR/report.md              the summary for people (``personalab.plan.report``)
    RUN_DIR/runs/<name>/           each strategy's run, with eval/<split>/ predictions
    RUN_DIR/compare/<name>.json    each candidate against the baseline, row-paired
    RUN_DIR/cluster/<grouping>/    the clusterings the gates looked at

Order: train and evaluate the baseline; then, for each candidate in turn, skip it if the plan
already has its winner (``stop: first_win``), the time budget is used up, or its gate fails
(clusters too poor); else train it (reusing adapters earlier runs of the plan trained from the
same inputs), evaluate it, compare it with the baseline and judge it by the acceptance rule.

Resuming: every step has a key, the hash of its inputs (``personalab.plan.keys``). A step whose
ledger row is done with the same key and whose artifact exists is not run again. Any other
step — never run, killed (its row still says running), failed, or with changed inputs — has
its output removed and is run from scratch. Keys chain through artifact hashes, so a change
re-runs exactly the steps downstream of it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from personalab.errors import PersonalabError
from personalab.plan.acceptance import choose, judge
from personalab.plan.artifacts import clean_leftovers, remove, write_json
from personalab.plan.decision import describe_decision
from personalab.plan.keys import artifact_hash, dataset_hash, library_versions, step_key
from personalab.plan.ledger import Ledger, Row
from personalab.plan.lock import plan_lock
from personalab.plan.pause import pause_point
from personalab.plan.progress import Progress
from personalab.plan.record import PlanRecord
from personalab.plan.report import write_report
from personalab.plan.spec import Candidate, PlanSpec, grouping_name
from personalab.plan.steps import BOOTSTRAP_SEED, Steps, comparison_summary

LEDGER = "ledger.sqlite"
STRATEGY_STEPS = ("train", "evaluate", "compare")


@dataclass
class PlanResult:
    """A finished plan: its folder and what ``plan.json`` holds."""

    out: Path
    plan: dict[str, Any]

    @property
    def decision(self) -> dict[str, Any]:
        return self.plan["decision"]

    def candidate(self, name: str) -> dict[str, Any]:
        return next(c for c in self.plan["candidates"] if c["name"] == name)


def run_plan(spec: PlanSpec, out: str | Path, progress: bool = True, steps: Steps | None = None,
             verbose: bool = False) -> PlanResult:
    """Run (or resume) ``spec`` in the folder ``out``. ``progress``: step lines on stderr;
    ``verbose``: the training and evaluation bars too; ``steps``: the work (tests script it)."""
    out = Path(out)
    dataset_hash(spec.data, spec.source)  # a missing dataset fails before RUN_DIR is made
    out.mkdir(parents=True, exist_ok=True)
    with plan_lock(out):
        runner = _Runner(spec, out, steps or Steps.real(), progress, verbose)
        try:
            return runner.run()
        finally:
            runner.ledger.close()


@dataclass
class _Step:
    kind: str
    name: str
    inputs: dict[str, Any]
    output: Path  # removed before the step runs
    artifact: Path  # exists once the step is complete
    work: Callable[[], dict[str, Any]]
    skip: tuple[str, ...] = ()  # entries of ``output`` the artifact hash leaves out

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.name}"


class _Runner:
    def __init__(self, spec: PlanSpec, out: Path, steps: Steps, progress: bool, verbose: bool):
        self.spec, self.out, self.steps, self.verbose = spec, out, steps, verbose
        self.ledger = Ledger(out / LEDGER)
        self.versions = library_versions()
        self.record = PlanRecord(spec, out, self.versions)
        done = {row.step for row in self.ledger.rows() if row.status == "done"}
        self.progress = Progress(self._planned(), done, enabled=progress, upper_bound=spec.stop == "first_win")
        self.spent = 0.0  # seconds the plan's steps took (as recorded when they ran)
        self.trained: list[Path] = []  # run folders of this plan, for reuse by later ones
        self.data_hash = ""

    def run(self) -> PlanResult:
        clean_leftovers(self.out)
        try:
            self.data_hash = dataset_hash(self.spec.data, self.spec.source)
            self._save()
            baseline = self._train_and_evaluate(self.spec.baseline)
            for candidate in self.spec.candidates:
                self._try(candidate, baseline)
            self._decide()
        except BaseException as error:
            status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            self.record.finish(status, self.spent, f"{type(error).__name__}: {error}")
            raise
        self.record.finish("done", self.spent)
        write_report(self.out)  # the hook: the report is rebuilt from plan.json
        return PlanResult(self.out, self.record.data)

    # ----- one strategy ---------------------------------------------------------------------

    def _try(self, candidate: Candidate, baseline: Row) -> None:
        entry = self.record.entry(candidate.name)
        ids = [f"{kind}:{candidate.name}" for kind in STRATEGY_STEPS]
        try:
            skip = self._skip_reason(candidate)
            if skip:
                entry.update(status=skip[0], reason=skip[1])
                self.progress.skipped(ids, candidate.name, f"{skip[0]} ({skip[1]})")
                return
            evaluation = self._train_and_evaluate(candidate)
            comparison = self._compare(candidate, baseline, evaluation)
        except PersonalabError as error:
            # A candidate that cannot run (bad data for it, too few personas to cluster) is
            # recorded and the tree goes on; a bug (any other exception) stops the plan.
            entry.update(status="failed", reason=str(error))
            left = [i for i in ids if i not in self.progress.visited]
            self.progress.skipped(left, candidate.name, f"failed: {error}")
            return
        finally:
            self._save()
        verdict = judge(comparison, self.spec.acceptance)
        entry.update(comparison=comparison, verdict=verdict.to_dict(), reason=verdict.explain(),
                     status="accepted" if verdict.accepted else "rejected")
        self._save()

    def _skip_reason(self, candidate: Candidate) -> tuple[str, str] | None:
        winner = self._winner()
        if winner and self.spec.stop == "first_win":
            return "not run", f"not needed: {winner} was accepted first (stop: first_win)"
        budget = self.spec.time_budget_minutes
        if budget is not None and self.spent >= budget * 60:
            self.record.data["budget"]["exhausted"] = True
            return "skipped", (f"time budget used up: the steps before it took {self.spent / 60:.1f} min "
                               f"of the {budget:g} min allowed")
        gate = candidate.gate
        if gate is not None and gate.min_silhouette is not None:
            clustering = self._cluster(candidate)
            if clustering["silhouette"] < gate.min_silhouette:
                return "skipped", (f"gate: silhouette {clustering['silhouette']:.3f} < {gate.min_silhouette:g} "
                                   f"({clustering.get('quality', '?')} clusters, k={clustering.get('k')}); "
                                   "a cluster strategy cannot help where personas form no clusters")
        return None

    def _winner(self) -> str | None:
        accepted = [(c["name"], c["comparison"]["overall"]["difference"])
                    for c in self.record.data["candidates"] if c["status"] == "accepted"]
        return choose(accepted, self.spec.stop)

    def _train_and_evaluate(self, candidate: Candidate) -> Row:
        entry, config = self.record.entry(candidate.name), self.spec.run_config(candidate)
        run_dir, reuse, split = self.out / "runs" / candidate.name, list(self.trained), self.spec.split
        train = self._run(_Step(
            "train", candidate.name, {"config": config.to_dict(), "data": self.data_hash}, run_dir,
            run_dir / "personalizer.json", lambda: self.steps.train(config, run_dir, reuse, self.verbose),
            skip=("eval",)))
        self.trained.append(run_dir)
        entry.update(training=train.metrics)
        entry["seconds"]["train"] = train.seconds
        self._save()
        folder = run_dir / "eval" / split
        evaluation = self._run(_Step(
            "evaluate", candidate.name, {"train": train.artifact_hash, "split": split, "data": self.data_hash},
            folder, folder / "metrics.json", lambda: self.steps.evaluate(run_dir, split, self.verbose)))
        entry.update(metrics=evaluation.metrics)
        entry["seconds"]["evaluate"] = evaluation.seconds
        return evaluation

    def _compare(self, candidate: Candidate, baseline: Row, evaluation: Row) -> dict[str, Any]:
        rule, split = self.spec.acceptance, self.spec.split
        path = self.out / "compare" / f"{candidate.name}.json"
        runs = self.out / "runs"
        step_id = f"compare:{candidate.name}"

        def work() -> dict[str, Any]:
            comparison = self.steps.compare(runs / self.spec.baseline.name, runs / candidate.name, split, rule)
            write_json(path, comparison, step=step_id, out=self.out)
            return comparison_summary(comparison)

        # Only what the statistics depend on: changing min_gain re-judges, it does not re-test.
        stats = {"alpha": rule.alpha, "correction": rule.correction, "n_resamples": rule.n_resamples,
                 "confidence": rule.confidence, "seed": BOOTSTRAP_SEED}
        row = self._run(_Step("compare", candidate.name, {
            "baseline": baseline.artifact_hash, "candidate": evaluation.artifact_hash, "split": split,
            "statistics": stats}, path, path, work))
        self.record.entry(candidate.name)["seconds"]["compare"] = row.seconds
        return row.metrics

    def _cluster(self, candidate: Candidate) -> dict[str, Any]:
        from personalab.strategies.registry import strategy_options  # (imports them all)

        grouping = candidate.grouping(strategy_options(candidate.strategy))
        name = grouping_name(grouping)
        if name in self.record.data["clustering"]:
            return self.record.data["clustering"][name]  # one clustering serves every gate asking for it
        folder, config = self.out / "cluster" / name, self.spec.run_config(self.spec.baseline)

        def work() -> dict[str, Any]:
            result = self.steps.cluster(config, grouping, folder)
            write_json(folder / "clustering.json", result, step=f"cluster:{name}", out=self.out)
            return {key: value for key, value in result.items() if key != "clustering"}

        inputs = {"grouping": grouping, "data": self.data_hash, "holdout": config.holdout, "seed": config.seed}
        row = self._run(_Step("cluster", name, inputs, folder, folder / "clustering.json", work))
        self.record.data["clustering"][name] = {**row.metrics, "folder": f"cluster/{name}"}
        return row.metrics

    # ----- one step ---------------------------------------------------------------------------

    def _run(self, step: _Step) -> Row:
        """Run ``step`` unless the ledger holds it done with the same key and its artifact."""
        inputs = {**step.inputs, "kind": step.kind, "versions": self.versions}
        key = step_key(inputs)
        row = self.ledger.get(step.id)
        if row and row.status == "done" and row.key == key and step.artifact.exists():
            self.progress.reused(step.id, step.kind, row.seconds)
            self.spent += row.seconds or 0.0
            return row
        self.progress.begin(step.id)
        self.ledger.start(step.id, step.kind, step.name, key, inputs, self.versions)
        remove(step.output)  # whatever a killed or outdated run left there
        pause_point(step.id, "start", self.out)
        started = time.perf_counter()
        try:
            metrics = step.work()
            if not step.artifact.exists():
                raise RuntimeError(f"step {step.id} finished without writing {step.artifact}")
        except Exception as error:
            self.ledger.fail(step.id, time.perf_counter() - started, f"{type(error).__name__}: {error}")
            self.progress.failed(step.id, error)
            raise
        seconds = time.perf_counter() - started
        pause_point(step.id, "finish", self.out)
        artifact = str(step.artifact.relative_to(self.out))
        self.ledger.finish(step.id, seconds, metrics, artifact, artifact_hash(step.output, step.skip))
        self.spent += seconds
        self.progress.done(step.id, step.kind, seconds)
        return self.ledger.get(step.id)

    # ----- the plan as a whole ----------------------------------------------------------------

    def _decide(self) -> None:
        winner = self._winner()
        self.record.data["decision"] = describe_decision(self.record.data, winner)
        self.progress.note(f"plan done: {winner or self.spec.baseline.name} chosen "
                           f"({'accepted' if winner else 'no candidate accepted, baseline kept'})")

    def _planned(self) -> list[tuple[str, str]]:
        planned = [(f"train:{self.spec.baseline.name}", "train"), (f"evaluate:{self.spec.baseline.name}", "evaluate")]
        groupings: set[str] = set()
        for candidate in self.spec.candidates:
            if candidate.gate is not None and candidate.gate.min_silhouette is not None:
                from personalab.strategies.registry import strategy_options

                name = grouping_name(candidate.grouping(strategy_options(candidate.strategy)))
                if name not in groupings:
                    groupings.add(name)
                    planned.append((f"cluster:{name}", "cluster"))
            planned += [(f"{kind}:{candidate.name}", kind) for kind in STRATEGY_STEPS]
        return planned

    def _save(self) -> None:
        self.record.save(self.spent)
