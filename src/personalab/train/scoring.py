"""Scoring rows through routes with the multi-LoRA engine: every row of a batch through its
own route. Used by evaluation, and by strategies that choose something on validation rows
(merge weights, an ensemble weight, a router's temperature)."""

from __future__ import annotations



import numpy as np
import torch
from tqdm.auto import tqdm

from personalab.data.schema import Example
from personalab.engine import MultiLoraModel, Route
from personalab.models.base import Backend
from personalab.train.batching import length_sorted_chunks


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
