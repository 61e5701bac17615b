"""``weighted_merge`` (the playbook's branch 1): no training beyond the persona adapters.

Within each cluster the persona adapters are mixed in weight space with weights
``softmax(score_j * cos(e_j, centroid) / temperature)`` over the cluster's adapters ``j``
(optionally only the ``top_k`` largest), where ``score_j`` is adapter ``j``'s accuracy on its
own persona's validation rows and ``e_j`` its persona's embedding; every persona of the
cluster routes to that mixture. With ``neighbourhood="knn"`` each persona instead mixes its
``top_k`` nearest persona adapters, with ``cos(e_p, e_j)`` in place of the centroid term.

With ``on_top_of="unified"`` the persona adapters are trained on top of the frozen unified
one (as ``per_persona`` can be), scored and mixed over it: every route is ``unified`` plus the
mixture (and a materialized merge below holds the unified delta too). Persona adapters
trained from the base model on a few dozen rows can sit at chance, and so would their merge.

With ``materialize`` (the default) each cluster's mixture is merged into one bank adapter
``merged/<run>-cluster-<c>`` at the smallest rank that loses nothing (its relative error, only
rounding, is recorded) and personas route to it: one adapter per row instead of a mixture of
dozens, and a plain PEFT adapter to export. Without it the route is the mixture itself.
"""

from __future__ import annotations

import numpy as np

from personalab.bank.merge import materialize_lossless
from personalab.engine import Route
from personalab.errors import PersonalabError
from personalab.routing import RoutingTable
from personalab.strategies.base import FitContext
from personalab.strategies.grouping import Grouping, Groups, group_personas
from personalab.strategies.per_persona import persona_adapter, persona_route, trainable_personas
from personalab.strategies.registry import register
from personalab.strategies.steps import UNIFIED, rows_by_persona, stacked_on_unified, train_group_adapters
from personalab.strategies.validation import accuracy_by_persona, correct, score_rows


def softmax_weights(logits: np.ndarray, temperature: float, top_k: int | None) -> np.ndarray:
    """Softmax of ``logits / temperature`` over the ``top_k`` largest (others 0); a
    temperature of 0 puts all weight on the largest (ties: the first)."""
    weights = np.zeros(len(logits))
    keep = np.argsort(-logits, kind="stable")[: top_k or len(logits)]
    if temperature <= 0:
        weights[keep[0]] = 1.0
        return weights
    z = logits[keep] / temperature
    e = np.exp(z - z.max())
    weights[keep] = e / e.sum()
    return weights


def materialized(context: FitContext, table: dict[str, Route]) -> dict[str, Route]:
    """Each distinct mixture of ``table`` merged into one bank adapter; personas routed to it."""
    merged, records = {}, {}
    for i, route in enumerate(dict.fromkeys(table.values())):
        name = f"merged/{context.config_hash[:8] or 'run'}-{i}"
        names, weights = zip(*route.weights)
        result = materialize_lossless(context.bank, names, weights, name, config_hash=context.config_hash)
        merged[route] = Route.single(name)
        records[name] = {"mixture": route.to_json(), "rank": result.rank, "max_relative_error": result.max_error}
    context.records.setdefault("merge", {})["materialized"] = records
    return {pid: merged[route] for pid, route in table.items()}


def persona_scores(context: FitContext, personas: list[str], stacked: bool) -> dict[str, float]:
    """Each persona adapter's accuracy on its own persona's validation rows."""
    val = rows_by_persona(context.dataset, "val")
    rows = [row for pid in personas for row in val[pid]]
    routes = [persona_route(row.persona_id, stacked) for row in rows]
    accuracy = accuracy_by_persona(rows, correct(context, rows, score_rows(context, rows, routes)))
    return {pid: accuracy.get(pid, 0.0) for pid in personas}


def persona_pool(context: FitContext, min_train_rows: int, batch_size: int, grouping: Grouping, stacked: bool):
    """The persona adapters (trained or reused; over the unified one when ``stacked``), each
    one's validation accuracy on its own persona, and the personas' clusters: what every
    persona-merging strategy starts from."""
    personas = trainable_personas(context, min_train_rows)
    train_group_adapters(context, {persona_adapter(p): [p] for p in personas}, on_top_of_unified=stacked,
                         batch_size=batch_size, label="personas")
    return persona_scores(context, personas, stacked), group_personas(context, grouping)


def playbook_logits(groups: Groups, cluster: int, candidates: list[str], scores: dict[str, float]) -> np.ndarray:
    """``score_j * cos(e_j, centroid)`` for the cluster's candidate personas ``j``."""
    centroid = groups.centroids[cluster] / max(np.linalg.norm(groups.centroids[cluster]), 1e-12)
    return np.array([scores[j] * float(groups.vector(j) @ centroid) for j in candidates])


@register
class WeightedMerge:
    name = "weighted_merge"
    summary = "per cluster, persona adapters merged by softmax(val accuracy x cosine to centroid / T); no extra training"

    def __init__(self, neighbourhood: str = "cluster", top_k: int | None = None, temperature: float = 0.1,
                 materialize: bool = True, k: int | None = None, k_min: int = 2, k_max: int = 8,
                 method: str = "kmeans", source: str = "inputs", min_train_rows: int = 8, batch_size: int = 8,
                 on_top_of: str | None = None):
        if neighbourhood not in ("cluster", "knn"):
            raise PersonalabError(f"weighted_merge neighbourhood must be 'cluster' or 'knn', not {neighbourhood!r}")
        if temperature < 0:
            raise PersonalabError(f"weighted_merge temperature must be >= 0, not {temperature}")
        self.neighbourhood, self.top_k, self.temperature = neighbourhood, top_k, temperature
        self.materialize = materialize
        self.grouping = Grouping(k, k_min, k_max, method, source)
        self.min_train_rows, self.batch_size = min_train_rows, batch_size
        self.stacked = stacked_on_unified(self.name, on_top_of)

    def fit(self, context: FitContext) -> RoutingTable:
        scores, groups = persona_pool(context, self.min_train_rows, self.batch_size, self.grouping, self.stacked)
        with_adapter = [pid for pid in groups.ids if pid in scores]
        if self.neighbourhood == "cluster":
            table = self._cluster_routes(groups, with_adapter, scores)
        else:
            table = self._knn_routes(groups, with_adapter, scores)
        if self.stacked:
            table = {pid: route.stacked_on(UNIFIED) for pid, route in table.items()}
        context.records["merge"] = {"persona_val_accuracy": scores, "temperature": self.temperature,
                                    "top_k": self.top_k, "neighbourhood": self.neighbourhood,
                                    "on_top_of": UNIFIED if self.stacked else None}
        if self.materialize and self.neighbourhood == "cluster":
            table = materialized(context, table)
        return RoutingTable(default=Route.single(UNIFIED), table=table)

    def _cluster_routes(self, groups: Groups, with_adapter: list[str], scores: dict[str, float]) -> dict[str, Route]:
        table = {}
        for cluster, members in groups.members().items():
            candidates = [pid for pid in members if pid in with_adapter]
            if not candidates:
                continue  # its personas keep the default route
            route = self._route(candidates, playbook_logits(groups, cluster, candidates, scores))
            table.update({pid: route for pid in members})
        return table

    def _knn_routes(self, groups: Groups, with_adapter: list[str], scores: dict[str, float]) -> dict[str, Route]:
        keys = np.stack([groups.vector(j) for j in with_adapter])
        k = self.top_k or 8
        table = {}
        for pid in groups.ids:
            cosine = keys @ groups.vector(pid)
            nearest = np.argsort(-cosine, kind="stable")[:k]
            candidates = [with_adapter[i] for i in nearest]
            logits = np.array([scores[j] * cosine[i] for i, j in zip(nearest, candidates)])
            table[pid] = self._route(candidates, logits, top_k=None)
        return table

    def _route(self, candidates: list[str], logits: np.ndarray, top_k: int | None | str = "own") -> Route:
        weights = softmax_weights(logits, self.temperature, self.top_k if top_k == "own" else top_k)
        return Route({persona_adapter(pid): float(w) for pid, w in zip(candidates, weights) if w > 0})
