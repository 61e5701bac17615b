"""Scoring rows through the routes a personalizer gives them, with the multi-LoRA engine:
every row of a batch runs through its own route, whatever mixture of adapters that is.

An output-space ensemble scores every row under each member's route in the same batched
calls (the row repeated, each copy with its own route) and mixes the score matrices.
Each row is scored as its routing table's ``model_row`` (its input behind its persona's
identifier, for ``persona_token``); the predictions keep the rows as they were given.
Rows are scored longest first so that each batch pads little.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from personalab.data.schema import Example
from personalab.engine import MultiLoraModel, mix_scores
from personalab.engine.ensemble import Space
from personalab.errors import PersonalabError
from personalab.models.base import Backend
from personalab.strategies.persona_bias import add_offsets
from personalab.strategies.personalizer import Ensemble, PersonaBias, Personalizer, RoutingTable
from personalab.train.scoring import score_routes


@dataclass
class Predictions:
    rows: list[Example]
    choices: tuple[str, ...]
    scores: np.ndarray  # [n_rows, n_choices] log-scores
    routes: list[dict]  # each row's route (or ensemble of routes) as JSON

    @property
    def predicted(self) -> list[str]:
        return [self.choices[i] for i in self.scores.argmax(axis=1)]


def predict(
    backend: Backend,
    engine: MultiLoraModel,
    personalizer: Personalizer,
    rows: Sequence[Example],
    chunk: int = 256,
    progress: bool = True,
) -> Predictions:
    """Every row scored the way ``personalizer`` says for its persona."""
    if isinstance(personalizer, PersonaBias):
        if personalizer.choices != tuple(backend.choices):
            raise PersonalabError(f"the persona offsets are for choices {list(personalizer.choices)}, "
                                  f"the model's are {list(backend.choices)}: retrain the run")
        inner = predict(backend, engine, personalizer.inner, rows, chunk, progress)
        described = [personalizer.describe(row.persona_id) for row in rows]
        return Predictions(inner.rows, inner.choices, add_offsets(inner.scores, rows, personalizer), described)
    if isinstance(personalizer, Ensemble):
        scores = predict_ensemble(backend, engine, personalizer.members, rows, personalizer.space, chunk, progress)
    else:
        routes = [personalizer.route(row.persona_id, row) for row in rows]
        model_rows = [personalizer.model_row(row) for row in rows]
        scores = score_routes(backend, engine, model_rows, routes, chunk, progress)
    described = [personalizer.describe(row.persona_id) for row in rows]
    return Predictions(list(rows), tuple(backend.choices), scores, described)


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
    copies = [table.model_row(row) for table, _ in members for row in rows]
    routes = [table.route(row.persona_id, row) for table, _ in members for row in rows]
    scores = torch.from_numpy(score_routes(backend, engine, copies, routes, chunk, progress))
    parts = scores.split(len(rows))
    return mix_scores(parts, [weight for _, weight in members], space).numpy()
