"""Comparing two evaluated runs row by row: reading their predictions, pairing the rows, and a
table a person can read.

This module owns the files side of a paired comparison: each run's
``eval/<split>/predictions.jsonl`` (written by ``personalab evaluate``), aligned by
(persona, example id — or the input when a row has no id). A paired test is only valid on the
same rows, so any difference in the row sets (or in their gold labels) is refused, never
silently intersected. The statistics themselves are ``personalab.evaluate.stats``.
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

PREDICTIONS = "predictions.jsonl"
METRICS = "metrics.json"


def compare_runs(
    run_a: str | Path,
    run_b: str | Path,
    split: str = "test",
    n_resamples: int = 9999,
    seed: int = 0,
    confidence: float = 0.95,
    flag_split: str | None = None,
    harm_alpha: float = 0.05,
) -> dict[str, Any]:
    """Run B against run A (the baseline) on the rows both were evaluated on: the persona-level
    paired comparison, every persona's outcome and — when ``flag_split`` names another split
    both runs were evaluated on — the harm check (personas worse on ``flag_split``, tested on
    ``split``), as plain JSON-ready data."""
    persona_ids, correct_a, correct_b = paired_rows(run_a, run_b, split)
    overall = paired_comparison(persona_ids, correct_a, correct_b, n_resamples=n_resamples, seed=seed,
                                confidence=confidence)
    result = {
        "split": split,
        "a": run_info(run_a, split),
        "b": run_info(run_b, split),
        "overall": overall.to_dict(),
        "per_persona": persona_outcomes(persona_ids, correct_a, correct_b).to_dict(),
        "harm": None,
    }
    if flag_split is not None and flag_split != split:
        flagged = persona_outcomes(*paired_rows(run_a, run_b, flag_split)).worse_ids()
        sums = confirmation_sums(persona_ids, correct_a, correct_b)
        harm = harm_check(flagged, sums, alpha=harm_alpha, n_resamples=n_resamples, seed=seed)
        result["harm"] = {"flag_split": flag_split, **harm.to_dict()}
    return result


def paired_rows(run_a: str | Path, run_b: str | Path, split: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(persona ids, A correct, B correct) of the two runs' evaluations on ``split``, paired."""
    rows_a, rows_b = load_predictions(run_a, split), load_predictions(run_b, split)
    return align(rows_a, rows_b, Path(run_a), Path(run_b), split)


def has_predictions(run: str | Path, split: str) -> bool:
    return (Path(run) / "eval" / split / PREDICTIONS).exists()


def load_predictions(run: str | Path, split: str) -> list[dict[str, Any]]:
    """The rows of ``run``'s evaluation on ``split``, each checked to carry what pairing needs."""
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
        _check_row(path, line, row)
    return [row for _, row in rows]


def run_info(run: str | Path, split: str) -> dict[str, Any]:
    """Who the run is: its folder, and the strategy and model its metrics.json records."""
    run = Path(run)
    path = run / "eval" / split / METRICS
    metrics = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return {"run": str(run), "name": run.name or str(run), "strategy": metrics.get("strategy"), "model": metrics.get("model")}


def align(
    rows_a: list[dict], rows_b: list[dict], run_a: Path, run_b: Path, split: str
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(persona ids, A correct, B correct) in A's row order, B's rows matched to A's by key."""
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
        np.array([keyed_a[k]["correct"] for k in keys], dtype=bool),
        np.array([keyed_b[k]["correct"] for k in keys], dtype=bool),
    )


def _check_row(path: Path, line: int, row: dict) -> None:
    # evaluate writes these fields; a hand-edited or foreign file is reported, not crashed on.
    if not isinstance(row.get("persona_id"), str):
        raise PersonalabError(f"{path}:{line}: no persona_id")
    if not isinstance(row.get("correct"), bool):
        raise PersonalabError(f"{path}:{line}: 'correct' must be true or false")
    if row.get("example_id") is None and not isinstance(row.get("input"), str):
        raise PersonalabError(f"{path}:{line}: a row needs an example_id or an input to be paired")


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
    ci = f"{overall['ci_low'] * 100:+.2f} to {overall['ci_high'] * 100:+.2f} pts"
    lines = [
        f"B = {_label(b)}  vs  A = {_label(a)}",
        f"{result['split']} split: {overall['n']} paired rows, {overall['n_personas']} personas",
        "",
        _row("accuracy A", f"{overall['accuracy_a']:.2%}"),
        _row("accuracy B", f"{overall['accuracy_b']:.2%}"),
        _row("B - A", f"{overall['difference'] * 100:+.2f} pts"),
        _row(f"{overall['confidence']:.0%} CI of B - A", ci) + f"   {_ci_how(overall)}",
        _row("p (persona level)", _p(overall["p_value"])) + f"   (sign-flip permutation test, "
        f"{overall['n_resamples']} resamples)",
        "",
        f"  personas: {personas['improved']} better, {personas['equal']} equal, {personas['worse']} worse under B",
        _harm_line(result.get("harm")),
        "",
        f"  rows only B got right: {overall['b_better']}, only A: {overall['a_better']}; row-level McNemar "
        f"p {_p(overall['mcnemar_p'])} (treats rows as independent: overstates certainty)",
    ]
    return "\n".join(lines)


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
