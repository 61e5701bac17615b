"""Running a plan: the playbook's decision tree as a sequence of ledgered, resumable steps.

    RUN_DIR/.lock                  held for the whole run: one plan at a time per folder
    RUN_DIR/ledger.sqlite          one row per step (``personalab.plan.ledger``)
    RUN_DIR/plan.json              what was done and decided (``personalab.plan.record``)
    RUN_DIR/report.md              the summary for people (``personalab.plan.report``)
    RUN_DIR/runs/<name>/           each strategy's run, with eval/val/ and eval/test/ predictions
    RUN_DIR/runs/<name>.seed<S>/   the baseline and the chosen candidate under repeat seeds
    RUN_DIR/compare/<split>/<name>.json  each candidate against the baseline, persona-paired
    RUN_DIR/references/<name>/     the reference baselines that need no adapter, as evaluated runs
    RUN_DIR/cluster/<grouping>/    the clusterings the gates looked at

Order: train the baseline and evaluate it on the validation and test rows; then, for each
candidate in turn, skip it if the plan already has its pick (``stop: first_win``), the time
budget is used up, or its gate fails (clusters too poor); else train it (reusing adapters
earlier runs of the plan trained from the same inputs), evaluate it on both splits, compare it
with the baseline on both and judge it by the acceptance rule on the selection rows
(``select_on``, validation by default). Then fit the reference baselines; then **confirm** the
one candidate picked, once, on the test rows (with the harm check, and under the repeat seeds
when ``repeats`` > 1). The plan adopts it only when the confirmation holds, else it keeps the
baseline. Every candidate's test comparison is recorded, and shown as not used for the decision.

Where the work runs: in this process, one step after another — or, when the executor runs
tasks elsewhere (``--executor ray``), the candidates that can run now go to its workers
together, each whole run (train, evaluate on both splits) one task (``personalab.plan.ahead``).
Which can run now: the candidates from the current one on whose train step is not done, up to
the first with a gate (its clustering is looked at in its turn, as here). A candidate alone
runs here, its fleet shards spread over the workers as tasks (the baseline always: the others
take its unified adapter). A task is given no path into the plan; it sends the run's files
back, and this process alone writes them, the ledger (with where each step ran) and plan.json,
taking its decisions in the plan's order as a sequential run does.

Resuming: every step has a key, the hash of its inputs (``personalab.plan.keys``). A step whose
ledger row is done with the same key and whose artifact exists is not run again. Any other
step — never run, killed (its row still says running), failed, or with changed inputs — has
its output removed and is run from scratch. Keys chain through artifact hashes, so a change
re-runs exactly the steps downstream of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from personalab.data.faults import fault_point
from personalab.data.load import load_spec
from personalab.errors import PersonalabError
from personalab.plan.acceptance import choose, confirm, judge
from personalab.plan.ahead import Ahead, Ran
from personalab.plan.artifacts import clean_leftovers, remove, write_json
from personalab.plan.decision import best_reference, describe_decision
from personalab.plan.keys import artifact_hash, dataset_hash, library_versions, step_key
from personalab.plan.ledger import Ledger, Row
from personalab.plan.lock import plan_lock
from personalab.plan.progress import Progress
from personalab.plan.record import PlanRecord
from personalab.plan.report import write_report
from personalab.plan.spec import CONFIRMATION_SPLIT, Candidate, PlanSpec, grouping_name
from personalab.plan.steps import BOOTSTRAP_SEED, Steps, comparison_summary
from personalab.run.step_tasks import RunInputs, RunJob, lender_files

LEDGER = "ledger.sqlite"
# Every strategy is evaluated on both: validation rows select and flag personas for the harm
# check, test rows confirm (and are reported, for the candidates not chosen, as information).
SPLITS = ("val", CONFIRMATION_SPLIT)
REFERENCES = "references"


def strategy_steps(name: str) -> list[tuple[str, str]]:
    """(step id, kind) of the steps one strategy takes, in order."""
    return [(f"train:{name}", "train"), *((f"evaluate:{name}@{s}", "evaluate") for s in SPLITS),
            *((f"compare:{name}@{s}", "compare") for s in SPLITS)]


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
             verbose: bool = False, executor: Any = None) -> PlanResult:
    """Run (or resume) ``spec`` in the folder ``out``. ``progress``: step lines on stderr;
    ``verbose``: the training and evaluation bars too; ``steps``: the work (tests script it);
    ``executor``: trains the fleet shards, and on Ray runs independent candidates side by side
    (default: the one ``spec.executor`` names, made here and closed at the end). Whatever
    executes the work, only this process writes the ledger, the banks and the reports."""
    out = Path(out)
    dataset_hash(spec.data, spec.source)  # a missing dataset fails before RUN_DIR is made
    metric = spec.metric_for(load_spec(spec.data).task)  # and so does a metric the task cannot have
    out.mkdir(parents=True, exist_ok=True)
    with plan_lock(out):
        owned = executor is None and steps is None and spec.executor is not None
        if owned:
            from personalab.run.executor import make_executor

            executor = make_executor(spec.executor)
        runner = _Runner(spec, out, steps or Steps.real(executor), progress, verbose, metric)
        try:
            return runner.run()
        finally:
            runner.ledger.close()
            if owned:
                executor.close()


@dataclass
class _Step:
    kind: str
    name: str
    inputs: dict[str, Any]
    output: Path  # removed before the step runs
    artifact: Path  # exists once the step is complete
    work: Callable[[], dict[str, Any] | Ran]  # its metrics (a ``Ran`` when it ran elsewhere)
    skip: tuple[str, ...] = ()  # entries of ``output`` the artifact hash leaves out
    resumable: bool = False
    """A killed attempt's output is kept for the next attempt with the same key (a training
    run keeps its finished fleet shards: ``train_run`` checks what it may keep)."""

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.name}"


class _Runner:
    def __init__(self, spec: PlanSpec, out: Path, steps: Steps, progress: bool, verbose: bool, metric: str):
        self.spec, self.out, self.steps, self.verbose, self.metric = spec, out, steps, verbose, metric
        self.ledger = Ledger(out / LEDGER)
        self.versions = library_versions()
        self.record = PlanRecord(spec, out, self.versions, metric)
        done = {row.step for row in self.ledger.rows() if row.status == "done"}
        self.progress = Progress(self._planned(), done, enabled=progress, upper_bound=spec.stop == "first_win")
        self.spent = 0.0  # seconds the plan's steps took (as recorded when they ran)
        self.trained: list[Path] = []  # run folders of this plan, for reuse by later ones
        self.data_hash = ""
        self.baseline: dict[str, Row] = {}  # the baseline's evaluations by split
        executor = steps.executor
        # Candidates run ahead only on an executor elsewhere: in this process they run in turn.
        self.ahead = Ahead(executor) if executor is not None and not executor.in_process else None

    def run(self) -> PlanResult:
        clean_leftovers(self.out)
        try:
            self.data_hash = dataset_hash(self.spec.data, self.spec.source)
            self._save()
            self.baseline = self._train_and_evaluate(self.spec.baseline)
            for index, candidate in enumerate(self.spec.candidates):
                self._look_ahead(index)
                self._try(candidate)
            self._references()
            self._confirm()
            self._decide()
        except BaseException as error:
            if self.ahead is not None:
                self.ahead.cancel_all()
            status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            self.record.finish(status, self.spent, f"{type(error).__name__}: {error}")
            raise
        self.record.finish("done", self.spent)
        write_report(self.out)  # the hook: the report is rebuilt from plan.json
        return PlanResult(self.out, self.record.data)

    # ----- one strategy ---------------------------------------------------------------------

    def _try(self, candidate: Candidate) -> None:
        entry = self.record.entry(candidate.name)
        ids = [step for step, _ in strategy_steps(candidate.name)]
        try:
            skip = self._skip_reason(candidate)
            if skip:
                if self.ahead is not None:
                    self.ahead.cancel(candidate.name)  # sent ahead, and not needed after all
                entry.update(status=skip[0], reason=skip[1])
                self.progress.skipped(ids, candidate.name, f"{skip[0]} ({skip[1]})")
                return
            evaluations = self._train_and_evaluate(candidate)
            for split in SPLITS:
                entry["comparisons"][split] = self._compare(candidate.name, self.baseline[split], evaluations[split], split)
        except PersonalabError as error:
            # A candidate that cannot run (bad data for it, too few personas to cluster) is
            # recorded and the tree goes on; a bug (any other exception) stops the plan.
            entry.update(status="failed", reason=str(error))
            left = [i for i in ids if i not in self.progress.visited]
            self.progress.skipped(left, candidate.name, f"failed: {error}")
            return
        finally:
            self._save()
        verdict = judge(entry["comparisons"][self.spec.select_on], self.spec.acceptance)
        entry.update(verdict=verdict.to_dict(), reason=verdict.explain(),
                     status="accepted" if verdict.accepted else "rejected")
        self._save()

    def _skip_reason(self, candidate: Candidate) -> tuple[str, str] | None:
        winner = self._pick()
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

    def _pick(self) -> str | None:
        """The candidate picked on the selection rows (not yet confirmed)."""
        split = self.spec.select_on
        accepted = [(c["name"], c["comparisons"][split]["overall"]["difference"])
                    for c in self.record.data["candidates"] if c["status"] == "accepted"]
        return choose(accepted, self.spec.stop)

    def _train_and_evaluate(self, candidate: Candidate, seed: int | None = None,
                            splits: tuple[str, ...] = SPLITS) -> dict[str, Row]:
        """Train ``candidate`` (under ``seed``: a repeat, in its own folder) and evaluate it."""
        name = candidate.name if seed is None else repeat_name(candidate.name, seed)
        entry, run_dir = self.record.entry(candidate.name), self.out / "runs" / name
        step = self._train_step(name, self.spec.run_config(candidate, seed))
        elsewhere = seed is None and self.ahead is not None and name in self.ahead
        if elsewhere:
            step.work = lambda: self.ahead.install_run(name, run_dir)
        train = self._run(step)
        self.trained.append(run_dir)
        evaluations = {split: self._evaluate(name, run_dir, train, split, elsewhere) for split in splits}
        if elsewhere:
            self.ahead.forget(name)
        if seed is None:
            entry.update(training=train.metrics, metrics={s: row.metrics for s, row in evaluations.items()})
            entry["seconds"]["train"] = train.seconds
            entry["seconds"]["evaluate"] = sum(row.seconds or 0.0 for row in evaluations.values())
            self._save()
        return evaluations

    def _train_step(self, name: str, config) -> _Step:
        run_dir, reuse = self.out / "runs" / name, list(self.trained)
        return _Step("train", name, {"config": config.recipe(), "data": self.data_hash}, run_dir,
                     run_dir / "personalizer.json", lambda: self.steps.train(config, run_dir, reuse, self.verbose),
                     skip=("eval",), resumable=True)

    def _evaluate(self, name: str, run_dir: Path, train: Row, split: str, elsewhere: bool = False) -> Row:
        folder = run_dir / "eval" / split
        work = (lambda: self.ahead.install_evaluation(name, folder, split)) if elsewhere \
            else (lambda: self.steps.evaluate(run_dir, split, self.verbose))
        return self._run(_Step(
            "evaluate", f"{name}@{split}", {"train": train.artifact_hash, "split": split, "data": self.data_hash},
            folder, folder / "metrics.json", work))

    # ----- candidates run ahead, elsewhere ------------------------------------------------------

    def _look_ahead(self, index: int) -> None:
        """Send the candidates from ``index`` on that can run now to the executor together,
        when there are two or more (one alone runs here, its shards spread as tasks)."""
        if self.ahead is None or self.spec.candidates[index].name in self.ahead or self._nothing_more():
            return
        window = []
        for candidate in self.spec.candidates[index:]:
            if candidate.gate is not None and candidate.gate.min_silhouette is not None:
                break  # its gate's clustering is looked at in its turn, as in a sequential run
            if not self._done(self._train_step(candidate.name, self.spec.run_config(candidate))):
                window.append(candidate)
        if len(window) < 2:
            return
        # What may lend adapters: every run trained so far, and a killed attempt of a candidate
        # itself (adapters are reused by fingerprint alone, so lending is always safe).
        folders = [*self.trained, *(self.out / "runs" / c.name for c in window)]
        lenders = {folder.relative_to(self.out).as_posix(): files
                   for folder in dict.fromkeys(folders) if (files := lender_files(folder)) is not None}
        jobs = {c.name: RunJob(self.spec.run_config(c), SPLITS, f"step train:{c.name}") for c in window}
        self.ahead.submit(jobs, RunInputs(self._dataset(), lenders))
        self.progress.note(f"{len(jobs)} candidates sent to the {self.ahead.executor.kind} workers together: "
                           + ", ".join(jobs))

    def _nothing_more(self) -> bool:
        """Whether every candidate left will be skipped (a pick under first_win, or the budget spent)."""
        budget = self.spec.time_budget_minutes
        return (self.spec.stop == "first_win" and self._pick() is not None) or \
            (budget is not None and self.spent >= budget * 60)

    def _dataset(self):
        from personalab.data import load_dataset

        return load_dataset(self.spec.data)

    def _compare(self, name: str, baseline: Row, evaluation: Row, split: str, against: str | None = None) -> dict:
        """``name``'s run against the baseline's (or a repeat's, ``against``) on ``split``; on
        the test rows with the harm check, the personas flagged on the validation rows (repeats
        are evaluated on test alone: the harm check is the plan seed's)."""
        runs, base = self.out / "runs", against or self.spec.baseline.name
        flag_split = "val" if split == CONFIRMATION_SPLIT and against is None else None
        hashes = [baseline.artifact_hash, evaluation.artifact_hash]
        if flag_split:  # the flags come from the validation predictions of both runs
            hashes += [self._artifact(f"evaluate:{n}@{flag_split}") for n in (base, name)]
        row = self._paired(name, runs / base, runs / name, hashes, split, flag_split)
        if against is None:  # a repeat's comparison is the confirmation's, not the candidate's
            self.record.entry(name)["seconds"][f"compare-{split}"] = row.seconds
        return row.metrics

    def _paired(self, name: str, run_a: Path, run_b: Path, hashes: list, split: str,
                flag_split: str | None = None) -> Row:
        """The ledgered comparison step ``compare:<name>@<split>`` of run B against run A."""
        rule = self.spec.acceptance
        path = self.out / "compare" / split / f"{name}.json"

        def work() -> dict[str, Any]:
            comparison = self.steps.compare(run_a, run_b, split, rule, flag_split, self.metric)
            write_json(path, comparison)
            return comparison_summary(comparison)

        # Only what the statistics depend on: changing min_gain re-judges, it does not re-test.
        stats = {"n_resamples": rule.n_resamples, "confidence": rule.confidence, "seed": BOOTSTRAP_SEED,
                 "harm_alpha": rule.harm_alpha, "flag_split": flag_split, "metric": self.metric}
        inputs = {"runs": hashes, "split": split, "statistics": stats}
        return self._run(_Step("compare", f"{name}@{split}", inputs, path, path, work))

    def _artifact(self, step_id: str) -> str | None:
        row = self.ledger.get(step_id)
        return row.artifact_hash if row else None

    def _cluster(self, candidate: Candidate) -> dict[str, Any]:
        from personalab.strategies.registry import strategy_options  # (imports them all)

        grouping = candidate.grouping(strategy_options(candidate.strategy))
        name = grouping_name(grouping)
        if name in self.record.data["clustering"]:
            return self.record.data["clustering"][name]  # one clustering serves every gate asking for it
        folder, config = self.out / "cluster" / name, self.spec.run_config(self.spec.baseline)

        def work() -> dict[str, Any]:
            result = self.steps.cluster(config, grouping, folder)
            write_json(folder / "clustering.json", result)
            return {key: value for key, value in result.items() if key != "clustering"}

        inputs = {"grouping": grouping, "data": self.data_hash, "holdout": config.holdout, "seed": config.seed}
        row = self._run(_Step("cluster", name, inputs, folder, folder / "clustering.json", work))
        self.record.data["clustering"][name] = {**row.metrics, "folder": f"cluster/{name}"}
        return row.metrics

    # ----- one step ---------------------------------------------------------------------------

    def _inputs(self, step: _Step) -> dict[str, Any]:
        return {**step.inputs, "kind": step.kind, "versions": self.versions}

    def _done(self, step: _Step) -> bool:
        """Whether the ledger holds ``step`` done with the same key, and its artifact is there."""
        row = self.ledger.get(step.id)
        return bool(row and row.status == "done" and row.key == step_key(self._inputs(step))
                    and step.artifact.exists())

    def _run(self, step: _Step) -> Row:
        """Run ``step`` unless the ledger holds it done with the same key and its artifact."""
        inputs = self._inputs(step)
        key = step_key(inputs)
        row = self.ledger.get(step.id)
        if self._done(step):
            self.progress.reused(step.id, step.kind, row.seconds)
            self.spent += row.seconds or 0.0
            return row
        self.progress.begin(step.id)
        self.ledger.start(step.id, step.kind, step.name, key, inputs, self.versions)
        if not (step.resumable and row and row.key == key):
            remove(step.output)  # whatever a killed or outdated run left there
        fault_point("plan.step_started", step=step.id, out=self.out)  # for crash tests
        started = self.steps.clock()
        try:
            outcome = step.work()
            if not step.artifact.exists():
                raise RuntimeError(f"step {step.id} finished without writing {step.artifact}")
        except Exception as error:
            self.ledger.fail(step.id, self.steps.clock() - started, f"{type(error).__name__}: {error}")
            self.progress.failed(step.id, error)
            raise
        ran = outcome if isinstance(outcome, Ran) else Ran(outcome, self.steps.clock() - started)
        seconds = ran.seconds
        artifact = str(step.artifact.relative_to(self.out))
        self.ledger.finish(step.id, seconds, ran.metrics, artifact, artifact_hash(step.output, step.skip), ran.task)
        self.spent += seconds
        self.progress.done(step.id, step.kind, seconds)
        return self.ledger.get(step.id)

    # ----- the plan as a whole ----------------------------------------------------------------

    # ----- after the candidates: references, confirmation, decision ---------------------------

    def _references(self) -> None:
        """Fit the reference baselines (no adapter) and compare each with the baseline."""
        folder, config = self.out / REFERENCES, self.spec.run_config(self.spec.baseline)

        def work() -> dict[str, Any]:
            found = self.steps.references(config, folder, SPLITS)
            write_json(folder / "references.json", found)
            return found

        row = self._run(_Step(REFERENCES, "all", {"data": self.data_hash, "holdout": config.holdout,
                                                  "seed": config.seed, "splits": list(SPLITS)},
                              folder, folder / "references.json", work))
        from personalab.evaluate.references import REFERENCES as LABELS

        def compared(name: str, split: str) -> dict[str, Any]:
            return self._paired(f"reference-{name}", self.out / "runs" / self.spec.baseline.name, folder / name,
                                [self.baseline[split].artifact_hash, row.artifact_hash], split).metrics

        order = list(LABELS)
        self.record.data["references"] = {
            name: {"label": LABELS.get(name, name), "metrics": by_split,
                   "comparisons": {split: compared(name, split) for split in by_split}}
            for name, by_split in sorted(row.metrics.items(), key=lambda item: order.index(item[0]))}
        self._save()

    def _confirm(self) -> None:
        """The one confirmatory test: the pick against the baseline on the test rows."""
        winner = self._pick()
        if winner is None:
            self.record.data["confirmation"] = None
            return
        comparison = self.record.entry(winner)["comparisons"][CONFIRMATION_SPLIT]
        repeats = self._repeats(winner, comparison) if self.spec.repeats > 1 else []
        verdict = confirm(comparison, self.spec.acceptance, [r["difference"] for r in repeats])
        self.record.data["confirmation"] = {
            "candidate": winner, "split": CONFIRMATION_SPLIT, "selected_on": self.spec.select_on,
            "comparison": comparison, "repeats": repeats, "verdict": verdict.to_dict(),
            "confirmed": verdict.accepted}
        self._save()

    def _repeats(self, winner: str, first: dict[str, Any]) -> list[dict[str, Any]]:
        """The baseline and the pick trained again under seeds seed + 1, ...: the gain on the
        test rows under every seed (the plan's own seed first)."""
        candidate = next(c for c in self.spec.candidates if c.name == winner)
        gains = [_gain(self.spec.seed, first)]
        for seed in range(self.spec.seed + 1, self.spec.seed + self.spec.repeats):
            base = self._train_and_evaluate(self.spec.baseline, seed, (CONFIRMATION_SPLIT,))[CONFIRMATION_SPLIT]
            other = self._train_and_evaluate(candidate, seed, (CONFIRMATION_SPLIT,))[CONFIRMATION_SPLIT]
            comparison = self._compare(repeat_name(winner, seed), base, other, CONFIRMATION_SPLIT,
                                       against=repeat_name(self.spec.baseline.name, seed))
            gains.append(_gain(seed, comparison))
            self.record.data["confirmation_repeats"] = gains  # visible while the repeats run
            self._save()
        return gains

    def _decide(self) -> None:
        plan = self.record.data
        chosen = plan["confirmation"]["candidate"] if (plan["confirmation"] or {}).get("confirmed") \
            else self.spec.baseline.name
        plan["decision"] = describe_decision(plan, self._against_best_reference(chosen))
        decision = plan["decision"]
        self.progress.note(f"plan done: {decision['chosen']} chosen ({decision['summary']})")

    def _against_best_reference(self, chosen: str) -> dict[str, Any] | None:
        """The chosen strategy against the best reference baseline on the test rows."""
        name = best_reference(self.record.data, CONFIRMATION_SPLIT)
        if name is None:
            return None
        hashes = [self._artifact(f"{REFERENCES}:all"), self._artifact(f"evaluate:{chosen}@{CONFIRMATION_SPLIT}")]
        row = self._paired(f"{chosen}-against-{name}", self.out / REFERENCES / name, self.out / "runs" / chosen,
                           hashes, CONFIRMATION_SPLIT)
        return {"name": name, "label": self.record.data["references"][name]["label"], "comparison": row.metrics}

    def _planned(self) -> list[tuple[str, str]]:
        planned = strategy_steps(self.spec.baseline.name)[:1 + len(SPLITS)]  # the baseline compares with nothing
        groupings: set[str] = set()
        for candidate in self.spec.candidates:
            if candidate.gate is not None and candidate.gate.min_silhouette is not None:
                from personalab.strategies.registry import strategy_options

                name = grouping_name(candidate.grouping(strategy_options(candidate.strategy)))
                if name not in groupings:
                    groupings.add(name)
                    planned.append((f"cluster:{name}", "cluster"))
            planned += strategy_steps(candidate.name)
        from personalab.evaluate.references import REFERENCES as LABELS

        planned.append((f"{REFERENCES}:all", REFERENCES))
        planned += [(f"compare:reference-{name}@{split}", "compare") for name in LABELS for split in SPLITS]
        for seed in range(self.spec.seed + 1, self.spec.seed + self.spec.repeats):
            planned += [(f"train:{repeat_name(self.spec.baseline.name, seed)}", "train"),
                        (f"evaluate:{repeat_name(self.spec.baseline.name, seed)}@test", "evaluate"),
                        (f"train:<pick>.seed{seed}", "train"), (f"evaluate:<pick>.seed{seed}@test", "evaluate"),
                        (f"compare:<pick>.seed{seed}@test", "compare")]
        return planned + [("compare:<chosen>-against-<best reference>@test", "compare")]

    def _save(self) -> None:
        self.record.save(self.spent)


def repeat_name(name: str, seed: int) -> str:
    """The run folder of ``name`` trained again under a repeat ``seed``."""
    return f"{name}.seed{seed}"


def _gain(seed: int, comparison: dict[str, Any]) -> dict[str, Any]:
    overall = comparison["overall"]
    return {"seed": seed, "score_baseline": overall["score_a"], "score_candidate": overall["score_b"],
            "difference": overall["difference"], "ci_low": overall["ci_low"], "ci_high": overall["ci_high"],
            "p_value": overall["p_value"]}
