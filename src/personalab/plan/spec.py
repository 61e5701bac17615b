"""The plan spec: the playbook's decision tree as data (what ``configs/playbook.yaml`` holds).

This module owns the *shape* of a plan once it is valid: the baseline, the candidate
strategies in the order they are tried, the acceptance rule, the stopping rule, the time budget,
and how each strategy becomes a ``RunConfig`` for ``train_run``. Reading and checking a YAML
file is ``personalab.plan.parse``; deciding is ``personalab.plan.acceptance``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from personalab.errors import PersonalabError
from personalab.evaluate.text_metrics import ROW_METRICS
from personalab.models.base import ModelSpec

METRICS = ("accuracy", *ROW_METRICS)

STOP_RULES = ("first_win", "all")
SELECTION_SPLITS = ("val", "test")
CONFIRMATION_SPLIT = "test"
# The clustering options a cluster-based strategy takes; a gate clusters with the same ones.
GROUPING_OPTIONS = {"k": None, "k_min": 2, "k_max": 8, "method": "kmeans", "source": "inputs"}


def grouping_name(grouping: dict[str, Any]) -> str:
    """A readable folder name for a clustering, e.g. ``inputs-kmeans-k2-8``."""
    k = f"k{grouping['k']}" if grouping.get("k") else f"k{grouping['k_min']}-{grouping['k_max']}"
    return f"{grouping['source']}-{grouping['method']}-{k}"


@dataclass(frozen=True)
class Gate:
    """A check made before a candidate is trained; a candidate whose gate fails is skipped."""

    min_silhouette: float | None = None
    """Skip unless the personas' clustering (with the candidate's own clustering options) has at
    least this mean silhouette: cluster strategies cannot help where there are no clusters."""


@dataclass(frozen=True)
class Candidate:
    """One strategy of the plan: the baseline, or a branch of the tree."""

    name: str
    """Its label: the run folder ``runs/<name>`` and its row in the table (unique in a plan)."""
    strategy: str
    """A registered strategy (``personalab ls strategies``)."""
    options: dict[str, Any] = field(default_factory=dict)
    """The strategy's options, e.g. ``{k: 4}`` or ``{weight: 0.6}``."""
    preset: str | None = None
    """Training preset for this strategy (default: the plan's), e.g. ``constrained``."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Training settings overriding the plan's for this strategy alone."""
    augment: list[Any] = field(default_factory=list)
    """Augmenters of its train rows (``personalab ls augmenters``), e.g. ``[synonyms, swap]``."""
    gate: Gate | None = None
    branch: str = ""
    """Which branch of the decision tree it stands for, in words (shown in the decision)."""

    def grouping(self, defaults: dict[str, Any]) -> dict[str, Any]:
        """The clustering it would use: its options over the strategy's defaults."""
        base = {key: defaults.get(key, value) for key, value in GROUPING_OPTIONS.items()}
        return {key: self.options.get(key, value) for key, value in base.items()}


@dataclass(frozen=True)
class Acceptance:
    """When a candidate counts as beating the baseline: all of these must hold."""

    alpha: float = 0.05
    """The persona-level paired test's p-value must be strictly below alpha (on the selection
    rows to be selected, on the test rows to be confirmed)."""
    min_gain: float = 0.0
    """The difference of the plan's metric (candidate - baseline, a fraction: 0.01 = 1 point)
    must reach this."""
    harm_alpha: float | None = 0.05
    """At confirmation: reject when the personas worse on the selection rows are significantly
    worse on the test rows too, at this level (``personalab.evaluate.harm``; None: no check)."""
    require_every_repeat: bool = False
    """At confirmation, with ``repeats`` > 1: the gain must be positive under every seed."""
    n_resamples: int = 9999
    """Resamples of the persona-level bootstrap and permutation test (BENCHMARK.md: 9999, seed 0)."""
    confidence: float = 0.95


@dataclass(frozen=True)
class PlanSpec:
    data: str
    """Dataset folder (relative paths are read from the current directory)."""
    baseline: Candidate
    candidates: tuple[Candidate, ...]
    model: ModelSpec = field(default_factory=ModelSpec)
    preset: str = "default"
    settings: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    holdout: float = 0.0
    fleet_shard: int = 64
    """At most this many adapters of a fleet train at once (memory, not results)."""
    acceptance: Acceptance = field(default_factory=Acceptance)
    stop: str = "first_win"
    time_budget_minutes: float | None = None
    """Candidates not started once the plan's steps have taken this long are skipped. The time
    is what the steps took when they ran (as the ledger recorded it), so a resumed plan skips
    the same candidates as an uninterrupted one; a candidate once started is finished."""
    select_on: str = "val"
    """The rows candidates are screened and chosen on; the choice is then confirmed once on the
    test rows. ``test`` chooses on the rows it reports (optimistic; the report warns)."""
    repeats: int = 1
    """Seeds the baseline and the chosen candidate are trained under (the plan's seed, then
    seed + 1, ...): the report shows the gain under each."""
    metric: str | None = None
    """The per-row score candidates are compared with the baseline by: ``accuracy`` for a
    classification dataset, a generation metric (``rougeL``, ``rouge1``, ...) for a generation
    one; None: accuracy or ROUGE-L, by the dataset's task."""
    description: str = ""
    executor: Any = None
    """Where fleet shards train (``personalab.run.executor.ExecutorSpec``; None: in this
    process). How, not what: no step key holds it, so a plan resumes across executors."""
    source: str = "<plan>"
    """The file it was read from, for messages."""

    def strategies(self) -> tuple[Candidate, ...]:
        return (self.baseline, *self.candidates)

    def metric_for(self, task: str) -> str:
        """The metric the plan compares by on a dataset of ``task``; a clear error when the
        plan names one the task cannot have."""
        if self.metric is None:
            return "rougeL" if task == "generation" else "accuracy"
        if (self.metric == "accuracy") == (task == "generation"):
            wanted = f"one of {', '.join(ROW_METRICS)}" if task == "generation" else "accuracy"
            raise PersonalabError(f"{self.source}: metric: {self.metric} cannot measure a {task} dataset "
                                  f"({self.data}); use {wanted}, or leave `metric` out")
        return self.metric

    def run_config(self, candidate: Candidate, seed: int | None = None):
        """The ``RunConfig`` that trains ``candidate``: preset, then the plan's settings, then
        the candidate's own settings; under the plan's seed unless ``seed`` is given."""
        from personalab.run.rundir import RunConfig
        from personalab.train.presets import resolve_settings

        preset = candidate.preset or self.preset
        settings = resolve_settings(preset, **{**self.settings, **candidate.settings})
        return RunConfig(
            data=str(Path(self.data).resolve()), strategy=candidate.strategy,
            strategy_options=dict(candidate.options), preset=preset, seed=self.seed if seed is None else seed,
            holdout=self.holdout, augment=list(candidate.augment), model=self.model, settings=settings,
            fleet_shard=self.fleet_shard,
        )


    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["candidates"] = [asdict(c) for c in self.candidates]
        return data
