"""Metrics of a set of predictions: accuracy, macro-F1, MAE for ordinal labels, and accuracy
per persona. The reference baselines every result is read against are
``personalab.evaluate.references``."""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np
from sklearn.metrics import f1_score

from personalab.data.schema import Example


def classification_metrics(rows: Sequence[Example], predicted: Sequence[str], choices: Sequence[str]) -> dict:
    gold = [row.output for row in rows]
    correct = np.array([g == p for g, p in zip(gold, predicted)], dtype=float)
    metrics = {
        "n": len(rows),
        "accuracy": float(correct.mean()) if len(rows) else float("nan"),
        "macro_f1": float(f1_score(gold, predicted, labels=list(choices), average="macro", zero_division=0)),
    }
    if _ordinal(choices):
        metrics["mae"] = float(np.mean([abs(float(g) - float(p)) for g, p in zip(gold, predicted)]))
    metrics["per_persona"] = per_persona_accuracy(rows, correct)
    return metrics


def per_persona_accuracy(rows: Sequence[Example], correct: np.ndarray) -> dict[str, dict]:
    hits: dict[str, list[float]] = defaultdict(list)
    for row, ok in zip(rows, correct):
        hits[row.persona_id].append(float(ok))
    return {pid: {"n": len(v), "accuracy": float(np.mean(v))} for pid, v in hits.items()}


def _ordinal(choices: Sequence[str]) -> bool:
    try:
        [float(c) for c in choices]
    except ValueError:
        return False
    return len(choices) > 1
