"""How the metrics a run is judged by are named and printed, in one place for the terminal
tables, the comparisons and the plan's report: accuracy for a label set, or a per-row metric of
generated text (``personalab.evaluate.text_metrics``), each with a second figure beside it
(macro-F1, or corpus BLEU)."""

from __future__ import annotations

LABELS = {"accuracy": "accuracy", "macro_f1": "macro-F1", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2",
          "rougeL": "ROUGE-L", "sentence_bleu": "sentence BLEU", "exact_match": "exact match", "bleu": "BLEU"}
# Figures that are not shares of 1: shown as plain numbers (BLEU is on sacrebleu's 0-100 scale).
PLAIN = {"macro_f1": "{:.4f}", "bleu": "{:.2f}", "length": "{:.1f}"}


def label(metric: str) -> str:
    return LABELS.get(metric, metric)


def companion(metric: str) -> str:
    """The figure shown beside ``metric``: macro-F1 beside accuracy, corpus BLEU beside a
    generation metric."""
    return "macro_f1" if metric == "accuracy" else "bleu"


def shown(metric: str, value: float | None) -> str:
    """``value`` of ``metric`` as people read it: a percentage for a share, else a number."""
    if value is None:
        return "–"
    return PLAIN[metric].format(value) if metric in PLAIN else f"{value:.2%}"
