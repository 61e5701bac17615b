"""Evaluating a trained run on one split: predictions and metrics written into the run, and
a table a person can read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from personalab.data.atomic import atomic_write_jsonl, atomic_write_text
from personalab.errors import PersonalabError
from personalab.evaluate.metrics import classification_metrics
from personalab.evaluate.references import REFERENCES, reference_accuracies, unavailable_references
from personalab.routing import Predictions, predict
from personalab.rundir import Run, open_run, training_records

# The label column of format_metrics: wide enough for the longest reference label (indented by 2).
_WIDTH = max(34, 2 + max(len(label) for label in REFERENCES.values()))


def evaluate_run(root: Path, split: str = "test", progress: bool = True, references: bool = True) -> dict[str, Any]:
    """Score the run at ``root`` on ``split``; ``references``: also record the accuracies of
    the reference baselines (``personalab.evaluate.references``) on the same rows."""
    run = open_run(root)
    rows = run.dataset.split(split)
    if not rows:
        raise PersonalabError(f"the dataset has no {split!r} rows to evaluate")
    predictions = predict(run.backend, run.model, run.personalizer, rows, progress=progress)
    metrics = classification_metrics(rows, predictions.predicted, run.backend.choices)
    metrics["split"] = split
    metrics["strategy"] = run.config.strategy
    metrics["model"] = run.config.model.name
    metrics["default_route_personas"] = sorted(
        {row.persona_id for row in rows if run.personalizer.uses_default(row.persona_id)}
        if any(not run.personalizer.uses_default(pid) for pid in run.dataset.personas) else []
    )
    records = training_records(run.root)
    if references:
        metrics.update(_references(run, split, records.get("held_out_personas") or ()))
    metrics["train_seconds"] = records.get("seconds")
    if records.get("held_out_personas"):
        metrics["cold_start"] = cold_start_metrics(rows, predictions.predicted, records["held_out_personas"])
    _write(run, split, predictions, metrics)
    return metrics


def _references(run: Run, split: str, held_out) -> dict[str, Any]:
    # Held-out personas' train rows are hidden from the references too: they know what the run knew.
    block: dict[str, Any] = {"references": reference_accuracies(run.dataset, split, held_out)}
    skipped = unavailable_references()
    if skipped:
        block["references_skipped"] = skipped
    return block


def cold_start_metrics(rows, predicted, held_out) -> dict[str, Any]:
    """Accuracy on the rows of personas held out of training, and on all the others."""
    held = set(held_out)
    correct = np.array([p == r.output for p, r in zip(predicted, rows)])
    is_new = np.array([r.persona_id in held for r in rows])
    return {
        "personas": len(held),
        "rows": int(is_new.sum()),
        "accuracy_new_personas": float(correct[is_new].mean()) if is_new.any() else None,
        "accuracy_trained_personas": float(correct[~is_new].mean()) if (~is_new).any() else None,
    }


def _write(run: Run, split: str, predictions: Predictions, metrics: dict[str, Any]) -> None:
    folder = run.root / "eval" / split
    records = []
    for row, route, scores, label in zip(predictions.rows, predictions.routes, predictions.scores, predictions.predicted):
        records.append({
            "persona_id": row.persona_id,
            "example_id": row.example_id,
            "input": row.input,
            "output": row.output,
            "predicted": label,
            "correct": label == row.output,
            "route": route,
            "scores": {c: _finite(s) for c, s in zip(predictions.choices, scores)},
        })
    atomic_write_jsonl(folder / "predictions.jsonl", records)
    atomic_write_text(folder / "metrics.json", json.dumps(metrics, indent=2))


def _finite(value: float) -> float | None:
    return round(float(value), 6) if np.isfinite(value) else None


def _reference_lines(metrics: dict[str, Any]) -> list[str]:
    accuracies, skipped = metrics.get("references") or {}, metrics.get("references_skipped") or {}
    if not accuracies and not skipped:
        return []
    lines = ["", "  references, no adapter (learned from the train split):"]
    for name, label in REFERENCES.items():
        if name in accuracies:
            lines.append(f"    {label:<{_WIDTH - 2}}{accuracies[name]:>8.2%}")
        elif name in skipped:
            lines.append(f"    {label:<{_WIDTH - 2}}{'n/a':>8}   ({skipped[name]})")
    return lines


def format_metrics(metrics: dict[str, Any]) -> str:
    """A short readable summary of ``evaluate_run``'s result."""
    per_persona = np.array([p["accuracy"] for p in metrics["per_persona"].values()])
    lines = [
        f"{metrics['strategy']} on {metrics['model']}, {metrics['split']} split: {metrics['n']} rows, "
        f"{len(per_persona)} personas",
        "",
        f"  {'metric':<{_WIDTH}}{'value':>8}",
        f"  {'accuracy':<{_WIDTH}}{metrics['accuracy']:>8.2%}",
        f"  {'macro-F1':<{_WIDTH}}{metrics['macro_f1']:>8.4f}",
    ]
    if "mae" in metrics:
        lines.append(f"  {'mean absolute error':<{_WIDTH}}{metrics['mae']:>8.4f}")
    q1, median, q3 = np.percentile(per_persona, [25, 50, 75])
    iqr = f"(IQR {q1:.1%} to {q3:.1%})"
    lines.append(f"  {'per-persona accuracy: median':<{_WIDTH}}{median:>8.2%}   {iqr}")
    lines += _reference_lines(metrics)
    if metrics.get("default_route_personas"):
        lines.append(f"\n  {len(metrics['default_route_personas'])} personas used the default route (no adapter of their own)")
    cold = metrics.get("cold_start")
    if cold and cold["accuracy_new_personas"] is not None:
        lines.append(f"\n  {cold['personas']} personas were held out of training (cold start): accuracy "
                     f"{cold['accuracy_new_personas']:.2%} on their {cold['rows']} rows, "
                     f"{cold['accuracy_trained_personas']:.2%} on the others")
    if metrics.get("train_seconds"):
        lines.append(f"\n  training took {metrics['train_seconds']:.0f} s")
    return "\n".join(lines)
