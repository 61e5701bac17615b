"""Scoring rows through the routes a personalizer gives them.

Rows are grouped by route so each adapter is activated once, and scored longest first so that
each batch pads little. Until the multi-LoRA engine
lands, a route must be a single adapter (PEFT activates one adapter per forward pass).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from personalab.bank import peft_adapter_name
from personalab.data.schema import Example
from personalab.engine.routes import Route
from personalab.errors import PersonalabError
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
    model: Any,
    personalizer: RoutingTable,
    rows: Sequence[Example],
    chunk: int = 256,
    progress: bool = True,
) -> Predictions:
    routes = [personalizer.route(row.persona_id, row) for row in rows]
    scores = np.full((len(rows), len(backend.choices)), -np.inf, dtype=np.float64)
    bar = tqdm(total=len(rows), desc="scoring", unit="row", disable=not progress)
    for route, indices in _group_by_route(routes).items():
        _activate(model, route)
        for positions in length_sorted_chunks([rows[i] for i in indices], chunk):
            part = [indices[p] for p in positions]
            with torch.inference_mode():
                scores[part] = backend.scores(model, [rows[i] for i in part]).float().cpu().numpy()
            bar.update(len(part))
    bar.close()
    return Predictions(list(rows), tuple(backend.choices), scores, routes)


def _group_by_route(routes: list[Route]) -> dict[Route, list[int]]:
    groups: dict[Route, list[int]] = defaultdict(list)
    for index, route in enumerate(routes):
        groups[route].append(index)
    return groups


def _activate(model: Any, route: Route) -> None:
    adapter = route.single_adapter
    if adapter is None:
        raise PersonalabError(f"route {route} mixes adapters; that needs the multi-LoRA engine")
    # The bank loads adapters under safe PEFT names, not under their bank names.
    model.set_adapter(peft_adapter_name(adapter))
