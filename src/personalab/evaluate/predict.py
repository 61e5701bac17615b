"""Scoring rows through the routes a personalizer gives them, with the multi-LoRA engine:
every row of a batch runs through its own route, whatever mixture of adapters that is.

An output-space ensemble scores every row under each member's route in the same batched
calls (the row repeated, each copy with its own route) and mixes the score matrices.
Rows are scored longest first so that each batch pads little.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from personalab.data.schema import Example
from personalab.engine import MultiLoraModel, Route, mix_scores
from personalab.engine.ensemble import Space
from personalab.models.base import Backend
from personalab.strategies.base import RoutingTable
from personalab.train.batching import length_sorted_chunks


@dataclass
class Predictions:
    rows: list[Example]
    choices: tuple[str, ...]
    scores: np.ndarray  # [n_rows, n_choices] log-scores
    routes: list[Route]

    @property
    def predicted(self) -> list[str]:
        return [self.choices[i] for i in self.scores.argmax(axis=1)]


def predict(
    backend: Backend,
    engine: MultiLoraModel,
    personalizer: RoutingTable,
    rows: Sequence[Example],
    chunk: int = 256,
    progress: bool = True,
) -> Predictions:
    routes = [personalizer.route(row.persona_id, row) for row in rows]
    scores = score_routes(backend, engine, list(rows), routes, chunk, progress)
    return Predictions(list(rows), tuple(backend.choices), scores, routes)


def predict_ensemble(
    backend: Backend,
    engine: MultiLoraModel,
    members: Sequence[tuple[RoutingTable, float]],
    rows: Sequence[Example],
    space: Space = "logprob",
    chunk: int = 256,
    progress: bool = True,
) -> np.ndarray:
    """``[n_rows, n_choices]``: each row scored under every member personalizer's route (all
    in the same batched calls) and mixed with the members' weights (``engine.mix_scores``)."""
    copies = [row for _ in members for row in rows]
    routes = [table.route(row.persona_id, row) for table, _ in members for row in rows]
    scores = torch.from_numpy(score_routes(backend, engine, copies, routes, chunk, progress))
    parts = scores.split(len(rows))
    return mix_scores(parts, [weight for _, weight in members], space).numpy()


def score_routes(
    backend: Backend, engine: MultiLoraModel, rows: list[Example], routes: list[Route], chunk: int, progress: bool
) -> np.ndarray:
    """Log-scores ``[len(rows), n_choices]``, row ``i`` through ``routes[i]``."""
    distinct = list(dict.fromkeys(routes))
    engine.set_routes(distinct)
    index = {route: i for i, route in enumerate(distinct)}
    route_ids = [index[route] for route in routes]
    scores = np.full((len(rows), len(backend.choices)), -np.inf, dtype=np.float64)
    bar = tqdm(total=len(rows), desc="scoring", unit="row", disable=not progress)
    for part in length_sorted_chunks(rows, chunk):
        with torch.inference_mode():
            part_scores = backend.scores(engine, [rows[i] for i in part], route_ids=[route_ids[i] for i in part])
        scores[part] = part_scores.double().cpu().numpy()
        bar.update(len(part))
    bar.close()
    return scores
