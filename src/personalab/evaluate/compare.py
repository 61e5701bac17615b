"""Comparing two evaluated runs row by row: reading their predictions, pairing the rows, and a
table a person can read.

This module owns the files side of a paired comparison: each run's
``eval/<split>/predictions.jsonl`` (written by ``personalab evaluate``), aligned by
(persona, example id — or the input when a row has no id). A paired test is only valid on the
same rows, so any difference in the row sets (or in their gold labels) is refused, never
silently intersected. The statistics themselves are ``personalab.evaluate.stats``.

The per-row score compared is the ``metric``: ``accuracy`` (each row right or wrong) for a
classification run, or one of a generation run's per-row metrics (``rougeL`` by default, see
``personalab.evaluate.text_metrics.ROW_METRICS``); by default, the baseline's headline metric.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from personalab.data.io import read_jsonl
from personalab.errors import DataError, PersonalabError
from personalab.evaluate.harm import confirmation_sums, harm_check, persona_outcomes
from personalab.evaluate.stats import paired_comparison
from personalab.evaluate.figures import label
from personalab.evaluate.text_metrics import ROW_METRICS

PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"
METRIC_NAMES = ("accuracy", *ROW_METRICS)  # the per-row scores a comparison can pair


def compare_runs(
    run_a: str | Path,
    run_b: str | Path,
    split: str = "test",
    n_resamples: int = 9999,
    seed: int = 0,
    confidence: float = 0.95,
    flag_split: str | None = None,
    harm_alpha: float = 0.05,
    metric: str | None = None,
) -> dict[str, Any]:
    """Run B against run A (the baseline) on the rows both were evaluated on, by the per-row
    ``metric`` (None: A's headline metric): the persona-level paired comparison, every
    persona's outcome and — when ``flag_split`` names another split both runs were evaluated
    on — the harm check (personas worse on ``flag_split``, tested on ``split``), as plain
    JSON-ready data."""
    metric = metric or headline_metric(run_a, split)
    persona_ids, score_a, score_b = paired_rows(run_a, run_b, split, metric)
    overall = paired_comparison(persona_ids, score_a, score_b, n_resamples=n_resamples, seed=seed,
                                confidence=confidence, metric=metric)
    result = {
        "split": split,
        "a": run_info(run_a, split),
        "b": run_info(run_b, split),
        "overall": overall.to_dict(),
        "per_persona": persona_outcomes(persona_ids, score_a, score_b).to_dict(),
        "harm": None,
    }
    if flag_split is not None and flag_split != split:
        flagged = persona_outcomes(*paired_rows(run_a, run_b, flag_split, metric)).worse_ids()
        sums = confirmation_sums(persona_ids, score_a, score_b)
        harm = harm_check(flagged, sums, alpha=harm_alpha, n_resamples=n_resamples, seed=seed)
        result["harm"] = {"flag_split": flag_split, **harm.to_dict()}
    return result


def paired_rows(run_a: str | Path, run_b: str | Path, split: str,
                metric: str = "accuracy") -> tuple[list[str], np.ndarray, np.ndarray]:
    """(persona ids, A's scores, B's scores) of the two runs' evaluations on ``split``, paired."""
    rows_a, rows_b = load_predictions(run_a, split, metric), load_predictions(run_b, split, metric)
    return align(rows_a, rows_b, Path(run_a), Path(run_b), split, metric)


def headline_metric(run: str | Path, split: str) -> str:
    """The metric ``run``'s evaluation on ``split`` names as its headline (accuracy, or ROUGE-L
    for generation); accuracy for evaluations written before metrics.json named one."""
    path = Path(run) / "eval" / split / METRICS
    metrics = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return metrics.get("headline", "accuracy")


def has_predictions(run: str | Path, split: str) -> bool:
    return (Path(run) / "eval" / split / PREDICTIONS).exists()


def load_predictions(run: str | Path, split: str, metric: str = "accuracy") -> list[dict[str, Any]]:
    """The rows of ``run``'s evaluation on ``split``, each checked to carry what pairing needs
    (an identity and its ``metric`` score)."""
    if metric not in METRIC_NAMES:
        raise PersonalabError(f"unknown metric {metric!r}; choose one of {', '.join(METRIC_NAMES)}")
    run = Path(run)
    if not run.is_dir():
        raise PersonalabError(f"{run}: no such run directory")
    path = run / "eval" / split / PREDICTIONS
    if not path.exists():
        flag = "" if split == "test" else f" --split {split}"
        raise PersonalabError(f"{run} has not been evaluated on the {split} split (no {path}); "
                              f"run `personalab evaluate {run}{flag}` first")
    rows, problems = read_jsonl(path)
    if problems:
        raise DataError(problems)
    for line, row in rows:
        _check_row(path, line, row, metric)
    return [row for _, row in rows]


def run_info(run: str | Path, split: str) -> dict[str, Any]:
    """Who the run is: its folder, and the strategy and model its metrics.json records."""
    run = Path(run)
    path = run / "eval" / split / METRICS
    metrics = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return {"run": str(run), "name": run.name or str(run), "strategy": metrics.get("strategy"), "model": metrics.get("model")}


def align(
    rows_a: list[dict], rows_b: list[dict], run_a: Path, run_b: Path, split: str, metric: str = "accuracy"
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(persona ids, A's scores, B's scores) in A's row order, B's rows matched to A's by key."""
    keyed_a, keyed_b = _keyed(rows_a, run_a), _keyed(rows_b, run_b)
    if keyed_a.keys() != keyed_b.keys():
        raise PersonalabError(_mismatch(keyed_a, keyed_b, run_a, run_b, split))
    for key, row in keyed_a.items():
        other = keyed_b[key]
        if "output" in row and "output" in other and row["output"] != other["output"]:
            raise PersonalabError(
                f"{_describe(key)} has the answer {row['output']!r} in {run_a} but {other['output']!r} in {run_b}: "
                "the runs were evaluated on different data, so their rows cannot be paired"
            )
    keys = list(keyed_a)
    return (
        [key[0] for key in keys],
        np.array([row_score(keyed_a[k], metric) for k in keys], dtype=float),
        np.array([row_score(keyed_b[k], metric) for k in keys], dtype=float),
    )


def row_score(row: dict, metric: str) -> float:
    """A prediction line's score by ``metric``: 1/0 for right/wrong, else its text metric."""
    return float(row["correct"]) if metric == "accuracy" else float(row["metrics"][metric])


def _check_row(path: Path, line: int, row: dict, metric: str) -> None:
    # evaluate writes these fields; a hand-edited or foreign file is reported, not crashed on.
    if not isinstance(row.get("persona_id"), str):
        raise PersonalabError(f"{path}:{line}: no persona_id")
    if row.get("example_id") is None and not isinstance(row.get("input"), str):
        raise PersonalabError(f"{path}:{line}: a row needs an example_id or an input to be paired")
    generated = isinstance(row.get("metrics"), dict)
    if metric == "accuracy" and generated:
        raise PersonalabError(
            f"{path.parents[2]} is a generation run: its rows are generated texts, not right or wrong answers, "
            f"so it has no accuracy; compare it by --metric rougeL (or {', '.join(ROW_METRICS)})")
    if metric != "accuracy" and not generated:
        raise PersonalabError(f"{path.parents[2]} is a classification run: its rows have no {metric}, which "
                              "measures generated text; compare it by --metric accuracy")
    value = row.get("correct") if metric == "accuracy" else row["metrics"].get(metric)
    if metric == "accuracy" and not isinstance(value, bool):
        raise PersonalabError(f"{path}:{line}: 'correct' must be true or false")
    if metric != "accuracy" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise PersonalabError(f"{path}:{line}: no number for {metric!r} in its 'metrics'")


def _row_key(row: dict) -> tuple[str, str, str]:
    # The example id is the stable key (the split hash uses it); rows without one fall back to
    # their text, which validation keeps unique per persona.
    if row.get("example_id") is not None:
        return (row["persona_id"], "example", str(row["example_id"]))
    return (row["persona_id"], "input", row["input"])


def _keyed(rows: list[dict], run: Path) -> dict[tuple[str, str, str], dict]:
    keyed: dict[tuple[str, str, str], dict] = {}
    for row in rows:
        key = _row_key(row)
        if key in keyed:
            raise PersonalabError(f"{run}: {_describe(key)} appears twice in its predictions, so rows cannot be paired")
        keyed[key] = row
    return keyed


def _mismatch(keyed_a: dict, keyed_b: dict, run_a: Path, run_b: Path, split: str) -> str:
    only_a = [k for k in keyed_a if k not in keyed_b]
    only_b = [k for k in keyed_b if k not in keyed_a]
    common = len(keyed_a) - len(only_a)
    examples = "; ".join(
        f"e.g. {_describe(keys[0])} only in {run}" for keys, run in ((only_a, run_a), (only_b, run_b)) if keys
    )
    return (
        f"the runs were not evaluated on the same {split} rows: {run_a} has {len(keyed_a)}, {run_b} has "
        f"{len(keyed_b)}, {common} in both ({len(only_a)} only in {run_a}, {len(only_b)} only in {run_b}; "
        f"{examples}). A paired test needs the same rows: evaluate both runs on the same dataset and split"
    )


def _describe(key: tuple[str, str, str]) -> str:
    persona, kind, value = key
    shown = value if len(value) <= 40 else value[:37] + "..."
    return f"persona {persona!r} {kind} {shown!r}"


def format_comparison(result: dict[str, Any]) -> str:
    """A short readable table of ``compare_runs``' result."""
    a, b, overall, personas = result["a"], result["b"], result["overall"], result["per_persona"]
    name = metric_label(overall)
    ci = f"{overall['ci_low'] * 100:+.2f} to {overall['ci_high'] * 100:+.2f} pts"
    lines = [
        f"B = {_label(b)}  vs  A = {_label(a)}",
        f"{result['split']} split: {overall['n']} paired rows, {overall['n_personas']} personas",
        "",
        _row(f"{name} A", f"{overall['score_a']:.2%}"),
        _row(f"{name} B", f"{overall['score_b']:.2%}"),
        _row("B - A", f"{overall['difference'] * 100:+.2f} pts"),
        _row(f"{overall['confidence']:.0%} CI of B - A", ci) + f"   {_ci_how(overall)}",
        _row("p (persona level)", _p(overall["p_value"])) + f"   (sign-flip permutation test, "
        f"{overall['n_resamples']} resamples)",
        "",
        f"  personas: {personas['improved']} better, {personas['equal']} equal, {personas['worse']} worse under B",
        _harm_line(result.get("harm")),
        "",
        _rows_line(overall),
    ]
    return "\n".join(lines)


def metric_label(overall: dict[str, Any]) -> str:
    """How a comparison's metric is named for people ("accuracy", "ROUGE-L", ...)."""
    return label(overall.get("metric", "accuracy"))


def _rows_line(overall: dict[str, Any]) -> str:
    if overall.get("mcnemar_p") is None:  # continuous scores: no right/wrong table
        return f"  rows B scored higher on: {overall['b_better']}, A: {overall['a_better']}"
    return (f"  rows only B got right: {overall['b_better']}, only A: {overall['a_better']}; row-level McNemar "
            f"p {_p(overall['mcnemar_p'])} (treats rows as independent: overstates certainty)")


def _harm_line(harm: dict[str, Any] | None) -> str:
    if not harm:
        return "  harm check: not run (needs both runs evaluated on a second split: --flag-split val)"
    if not harm["n_tested"]:
        return f"  harm check: no persona was worse under B on the {harm['flag_split']} rows"
    verdict = "HARMED" if harm["harmful"] else "not significantly worse"
    return (f"  harm check: the {harm['n_tested']} personas worse under B on the {harm['flag_split']} rows are "
            f"{harm['flagged_difference'] * 100:+.2f} pts here: {verdict} (one-sided p {_p(harm['p_value'])}, "
            f"alpha {harm['alpha']:g})")


def _row(name: str, value: Any) -> str:
    return f"  {name:<24}{value!s:>22}"


def _label(info: dict[str, Any]) -> str:
    return f"{info['strategy']} ({info['run']})" if info.get("strategy") else info["run"]


def _p(value: float) -> str:
    return f"{value:.4f}" if value >= 1e-4 else f"{value:.1e}"


def _ci_how(overall: dict[str, Any]) -> str:
    if overall["ci_method"] == "exact":
        return "(exact: every persona's difference is the same)"
    return (f"(persona bootstrap, {overall['ci_method']}, {overall['n_resamples']} resamples, "
            f"seed {overall['seed']})")
