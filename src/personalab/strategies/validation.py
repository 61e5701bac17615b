"""Scoring validation rows inside a strategy: what weighted merges, ensembles and routers use
to choose their weights, temperatures and mixtures (never the test rows). Choice scores need a
label set; a generation task is scored by generating answers and their ROUGE-L instead."""

from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import numpy as np

from personalab.data.schema import Example
from personalab.engine import Route
from personalab.errors import PersonalabError
from personalab.engine.ensemble import Space
from personalab.routing import RoutingTable, generate_tables, score_routes, score_tables, vectors_of
from personalab.strategies.base import FitContext
from personalab.strategies.steps import UNIFIED


class RouteScorer:
    """The bank's adapters ``names`` (and the persona vectors of adapter ``vectors``, if
    given) loaded once into an engine over the backend's model, for many scoring calls;
    ``close()`` leaves the model as it was."""

    def __init__(self, context: FitContext, names: Sequence[str], vectors: str = ""):
        self.context = context
        self.engine = context.bank.load_engine(context.backend.model, sorted({UNIFIED, *names}), vectors=vectors)

    def scores(self, rows: Sequence[Example], routes: Sequence[Route]) -> np.ndarray:
        _needs_label_set(self.context)
        return score_routes(self.context.backend, self.engine, list(rows), list(routes), chunk=256, progress=False)

    def generate(self, members: Sequence[tuple[RoutingTable, float]], rows: Sequence[Example],
                 space: Space = "logprob") -> list[str]:
        """Each row's answer (greedy) under the weighted output-space mixture of ``members``."""
        return generate_tables(self.context.backend, self.engine, members, rows, space, progress=False)

    def close(self) -> None:
        self.engine.unwrap()


def score_rows(context: FitContext, rows: Sequence[Example], routes: Sequence[Route]) -> np.ndarray:
    """Log-scores ``[len(rows), n_choices]``, row ``i`` through ``routes[i]``, with the bank's
    adapters loaded into a temporary engine (the backend's model is left as it was)."""
    scorer = RouteScorer(context, [name for route in routes for name in route.adapters])
    try:
        return scorer.scores(rows, routes)
    finally:
        scorer.close()


def score_rows_by_tables(context: FitContext, tables: Sequence[RoutingTable], rows: Sequence[Example]) -> list[np.ndarray]:
    """One log-score matrix per table: ``rows`` as each table routes them and shows them to the
    model (``routing.score_tables``: identifiers and persona vectors included), in a temporary
    engine."""
    names = [name for table in tables for row in rows for name in table.route(row.persona_id).adapters]
    _needs_label_set(context)
    scorer = RouteScorer(context, names, vectors_of(*tables))
    try:
        return score_tables(context.backend, scorer.engine, tables, rows, chunk=256, progress=False)
    finally:
        scorer.close()


def mean_nll(scores: np.ndarray, labels: np.ndarray) -> float:
    """The mean negative log-likelihood of choice ``labels[i]`` in row ``i``, scores normalized
    over choices."""
    log_probs = scores - np.logaddexp.reduce(scores, axis=1, keepdims=True)
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def label_indices(context: FitContext, rows: Sequence[Example]) -> np.ndarray:
    """Each row's output as its index among the backend's choices."""
    return np.array([context.backend.choices.index(row.output) for row in rows], dtype=np.int64)


def correct(context: FitContext, rows: Sequence[Example], scores: np.ndarray) -> np.ndarray:
    """Per row: is the highest-scored choice its output?"""
    choices = context.backend.choices
    return np.array([choices[i] == row.output for i, row in zip(scores.argmax(axis=1), rows)], dtype=bool)


def accuracy_by_persona(rows: Sequence[Example], hits: np.ndarray) -> dict[str, float]:
    by_persona: dict[str, list[bool]] = defaultdict(list)
    for row, hit in zip(rows, hits.tolist()):
        by_persona[row.persona_id].append(hit)
    return {pid: float(np.mean(h)) for pid, h in by_persona.items()}


def rouge_l(predicted: str, reference: str) -> float:
    """ROUGE-L F of one generated answer: the same ``rouge-score`` call as
    ``personalab.evaluate.text_metrics`` (a layer above strategies, so not imported), so that a
    weight tuned here maximizes what evaluation reports (a test checks the two agree)."""
    from rouge_score.rouge_scorer import RougeScorer

    return float(RougeScorer(["rougeL"], use_stemmer=False).score(reference, predicted)["rougeL"].fmeasure)


def _needs_label_set(context: FitContext) -> None:
    if context.dataset.spec.task == "generation":
        raise PersonalabError(
            "this strategy chooses its weights by scoring validation rows against the task's label set, and a "
            "generation dataset has none; for generation use unified, per_persona, per_cluster, from_unified, "
            "persona_token or ensemble")
