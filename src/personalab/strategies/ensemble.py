"""``ensemble`` (the playbook's branch 3): an output-space mixture of two personalizers,
by default ``w x unified + (1 - w) x per_cluster``, with ``w`` chosen on the validation rows
from a grid (ties go to the weight nearest the playbook's 0.6). The validation score of every
grid weight, and of the playbook's fixed 0.6 / 0.4, is recorded: accuracy for a label set
(the members' choice scores mixed), mean ROUGE-L for generation (every validation row
generated under each weight, the members' next-token distributions mixed at every step).
"""

from __future__ import annotations

import numpy as np
import torch

from personalab.engine import mix_scores
from personalab.errors import PersonalabError
from personalab.routing import Ensemble, RoutingTable
from personalab.strategies.base import FitContext
from personalab.strategies.registry import get_strategy, register
from personalab.strategies.validation import RouteScorer, correct, rouge_l, score_rows_by_tables

PLAYBOOK_WEIGHT = 0.6
GRID = tuple(round(w, 2) for w in np.linspace(0, 1, 11))


@register
class EnsembleStrategy:
    name = "ensemble"
    summary = "output-space mixture w x unified + (1-w) x per_cluster; w tuned on validation (0.6 reported)"

    def __init__(self, first: str = "unified", second: str = "per_cluster", weight: float | None = None,
                 space: str = "logprob", k: int | None = None, k_min: int = 2, k_max: int = 8,
                 method: str = "kmeans", source: str = "inputs"):
        if space not in ("logprob", "prob"):
            raise PersonalabError(f"ensemble space must be 'logprob' or 'prob', not {space!r}")
        if weight is not None and not 0 <= weight <= 1:
            raise PersonalabError(f"ensemble weight must be in [0, 1], not {weight}")
        self.names, self.weight, self.space = (first, second), weight, space
        self.cluster_options = {"k": k, "k_min": k_min, "k_max": k_max, "method": method, "source": source}

    def fit(self, context: FitContext) -> Ensemble:
        first, second = (self._member(name).fit(context) for name in self.names)
        if not isinstance(first, RoutingTable) or not isinstance(second, RoutingTable):
            raise PersonalabError("ensemble members must be strategies that route by persona (not ensembles)")
        generation = context.dataset.spec.task == "generation"
        metric = "rougeL" if generation else "accuracy"
        by_weight = (self._validation_rouge if generation else self._validation_accuracy)(context, first, second)
        weight = self.weight if self.weight is not None else _best(by_weight)
        context.records["ensemble"] = {
            "members": list(self.names), "space": self.space, "weight": weight,
            f"val_{metric}_by_weight": {str(w): a for w, a in by_weight.items()},
            f"val_{metric}_playbook_0.6": by_weight[PLAYBOOK_WEIGHT],
        }
        return Ensemble([(first, weight), (second, 1.0 - weight)], self.space)

    def _member(self, name: str):
        options = self.cluster_options if name in ("per_cluster", "from_unified", "weighted_merge") else {}
        return get_strategy(name, **options)

    def _validation_accuracy(self, context: FitContext, first: RoutingTable, second: RoutingTable) -> dict[float, float]:
        rows = context.dataset.split("val")
        a, b = (torch.from_numpy(scores) for scores in score_rows_by_tables(context, [first, second], rows))
        return {w: float(correct(context, rows, mix_scores([a, b], [w, 1 - w], self.space).numpy()).mean())
                for w in GRID}


    def _validation_rouge(self, context: FitContext, first: RoutingTable, second: RoutingTable) -> dict[float, float]:
        rows = context.dataset.split("val")
        scorer = RouteScorer(context, [*first.adapters(), *second.adapters()])
        try:
            texts = {w: scorer.generate([(first, w), (second, 1 - w)], rows, self.space) for w in GRID}
        finally:
            scorer.close()
        return {w: float(np.mean([rouge_l(t, row.output) for t, row in zip(texts[w], rows)])) for w in GRID}


def _best(by_weight: dict[float, float]) -> float:
    top = max(by_weight.values())
    return min((w for w, a in by_weight.items() if a == top), key=lambda w: abs(w - PLAYBOOK_WEIGHT))
