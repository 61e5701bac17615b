"""Metrics of generated text against each row's reference output, overall and per persona,
and the own-vs-other personalization measure (BENCHMARK.md section 6).

- **Per row** (``row_scores``), every value in [0, 1] so that a comparison treats them alike:
  ROUGE-1, ROUGE-2 and ROUGE-L F-measures (``rouge-score``, no stemming: the implementation
  LaMP, OPPU and Per-Pcs use through ``evaluate``), sentence BLEU (``sacrebleu``, divided by
  100), exact match (after stripping surrounding white space). These are the scores
  ``personalab compare`` and plans can compare row by row (``ROW_METRICS``).
- **Overall and per persona** (``generation_metrics``): the means of the per-row scores (the
  plain mean, where ``evaluate``'s aggregator reports a bootstrap median of means), corpus BLEU
  (``sacrebleu.corpus_bleu``, on its usual 0-100 scale), and the mean length in words of the
  generated and the reference outputs.
- **Own vs other** (``own_vs_other``): for each generated row whose input another persona also
  answered (in any split: their outputs are references, not training), whether the generation
  is closer by ROUGE-L to its own persona's output than to the other's; 1 when closer, 0 when
  farther, 1/2 on a tie, averaged over the other personas. The share over rows is 0.5 when the
  model writes no more like the persona than like another one. Under the row split the other
  persona's output is often a training row, which a model that memorizes leans toward (the
  share drops below 0.5); ``split_by: item`` keeps every rewrite of an input in one split.
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

from personalab.data.schema import Example

ROUGE = ("rouge1", "rouge2", "rougeL")
ROW_METRICS = (*ROUGE, "sentence_bleu", "exact_match")


@lru_cache(maxsize=1)
def _rouge():
    from rouge_score.rouge_scorer import RougeScorer  # imported when needed: it pulls in nltk

    return RougeScorer(list(ROUGE), use_stemmer=False)


def rouge(predicted: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measures of ``predicted`` against ``reference``."""
    scores = _rouge().score(reference, predicted)  # rouge-score takes (target, prediction)
    return {name: float(scores[name].fmeasure) for name in ROUGE}


def row_scores(predicted: str, reference: str) -> dict[str, float]:
    """Every per-row metric of one generated output (see the module docstring)."""
    import sacrebleu

    return {**rouge(predicted, reference),
            "sentence_bleu": float(sacrebleu.sentence_bleu(predicted, [reference]).score) / 100.0,
            "exact_match": float(predicted.strip() == reference.strip())}


def generation_metrics(rows: Sequence[Example], predicted: Sequence[str], scores: Sequence[dict[str, float]]) -> dict:
    """Overall and per-persona figures of ``predicted`` (one per row), given each row's
    ``row_scores``."""
    by_persona: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_persona[row.persona_id].append(i)
    metrics = {"n": len(rows), **_summary(rows, predicted, scores, range(len(rows)))}
    metrics["per_persona"] = {pid: {"n": len(ix), **_summary(rows, predicted, scores, ix)} for pid, ix in by_persona.items()}
    return metrics


def _summary(rows, predicted, scores, indices) -> dict[str, float]:
    import sacrebleu

    indices = list(indices)
    outputs = [predicted[i] for i in indices]
    summary = {name: float(np.mean([scores[i][name] for i in indices])) for name in ROW_METRICS}
    summary["bleu"] = float(sacrebleu.corpus_bleu(outputs, [[rows[i].output for i in indices]]).score)
    summary["length"] = float(np.mean([len(text.split()) for text in outputs]))
    summary["reference_length"] = float(np.mean([len(rows[i].output.split()) for i in indices]))
    return summary


def own_vs_other(rows: Sequence[Example], predicted: Sequence[str], references: Sequence[Example]) -> dict[str, Any]:
    """The own-vs-other measure of ``predicted`` (one per row of ``rows``), with the other
    personas' outputs for the same input taken from ``references`` (every row of the dataset)."""
    outputs: dict[str, dict[str, str]] = defaultdict(dict)  # input -> persona -> output
    for example in references:
        outputs[example.input][example.persona_id] = example.output
    wins, pairs = [], 0
    for row, text in zip(rows, predicted):
        others = [out for pid, out in outputs[row.input].items() if pid != row.persona_id]
        if not others:
            continue
        own = rouge(text, row.output)["rougeL"]
        against = [rouge(text, other)["rougeL"] for other in others]
        wins.append(float(np.mean([1.0 if own > o else 0.5 if own == o else 0.0 for o in against])))
        pairs += len(others)
    return {"rows": len(wins), "pairs": pairs, "share": float(np.mean(wins)) if wins else None,
            "personas": len({row.persona_id for row in rows if len(outputs[row.input]) > 1})}
