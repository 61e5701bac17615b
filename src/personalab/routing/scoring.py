"""Scoring rows through the routes a personalizer gives them, with the multi-LoRA engine:
every row of a batch runs through its own route, whatever mixture of adapters that is.

This is the one implementation of scoring: evaluation, ``personalab predict`` and the
strategies that choose something on validation rows (merge weights, an ensemble weight, a
router's temperature, persona offsets) all go through it.

* ``score_routes``: row ``i`` through ``routes[i]`` (adding input vector ``vectors[i]``, when
  given); rows are scored longest first so that each batch pads little.
* ``score_tables``: the rows under each of several routing tables, every table's copy of a
  row as its ``model_row`` (its input behind its persona's identifier, for
  ``persona_token``) with the persona's learned vector if the table has one, all in the same
  batched calls: what an output-space ensemble mixes.
* ``add_offsets``: a ``PersonaBias``'s offsets added to its rows' scores.
* ``predict``: the rows scored the way any personalizer says, with each row's route as JSON;
  the predictions keep the rows as they were given.
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
from personalab.errors import PersonalabError
from personalab.models.base import Backend
from personalab.models.batching import length_sorted_chunks
from personalab.routing.personalizers import Ensemble, PersonaBias, Personalizer, RoutingTable


@dataclass
class Predictions:
    rows: list[Example]
    choices: tuple[str, ...]
    scores: np.ndarray  # [n_rows, n_choices] log-scores
    routes: list[dict]  # each row's route (or ensemble of routes) as JSON

    @property
    def predicted(self) -> list[str]:
        return [self.choices[i] for i in self.scores.argmax(axis=1)]


def score_routes(
    backend: Backend, engine: MultiLoraModel, rows: list[Example], routes: list[Route], chunk: int, progress: bool,
    vectors: Sequence[str | None] | None = None,
) -> np.ndarray:
    """Log-scores ``[len(rows), n_choices]``, row ``i`` through ``routes[i]``, adding the
    engine's input vector ``vectors[i]`` (None: none) to its input embeddings."""
    keys = list(zip(routes, vectors if vectors is not None else [None] * len(routes)))
    distinct = list(dict.fromkeys(keys))  # one engine route per (route, vector) pair
    engine.set_routes([route for route, _ in distinct], vectors=[vector for _, vector in distinct])
    index = {key: i for i, key in enumerate(distinct)}
    route_ids = [index[key] for key in keys]
    scores = np.full((len(rows), len(backend.choices)), -np.inf, dtype=np.float64)
    bar = tqdm(total=len(rows), desc="scoring", unit="row", disable=not progress)
    for part in length_sorted_chunks(rows, chunk):
        with torch.inference_mode():
            part_scores = backend.scores(engine, [rows[i] for i in part], route_ids=[route_ids[i] for i in part])
        scores[part] = part_scores.double().cpu().numpy()
        bar.update(len(part))
    bar.close()
    return scores


def score_tables(
    backend: Backend,
    engine: MultiLoraModel,
    tables: Sequence[RoutingTable],
    rows: Sequence[Example],
    chunk: int = 256,
    progress: bool = True,
) -> list[np.ndarray]:
    """One ``[n_rows, n_choices]`` matrix per table: each row as the table's ``model_row``
    through the table's route for its persona, every table's copies in the same calls."""
    copies = [table.model_row(row) for table in tables for row in rows]
    routes = [table.route(row.persona_id, row) for table in tables for row in rows]
    vectors = [table.vector(row.persona_id) for table in tables for row in rows]
    scores = score_routes(backend, engine, copies, routes, chunk, progress, vectors)
    return np.split(scores, len(tables))


def add_offsets(scores: np.ndarray, rows: Sequence[Example], personalizer: PersonaBias) -> np.ndarray:
    """``scores`` (log-scores of ``rows``) with each row's persona offsets added."""
    return scores + np.array([personalizer.offset(row.persona_id) for row in rows], dtype=np.float64).reshape(scores.shape)


def predict(
    backend: Backend,
    engine: MultiLoraModel,
    personalizer: Personalizer,
    rows: Sequence[Example],
    chunk: int = 256,
    progress: bool = True,
) -> Predictions:
    """Every row scored the way ``personalizer`` says for its persona."""
    scores = personalizer_scores(backend, engine, personalizer, rows, chunk, progress)
    described = [personalizer.describe(row.persona_id) for row in rows]
    return Predictions(list(rows), tuple(backend.choices), scores, described)


def personalizer_scores(
    backend: Backend, engine: MultiLoraModel, personalizer: Personalizer, rows: Sequence[Example], chunk: int, progress: bool
) -> np.ndarray:
    """``[n_rows, n_choices]`` log-scores of ``rows`` under any kind of personalizer."""
    if isinstance(personalizer, PersonaBias):
        if personalizer.choices != tuple(backend.choices):
            raise PersonalabError(f"the persona offsets are for choices {list(personalizer.choices)}, "
                                  f"the model's are {list(backend.choices)}: retrain the run")
        inner = personalizer_scores(backend, engine, personalizer.inner, rows, chunk, progress)
        return add_offsets(inner, rows, personalizer)
    if isinstance(personalizer, Ensemble):
        return predict_ensemble(backend, engine, personalizer.members, rows, personalizer.space, chunk, progress)
    return score_tables(backend, engine, [personalizer], rows, chunk, progress)[0]


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
    parts = score_tables(backend, engine, [table for table, _ in members], rows, chunk, progress)
    return mix_scores([torch.from_numpy(p) for p in parts], [weight for _, weight in members], space).numpy()
