"""Generating through the routes of a personalizer: a route per row, identifiers, output-space
ensembles of next-token distributions, and what cannot generate."""

from __future__ import annotations

import pytest
import torch

from personalab.data.schema import Example
from personalab.engine import LoraWeights, MultiLoraModel, Route
from personalab.errors import PersonalabError
from personalab.models import build_backend
from personalab.models.base import ModelSpec
from personalab.models.decoding import GenerationSettings
from personalab.routing import Ensemble, PersonaBias, RoutingTable
from personalab.routing.generation import generate

PROFILES = {"a": "A reader.", "b": "A cook."}
ROWS = [Example(p, text, "", "test") for p in ("a", "b") for text in
        ("The bakery opened early.", "A long quiet walk by the river at dawn.", "Chess!")]
SIX = GenerationSettings(max_new_tokens=6)


@pytest.fixture(scope="module")
def setup(personalab_cache):
    backend = build_backend(ModelSpec(name="tiny-causal-lm"), (), PROFILES)
    engine = MultiLoraModel(backend.model, backend.target_modules(["query", "value"]))
    generator = torch.Generator().manual_seed(0)
    for name in ("one", "two"):
        weights = {}
        for path, layer in engine.layers.items():
            base = layer.base_layer
            weights[path] = LoraWeights(A=torch.randn(4, base.in_features, generator=generator),
                                        B=torch.randn(base.out_features, 4, generator=generator) * 0.3, scale=2.0)
        engine.add_adapter(name, weights)
    return backend, engine


def texts(setup, personalizer, rows=ROWS) -> list[str]:
    backend, engine = setup
    return generate(backend, engine, personalizer, rows, SIX, progress=False).texts


def test_each_row_is_generated_through_its_personas_route(setup):
    table = RoutingTable(default=Route.single("one"), table={"b": Route.single("two")})
    mixed = texts(setup, table)
    only_one, only_two = texts(setup, RoutingTable(Route.single("one"))), texts(setup, RoutingTable(Route.single("two")))
    for row, got, one, two in zip(ROWS, mixed, only_one, only_two):
        assert got == (two if row.persona_id == "b" else one)
    assert only_one != only_two


def test_identifiers_are_in_the_prompt(setup):
    backend, _ = setup
    tagged = RoutingTable(Route.single("one"), identifiers={"a": "zebra cactus"})
    plain = RoutingTable(Route.single("one"))
    with_ids, without = texts(setup, tagged), texts(setup, plain)
    is_a = [row.persona_id == "a" for row in ROWS]
    assert [g for g, a in zip(with_ids, is_a) if not a] == [g for g, a in zip(without, is_a) if not a]
    assert [g for g, a in zip(with_ids, is_a) if a] != [g for g, a in zip(without, is_a) if a]


def test_an_ensemble_of_weight_one_reproduces_its_member_and_a_mix_differs(setup):
    first, second = RoutingTable(Route.single("one")), RoutingTable(Route.single("two"))
    assert texts(setup, Ensemble([(first, 1.0), (second, 0.0)])) == texts(setup, first)
    mixed = texts(setup, Ensemble([(first, 0.6), (second, 0.4)]))
    assert mixed != texts(setup, first) or mixed != texts(setup, second)


def test_generated_routes_are_described_per_row(setup):
    backend, engine = setup
    ensemble = Ensemble([(RoutingTable(Route.single("one")), 0.6), (RoutingTable(Route.single("two")), 0.4)])
    result = generate(backend, engine, ensemble, ROWS[:1], SIX, progress=False)
    assert result.routes[0]["ensemble"][0] == {"weight": 0.6, "route": {"one": 1.0}}


def test_persona_offsets_and_classifiers_cannot_generate(setup):
    backend, engine = setup
    bias = PersonaBias(RoutingTable(Route.single("one")), ("no", "yes"))
    with pytest.raises(PersonalabError, match="persona_bias"):
        generate(backend, engine, bias, ROWS, SIX, progress=False)
    classifier = build_backend(ModelSpec(name="tiny-classifier"), ("no", "yes"), PROFILES)
    with pytest.raises(PersonalabError, match="causal language model"):
        generate(classifier, engine, RoutingTable(Route.single("one")), ROWS, SIX, progress=False)
