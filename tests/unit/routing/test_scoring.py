"""Scoring through routes with the engine, and output-space ensembles of personalizers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from personalab.data.schema import Example
from personalab.engine import LoraWeights, MultiLoraModel, Route
from personalab.models import build_backend
from personalab.models.base import ModelSpec
from personalab.routing import RoutingTable, predict, predict_ensemble

CHOICES = ("no", "yes")
ROWS = [Example(p, text, "yes", "test") for p in ("a", "b") for text in
        ("The bakery opened early.", "A long quiet walk by the river at dawn.", "Chess!")]


@pytest.fixture(scope="module")
def setup():
    backend = build_backend(ModelSpec(name="tiny-classifier"), CHOICES, {"a": "A reader.", "b": "A cook."})
    engine = MultiLoraModel(backend.model, ["query", "value"])
    generator = torch.Generator().manual_seed(0)
    for name in ("one", "two"):
        weights = {}
        for path, layer in engine.layers.items():
            base = layer.base_layer
            weights[path] = LoraWeights(A=torch.randn(4, base.in_features, generator=generator),
                                        B=torch.randn(base.out_features, 4, generator=generator) * 0.3, scale=2.0)
        engine.add_adapter(name, weights)
    return backend, engine


def test_each_row_is_scored_through_its_personas_route(setup):
    backend, engine = setup
    table = RoutingTable(default=Route.single("one"), table={"b": Route.single("two")})
    mixed = predict(backend, engine, table, ROWS, progress=False).scores
    only_one = predict(backend, engine, RoutingTable(Route.single("one")), ROWS, progress=False).scores
    only_two = predict(backend, engine, RoutingTable(Route.single("two")), ROWS, progress=False).scores
    is_b = np.array([row.persona_id == "b" for row in ROWS])
    np.testing.assert_allclose(mixed[~is_b], only_one[~is_b], rtol=1e-6)
    np.testing.assert_allclose(mixed[is_b], only_two[is_b], rtol=1e-6)
    assert not np.allclose(only_one, only_two)


def test_ensemble_weight_one_reproduces_the_first_and_mixes_linearly_in_logprob(setup):
    backend, engine = setup
    first, second = RoutingTable(Route.single("one")), RoutingTable(Route.single("two"))
    s1 = predict(backend, engine, first, ROWS, progress=False).scores
    s2 = predict(backend, engine, second, ROWS, progress=False).scores
    # Equal up to float rounding: the ensemble batches each row with other companions (and so
    # other padding) than scoring it alone does; the mixing itself is exact (engine tests).
    alone_first = predict_ensemble(backend, engine, [(first, 1.0), (second, 0.0)], ROWS, progress=False)
    np.testing.assert_allclose(alone_first, s1, rtol=1e-6, atol=1e-6)
    mixed = predict_ensemble(backend, engine, [(first, 0.6), (second, 0.4)], ROWS, progress=False)
    np.testing.assert_allclose(mixed, 0.6 * s1 + 0.4 * s2, rtol=1e-6)
    in_prob = predict_ensemble(backend, engine, [(first, 0.6), (second, 0.4)], ROWS, space="prob", progress=False)
    np.testing.assert_allclose(np.exp(in_prob), 0.6 * np.exp(s1) + 0.4 * np.exp(s2), rtol=1e-6)
