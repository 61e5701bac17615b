"""Reading a plan file: YAML -> ``PlanSpec``, with every problem reported at once as
``FILE:LINE: key.path: what is wrong`` (a ``PersonalabError``: no traceback for the user).

Strategy names and options are checked against the strategy registry, presets and settings
against the training presets, so that a typo fails here, in a second, and not after an hour of
training the baseline.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

from personalab.data.yaml_reader import Reader, join, load_yaml_mapping, type_name
from personalab.errors import PersonalabError
from personalab.models.base import ModelSpec
from personalab.run.executor import ExecutorSpec
from personalab.plan.spec import METRICS, SELECTION_SPLITS, STOP_RULES, Acceptance, Candidate, Gate, PlanSpec

TOP_KEYS = ("data", "model", "preset", "settings", "seed", "holdout", "baseline", "candidates",
            "acceptance", "stop", "time_budget_minutes", "select_on", "repeats", "description", "metric", "fleet_shard",
            "executor")
# Keys earlier versions took, and what replaced them: said plainly instead of "unknown key".
RETIRED = {
    "split": "replaced by `select_on: val | test`: candidates are chosen on the select_on rows and the "
             "choice is confirmed once on the test rows",
    "acceptance.max_share_worse": "replaced by `harm_alpha` (a test of the personas that look worse on the "
                                  "selection rows, on the test rows; a per-persona count could never fire)",
    "acceptance.correction": "removed with the per-persona count it corrected; see `harm_alpha`",
}
MAX_REPEATS = 20
STRATEGY_KEYS = ("name", "strategy", "options", "preset", "settings", "augment", "gate", "branch")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")  # it names a folder: runs/<name>


def load_plan(path: str | Path) -> PlanSpec:
    """Read and check the plan file at ``path``."""
    data, lines = load_yaml_mapping(path, "plan", " (data, baseline, candidates, ...)")
    return parse_plan(data, str(path), lines)


def parse_plan(data: dict[str, Any], source: str = "<plan>", lines: dict[str, int] | None = None) -> PlanSpec:
    """Check a plan given as plain data; ``lines`` maps key paths to line numbers."""
    reader = _PlanReader(source, lines or {}, "plan")
    spec = reader.plan(data)
    reader.raise_problems()
    return spec


class _PlanReader(Reader):
    """Reads one plan, collecting problems instead of stopping at the first."""

    # ----- sections -----------------------------------------------------------------------------

    def plan(self, data: dict) -> PlanSpec | None:
        self.retired(data, "")
        self.keys(data, TOP_KEYS + tuple(RETIRED), "")
        preset = self.value(data, "preset", "", "a string", "default")
        settings = self.value(data, "settings", "", "a mapping", {})
        self._check_settings(preset, settings, {}, "")
        baseline = self.strategy(data.get("baseline"), "baseline", preset, settings)
        candidates = self.candidates(data, preset, settings)
        spec = PlanSpec(
            data=self.value(data, "data", "", "a string", "", required=True),
            baseline=baseline, candidates=tuple(candidates),
            model=self.model(data.get("model") or {}), preset=preset, settings=settings,
            seed=self.value(data, "seed", "", "an integer", 0),
            holdout=self.number(data, "holdout", "", 0.0, 0.0, 1.0, open_high=True),
            fleet_shard=self.integer(data, "fleet_shard", "", 64, 1),
            acceptance=self.acceptance(data.get("acceptance") or {}),
            stop=self.choice(data, "stop", "", STOP_RULES, "first_win"),
            time_budget_minutes=self.number(data, "time_budget_minutes", "", None, 0.0, float("inf"), open_low=True),
            select_on=self.choice(data, "select_on", "", SELECTION_SPLITS, "val"),
            repeats=self.repeats(data),
            metric=self.choice(data, "metric", "", METRICS, "accuracy") if data.get("metric") is not None else None,
            description=self.value(data, "description", "", "a string", "").strip(), source=self.source,
            executor=self.executor(data.get("executor")),
        )
        self._check_names(spec)
        return spec

    def executor(self, data: Any) -> ExecutorSpec | None:
        """``executor: {kind: ray, address: ..., cpus_per_task: ..., gpus_per_task: ..., max_retries: ...}``:
        where the fleet shards train (how, not what: no step key holds it)."""
        if data is None:
            return None
        given = self.fields(data, ExecutorSpec, "executor")
        if given is None:
            return None
        try:
            return ExecutorSpec(**given)
        except (PersonalabError, TypeError) as error:
            self.problem("executor", str(error))
            return None

    def candidates(self, data: dict, preset: str, settings: dict) -> list[Candidate]:
        items = self.value(data, "candidates", "", "a list", [], required=True)
        if "candidates" in data and not items:
            self.problem("candidates", "empty: list at least one strategy to try against the baseline")
        read = (self.strategy(item, f"candidates[{i}]", preset, settings, gated=True) for i, item in enumerate(items))
        return [candidate for candidate in read if candidate is not None]

    def strategy(self, item: Any, path: str, preset: str, settings: dict, gated: bool = False) -> Candidate | None:
        if item is None and path == "baseline":
            self.problem(path, "missing; every candidate is compared with it, e.g. `baseline: {strategy: unified}`")
            return None
        if not isinstance(item, dict):
            self.problem(path, f"expected a mapping (strategy, options, ...), got {type_name(item)}")
            return None
        self.keys(item, STRATEGY_KEYS if gated else tuple(k for k in STRATEGY_KEYS if k != "gate"), path)
        name, _, suffix = str(self.value(item, "strategy", path, "a string", "", required=True)).partition(":")
        options = self.value(item, "options", path, "a mapping", {})
        own_preset = self.value(item, "preset", path, "a string") or suffix or None
        own_settings = self.value(item, "settings", path, "a mapping", {})
        augment = self.value(item, "augment", path, "a list", [])
        if augment:
            self._check_augment(augment, f"{path}.augment")
        if name:
            self._check_strategy(name, options, path)
        self._check_settings(own_preset or preset, settings, own_settings, path)
        default_name = name + (f"-{own_preset}" if own_preset else "")
        return Candidate(
            name=self.value(item, "name", path, "a string", default_name), strategy=name, options=options,
            preset=own_preset, settings=own_settings, augment=augment,
            gate=self.gate(item.get("gate"), f"{path}.gate"),
            branch=self.value(item, "branch", path, "a string", ""),
        )

    def _check_augment(self, augment: list, path: str) -> None:
        from personalab.augment import build_augmenters

        try:
            build_augmenters(augment)
        except PersonalabError as error:
            self.problem(path, str(error))

    def gate(self, item: Any, path: str) -> Gate | None:
        if item is None:
            return None
        if not isinstance(item, dict):
            self.problem(path, f"expected a mapping such as {{min_silhouette: 0.1}}, got {type_name(item)}")
            return None
        self.keys(item, tuple(f.name for f in fields(Gate)), path)
        return Gate(min_silhouette=self.number(item, "min_silhouette", path, None, -1.0, 1.0))

    def retired(self, mapping: dict, path: str) -> None:
        for key in mapping:
            where = join(path, str(key))
            if where in RETIRED:
                self.problem(where, RETIRED[where])

    def repeats(self, data: dict) -> int:
        repeats = self.value(data, "repeats", "", "an integer", 1)
        if not 1 <= repeats <= MAX_REPEATS:
            self.problem("repeats", f"must be between 1 and {MAX_REPEATS} (seeds to train the baseline and the "
                                    f"chosen candidate under), got {repeats}")
            return 1
        return repeats

    def acceptance(self, item: Any) -> Acceptance:
        if not isinstance(item, dict):
            self.problem("acceptance", f"expected a mapping (alpha, min_gain, ...), got {type_name(item)}")
            return Acceptance()
        self.retired(item, "acceptance")
        known = tuple(f.name for f in fields(Acceptance))
        self.keys(item, known + tuple(k.split(".")[1] for k in RETIRED if k.startswith("acceptance.")), "acceptance")
        # `harm_alpha: null` turns the harm check off; leaving the key out keeps it at 0.05.
        harm = None if "harm_alpha" in item and item["harm_alpha"] is None else \
            self.number(item, "harm_alpha", "acceptance", 0.05, 0.0, 1.0, open_low=True, open_high=True)
        resamples = self.value(item, "n_resamples", "acceptance", "an integer", 9999)
        if resamples < 1:
            self.problem("acceptance.n_resamples", f"must be at least 1, got {resamples}")
            resamples = 9999
        return Acceptance(
            alpha=self.number(item, "alpha", "acceptance", 0.05, 0.0, 1.0, open_low=True, open_high=True),
            min_gain=self.number(item, "min_gain", "acceptance", 0.0, -1.0, 1.0),
            harm_alpha=harm,
            require_every_repeat=self.value(item, "require_every_repeat", "acceptance", "a boolean", False),
            n_resamples=resamples,
            confidence=self.number(item, "confidence", "acceptance", 0.95, 0.0, 1.0, open_low=True, open_high=True),
        )

    def model(self, item: Any) -> ModelSpec:
        try:
            return ModelSpec(**(self.fields(item, ModelSpec, "model") or {}))
        except PersonalabError as error:  # a value of the right type out of range, e.g. a batch size of 0
            self.problem("model", str(error))
            return ModelSpec()

    # ----- cross checks -------------------------------------------------------------------------

    def _check_strategy(self, name: str, options: dict, path: str) -> None:
        from personalab.strategies import get_strategy

        try:
            get_strategy(name)
        except PersonalabError as error:
            self.problem(f"{path}.strategy", str(error))
            return
        try:
            get_strategy(name, **options)  # the strategy's own checks of its option values
        except (PersonalabError, TypeError, ValueError) as error:
            self.problem(f"{path}.options", str(error))

    def _check_settings(self, preset: str, plan_settings: dict, own: dict, path: str) -> None:
        from personalab.train.presets import check_preset, read_settings

        if not check_preset(self, preset, join(path, "preset")):
            return
        if path and not own:
            return  # the plan's own settings were checked on their own
        base = plan_settings if path else None
        read_settings(self, own if path else plan_settings, join(path, "settings"), preset, base)

    def _check_names(self, spec: PlanSpec) -> None:
        seen: dict[str, str] = {}
        everything = [("baseline", spec.baseline)] + [(f"candidates[{i}]", c) for i, c in enumerate(spec.candidates)]
        for path, strategy in everything:
            if strategy is None:
                continue
            if not NAME.match(strategy.name):
                self.problem(f"{path}.name", f"{strategy.name!r} cannot name a folder: use letters, digits, _ . -")
            elif strategy.name in seen:
                self.problem(f"{path}.name", f"{strategy.name!r} is already the name of {seen[strategy.name]}; "
                                             "give each strategy its own `name`")
            seen.setdefault(strategy.name, path)
