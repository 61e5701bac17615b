"""``lorahub``: the merge weights of ``weighted_merge`` searched instead of guessed.

Beyond the playbook, after LoraHub (Huang et al., 2023, "LoraHub: Efficient Cross-Task
Generalization via Dynamic LoRA Composition"): per cluster, a gradient-free search (CMA-ES,
from the maintained ``cma`` package) over the weights of the cluster's ``candidates`` best
persona adapters, starting from the playbook-1 weights, minimizing the validation NLL of the
cluster's personas plus an L1 penalty on the weights (as LoraHub does, to keep the mixture
sparse). Each evaluation scores the cluster's validation rows through the engine with the
mixture as their route. The weights found, their validation loss and the number of
evaluations are recorded; a budget of 0 keeps the starting weights. With
``on_top_of="unified"`` the persona adapters are trained over the unified one, which stays
beneath every searched mixture at weight 1 (see ``weighted_merge``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from personalab.engine import Route
from personalab.errors import PersonalabError
from personalab.routing import RoutingTable
from personalab.strategies.base import FitContext
from personalab.strategies.grouping import Grouping
from personalab.strategies.per_persona import persona_adapter
from personalab.strategies.registry import register
from personalab.strategies.steps import UNIFIED, rows_by_persona, stacked_on_unified
from personalab.strategies.validation import RouteScorer, label_indices, mean_nll
from personalab.strategies.weighted_merge import materialized, persona_pool, playbook_logits, softmax_weights


@dataclass
class SearchResult:
    weights: np.ndarray  # the best seen (the start when nothing beat it, or budget 0)
    value: float | None  # its objective (None: never evaluated)
    start_value: float | None
    evaluations: int


def search_weights(objective: Callable[[np.ndarray], float], start: np.ndarray, budget: int, seed: int = 0,
                   sigma: float = 0.2) -> SearchResult:
    """CMA-ES from ``start``, at most ``budget`` evaluations of ``objective`` (the start is the
    first; then whole CMA generations while they fit in the budget)."""
    import cma

    if budget <= 0:
        return SearchResult(start.copy(), None, None, 0)
    start_value = objective(start)
    result = SearchResult(start.copy(), start_value, start_value, 1)
    if len(start) < 2:  # CMA-ES needs two dimensions; a single weight stays as it is
        return result
    search = cma.CMAEvolutionStrategy(start.tolist(), sigma, {"seed": seed + 1, "verbose": -9, "bounds": [-1.5, 1.5]})
    while not search.stop() and result.evaluations + search.popsize <= budget:
        candidates = search.ask()
        values = [objective(np.asarray(c)) for c in candidates]
        search.tell(candidates, values)
        result.evaluations += len(values)
        i = int(np.argmin(values))
        if values[i] < result.value:
            result.weights, result.value = np.asarray(candidates[i]), values[i]
    return result


def mixture_route(names: Sequence[str], weights: np.ndarray, under: str | None) -> Route:
    """Adapters ``names`` at ``weights``, over adapter ``under`` at weight 1 when given."""
    route = Route(dict(zip(names, map(float, weights))))
    return route.stacked_on(under) if under else route


def mixture_objective(score_route: Callable[[Route], np.ndarray], labels: np.ndarray, names: Sequence[str],
                      l1: float, under: str | None = None) -> Callable[[np.ndarray], float]:
    """What the search minimizes over the weights of adapters ``names``: the mean NLL of the
    rows' ``labels`` when scored through the weighted mixture (over ``under``, if given;
    ``score_route(route)`` gives the rows' scores), plus ``l1`` times the weights' absolute sum."""

    def objective(weights: np.ndarray) -> float:
        route = mixture_route(names, weights, under)
        return mean_nll(score_route(route), labels) + l1 * float(np.abs(weights).sum())

    return objective


def counted(objective: Callable[[np.ndarray], float], bar) -> Callable[[np.ndarray], float]:
    """``objective``, ticking the progress ``bar`` once per evaluation with the best value so far."""
    best = float("inf")

    def tick(weights: np.ndarray) -> float:
        nonlocal best
        value = objective(weights)
        best = min(best, value)
        bar.update()
        bar.set_postfix(best=f"{best:.4f}")
        return value

    return tick


@register
class LoraHub:
    name = "lorahub"
    summary = "per cluster, persona-adapter merge weights searched on validation (CMA-ES, LoraHub), from weighted_merge's"

    def __init__(self, budget: int = 40, candidates: int = 8, l1: float = 0.05, temperature: float = 0.1,
                 materialize: bool = True, k: int | None = None, k_min: int = 2, k_max: int = 8,
                 method: str = "kmeans", source: str = "inputs", min_train_rows: int = 8, batch_size: int = 8,
                 on_top_of: str | None = None):
        if budget < 0 or candidates < 1:
            raise PersonalabError(f"lorahub needs budget >= 0 and candidates >= 1 (got {budget}, {candidates})")
        self.budget, self.candidates, self.l1, self.temperature = budget, candidates, l1, temperature
        self.materialize = materialize
        self.grouping = Grouping(k, k_min, k_max, method, source)
        self.min_train_rows, self.batch_size = min_train_rows, batch_size
        self.stacked = stacked_on_unified(self.name, on_top_of)

    def fit(self, context: FitContext) -> RoutingTable:
        scores, groups = persona_pool(context, self.min_train_rows, self.batch_size, self.grouping, self.stacked)
        val = rows_by_persona(context.dataset, "val")
        scorer = RouteScorer(context, [persona_adapter(p) for p in scores])
        table, records = {}, {}
        try:
            for cluster, members in groups.members().items():
                candidates = [p for p in members if p in scores]
                if not candidates:
                    continue
                rows = [row for p in members for row in val[p]]
                route, records[str(cluster)] = self._search(context, scorer, groups, cluster, candidates, scores, rows)
                table.update({pid: route for pid in members})
        finally:
            scorer.close()
        context.records["lorahub"] = records
        if self.materialize:
            table = materialized(context, table)
        return RoutingTable(default=Route.single(UNIFIED), table=table)

    def _search(self, context, scorer, groups, cluster, candidates, scores, rows):
        logits = playbook_logits(groups, cluster, candidates, scores)
        keep = np.argsort(-logits, kind="stable")[: self.candidates]
        names = [persona_adapter(candidates[i]) for i in keep]
        start = softmax_weights(logits[keep], self.temperature, None)
        under = UNIFIED if self.stacked else None

        objective = mixture_objective(lambda route: scorer.scores(rows, [route] * len(rows)),
                                      label_indices(context, rows), names, self.l1, under)
        budget = self.budget if rows else 0
        # Each evaluation scores the cluster's validation rows: minutes per cluster on a CPU.
        with tqdm(total=budget, desc=f"lorahub cluster {cluster}", unit="eval", disable=not context.progress) as bar:
            found = search_weights(counted(objective, bar), start, budget, seed=context.seed)
            bar.total = found.evaluations  # whole CMA generations may leave some budget unused
        record = {"adapters": names, "start_weights": start.tolist(), "weights": found.weights.tolist(),
                  "start_objective": found.start_value, "objective": found.value,
                  "evaluations": found.evaluations, "val_rows": len(rows), "on_top_of": under}
        return mixture_route(names, found.weights, under), record
