"""Evaluating a trained run on one split: predictions and metrics written into the run, and
a table a person can read.

A classification run is scored (its predicted choice, right or wrong, per row); a generation
run generates every row's answer through its routes and is measured against the reference
output (``personalab.evaluate.text_metrics``). Either way every prediction line carries a
per-row score that ``personalab compare`` pairs: ``correct``, or the ``metrics`` of the text;
``metrics.json`` names the run's ``headline`` metric (accuracy, or ROUGE-L).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from personalab.data.atomic import atomic_write_jsonl, atomic_write_text
from personalab.errors import PersonalabError
from personalab.evaluate.metrics import classification_metrics
from personalab.evaluate.references import REFERENCES, reference_accuracies, unavailable_references
from personalab.evaluate.compare import METRICS
from personalab.evaluate.figures import companion, label
from personalab.evaluate.text_metrics import ROW_METRICS, generation_metrics, own_vs_other, row_scores
from personalab.models.decoding import GenerationSettings
from personalab.routing import generate, predict
from personalab.run.rundir import Run, open_run, repeat_runs, training_records

# The label column of format_metrics: wide enough for the longest reference label (indented by 2).
_WIDTH = max(34, 2 + max(len(label) for label in REFERENCES.values()))
GENERATION_HEADLINE = "rougeL"  # what a generation run is compared by unless told otherwise


def evaluate_run(root: Path, split: str = "test", progress: bool = True, references: bool = True,
                 generation: GenerationSettings | None = None, dataset: Any = None) -> dict[str, Any]:
    """Score the run at ``root`` on ``split``; ``references``: also record the accuracies of
    the reference baselines (``personalab.evaluate.references``) on the same rows. A run on a
    generation dataset generates its answers (``generation``: how; greedy by default).
    ``dataset``: the run's data already loaded (a plan step's task gets it by reference)."""
    run = open_run(root, dataset)
    rows = run.dataset.split(split)
    if not rows:
        raise PersonalabError(f"the dataset has no {split!r} rows to evaluate")
    records = training_records(run.root)
    held_out = records.get("held_out_personas") or ()
    if run.dataset.spec.task == "generation":
        metrics, lines, values = _generated(run, rows, generation or GenerationSettings(), progress)
    else:
        metrics, lines, values = _classified(run, rows, split, references, held_out, progress)
    metrics["split"] = split
    metrics["strategy"] = run.config.strategy
    metrics["model"] = run.config.model.name
    metrics["default_route_personas"] = sorted(
        {row.persona_id for row in rows if run.personalizer.uses_default(row.persona_id)}
        if any(not run.personalizer.uses_default(pid) for pid in run.dataset.personas) else []
    )
    metrics["train_seconds"] = records.get("seconds")
    if held_out:
        metrics["cold_start"] = cold_start_metrics(rows, values, held_out, metrics["headline"])
    folder = run.root / "eval" / split
    atomic_write_jsonl(folder / "predictions.jsonl", lines)
    atomic_write_text(folder / "metrics.json", json.dumps(metrics, indent=2))
    return metrics


def _classified(run: Run, rows, split: str, references: bool, held_out, progress: bool):
    """(metrics, prediction lines, per-row correctness) of a classification run."""
    predictions = predict(run.backend, run.model, run.personalizer, rows, progress=progress)
    metrics = {"headline": "accuracy", **classification_metrics(rows, predictions.predicted, run.backend.choices)}
    if references:
        metrics.update(_references(run, split, held_out))
    lines = [{**_identity(row), "predicted": label, "correct": label == row.output, "route": route,
              "scores": {c: _finite(s) for c, s in zip(predictions.choices, scores)}}
             for row, route, scores, label in zip(rows, predictions.routes, predictions.scores, predictions.predicted)]
    return metrics, lines, [float(line["correct"]) for line in lines]


def _generated(run: Run, rows, settings: GenerationSettings, progress: bool):
    """(metrics, prediction lines, per-row ROUGE-L) of a generation run."""
    generations = generate(run.backend, run.model, run.personalizer, rows, settings, progress=progress)
    scores = [row_scores(text, row.output) for text, row in zip(generations.texts, rows)]
    metrics = {"headline": GENERATION_HEADLINE, **generation_metrics(rows, generations.texts, scores),
               "own_vs_other": own_vs_other(rows, generations.texts, run.dataset.examples),
               "generation": asdict(settings)}
    lines = [{**_identity(row), "predicted": text, "route": route, "metrics": row_metrics}
             for row, text, route, row_metrics in zip(rows, generations.texts, generations.routes, scores)]
    return metrics, lines, [row_metrics[GENERATION_HEADLINE] for row_metrics in scores]


def _identity(row) -> dict[str, Any]:
    return {"persona_id": row.persona_id, "example_id": row.example_id, "input": row.input, "output": row.output}


def _references(run: Run, split: str, held_out) -> dict[str, Any]:
    # Held-out personas' train rows are hidden from the references too: they know what the run knew.
    block: dict[str, Any] = {"references": reference_accuracies(run.dataset, split, held_out)}
    skipped = unavailable_references()
    if skipped:
        block["references_skipped"] = skipped
    return block


def cold_start_metrics(rows, values, held_out, metric: str) -> dict[str, Any]:
    """The mean per-row ``metric`` (``values``, one per row) on the rows of personas held out of
    training, and on all the others."""
    held = set(held_out)
    values = np.asarray(values, dtype=float)
    is_new = np.array([r.persona_id in held for r in rows])
    return {
        "metric": metric,
        "personas": len(held),
        "rows": int(is_new.sum()),
        "new_personas": float(values[is_new].mean()) if is_new.any() else None,
        "trained_personas": float(values[~is_new].mean()) if (~is_new).any() else None,
    }


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
    generation = "rougeL" in metrics
    lines = [
        f"{metrics['strategy']} on {metrics['model']}, {metrics['split']} split: {metrics['n']} rows, "
        f"{len(metrics['per_persona'])} personas",
        "",
        f"  {'metric':<{_WIDTH}}{'value':>8}",
        *(_generation_lines(metrics) if generation else _classification_lines(metrics)),
    ]
    if metrics.get("default_route_personas"):
        lines.append(f"\n  {len(metrics['default_route_personas'])} personas used the default route (no adapter of their own)")
    cold = metrics.get("cold_start")
    if cold and cold.get("new_personas") is not None:
        lines.append(f"\n  {cold['personas']} personas were held out of training (cold start): {label(cold['metric'])} "
                     f"{_percent(cold['new_personas'])} on their {cold['rows']} rows, "
                     f"{_percent(cold['trained_personas'])} on the others")
    if metrics.get("train_seconds"):
        lines.append(f"\n  training took {metrics['train_seconds']:.0f} s")
    return "\n".join(lines)


def _classification_lines(metrics: dict[str, Any]) -> list[str]:
    lines = [f"  {'accuracy':<{_WIDTH}}{metrics['accuracy']:>8.2%}",
             f"  {'macro-F1':<{_WIDTH}}{metrics['macro_f1']:>8.4f}"]
    if "mae" in metrics:
        lines.append(f"  {'mean absolute error':<{_WIDTH}}{metrics['mae']:>8.4f}")
    lines.append(_per_persona_line(metrics, "accuracy"))
    return lines + _reference_lines(metrics)


def _generation_lines(metrics: dict[str, Any]) -> list[str]:
    """ROUGE and exact match as percentages, BLEU on sacrebleu's 0-100 scale, lengths in words."""
    lines = [f"  {label(name) + ' (mean F)' * name.startswith('rouge'):<{_WIDTH}}{_percent(metrics[name]):>8}"
             for name in ROW_METRICS if name != "sentence_bleu"]
    lines += [f"  {'BLEU (corpus, 0-100)':<{_WIDTH}}{metrics['bleu']:>8.2f}",
              f"  {'output length, words (reference)':<{_WIDTH}}{metrics['length']:>8.1f}   "
              f"({metrics['reference_length']:.1f})",
              _per_persona_line(metrics, "rougeL")]
    mine = metrics.get("own_vs_other") or {}
    if mine.get("share") is not None:
        lines.append(f"  {'own vs other (ROUGE-L, 50% = none)':<{_WIDTH}}{_percent(mine['share']):>8}   "
                     f"({mine['rows']} rows with another persona's answer to the same input)")
    else:
        lines.append(f"  {'own vs other':<{_WIDTH}}{'n/a':>8}   (no input here was answered by another persona)")
    return lines


def _per_persona_line(metrics: dict[str, Any], name: str) -> str:
    values = np.array([p[name] for p in metrics["per_persona"].values()])
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    text = f"per-persona {label(name)}: median"
    return f"  {text:<{_WIDTH}}{median:>8.2%}   (IQR {q1:.1%} to {q3:.1%})"


def _percent(value: float) -> str:
    return f"{value:.2%}"


def evaluate_repeats(root: Path, split: str, metrics: dict[str, Any], progress: bool = True,
                     say: Callable[[str], None] = print, generation: Any = None) -> list[dict[str, Any]]:
    """Evaluate every repeat of the run at ``root`` on ``split`` (``metrics``: the run's own,
    just evaluated; ``generation``: its generation settings) and record the run's two main
    figures per seed (accuracy and macro-F1, or ROUGE-L and BLEU) in the run's metrics.json.
    Returns that list, empty when the run has no repeats."""
    runs = repeat_runs(root)
    if len(runs) == 1:
        return []
    (own_seed, _), repeats = runs[0], runs[1:]
    results = [_seed_result(own_seed, metrics, Path("."))]
    for number, (seed, folder) in enumerate(repeats, 2):
        say(f"evaluating repeat {number} of {len(runs)} (seed {seed}): {folder}")
        # The references need no adapter, so the seed changes nothing in them: shown once, with the run.
        repeat = evaluate_run(folder, split, progress=progress, references=False, generation=generation)
        results.append(_seed_result(seed, repeat, folder.relative_to(root)))
    metrics["repeats"] = results
    atomic_write_text(Path(root) / "eval" / split / METRICS, json.dumps(metrics, indent=2))
    return results


def _seed_result(seed: int, metrics: dict[str, Any], folder: Path) -> dict[str, Any]:
    # The folder, relative to the run, lets a comparison find each seed's predictions.
    headline = metrics.get("headline", "accuracy")
    return {"seed": seed, "headline": headline, headline: metrics[headline],
            companion(headline): metrics[companion(headline)], "run": folder.as_posix()}
