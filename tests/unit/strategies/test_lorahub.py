"""The weight search behind ``lorahub``: its budget, its start, and that it finds an optimum,
on a plain function and on rows scored through the multi-LoRA engine."""

from __future__ import annotations

import numpy as np
import torch

from personalab.data.synth import SynthConfig, synthesize
from personalab.engine import MultiLoraModel, Route
from personalab.engine.weights import LoraWeights
from personalab.models import ModelSpec, build_backend
from personalab.routing import score_routes
from personalab.strategies.lorahub import mixture_objective, search_weights


def test_a_budget_of_zero_returns_the_start_unevaluated():
    calls = []
    start = np.array([0.2, 0.3, 0.5])
    result = search_weights(lambda w: calls.append(w) or 0.0, start, budget=0)
    assert np.array_equal(result.weights, start) and result.evaluations == 0 and not calls


def test_the_search_concentrates_on_the_one_right_adapter_within_its_budget():
    target = np.array([0.0, 0.0, 1.0, 0.0, 0.0])  # adapter 2 is clearly the right one
    calls = []

    def objective(w):
        calls.append(1)
        return float(np.sum((w - target) ** 2))

    start = np.full(5, 0.2)
    result = search_weights(objective, start, budget=120, seed=3)
    assert result.evaluations == len(calls) <= 120
    assert result.value < 0.05 * result.start_value
    assert int(np.argmax(result.weights)) == 2 and result.weights[2] > 0.8


def test_the_search_is_reproducible_under_a_seed():
    objective = lambda w: float(np.sum((w - 0.7) ** 2))  # noqa: E731
    first = search_weights(objective, np.zeros(3), budget=30, seed=1)
    assert np.array_equal(first.weights, search_weights(objective, np.zeros(3), budget=30, seed=1).weights)


def _random_adapter(model, modules, rank: int, seed: int) -> dict[str, LoraWeights]:
    generator = torch.Generator().manual_seed(seed)
    layers = dict(model.named_modules())
    return {
        path: LoraWeights(torch.randn(rank, layers[path].in_features, generator=generator) / 8,
                          torch.randn(layers[path].out_features, rank, generator=generator) / 8, scale=2.0)
        for path in modules
    }


def test_on_rows_one_adapter_labelled_the_search_through_the_engine_puts_the_weight_on_it(personalab_cache):
    # The rows' labels are what the base model with adapter "right" predicts; three other
    # adapters of the same size point elsewhere. The search starts from equal weights.
    spec, personas, examples = synthesize(SynthConfig(n_personas=4, n_groups=2, examples_per_persona=16, seed=3))
    backend = build_backend(ModelSpec(name="tiny-classifier"), spec.choices, {p.persona_id: p.profile for p in personas})
    with torch.no_grad():  # a confident head, as a trained one is: a wrong route costs every row it flips
        backend.model.classifier.weight.mul_(10)
    modules = [name for name, _ in backend.model.named_modules() if name.endswith((".query", ".value"))]
    engine = MultiLoraModel(backend.model, modules)
    names = ["other-0", "right", "other-1", "other-2"]
    for seed, name in enumerate(names):
        engine.add_adapter(name, _random_adapter(backend.model, modules, rank=4, seed=seed))
    rows = examples[:48]

    def score_route(route: Route) -> np.ndarray:
        return score_routes(backend, engine, rows, [route] * len(rows), chunk=64, progress=False)

    labels = score_route(Route.single("right")).argmax(axis=1)
    assert (score_route(Route({})).argmax(axis=1) != labels).mean() > 0.1  # the adapter matters here

    objective = mixture_objective(score_route, labels, names, l1=0.01)
    result = search_weights(objective, np.full(4, 0.25), budget=100, seed=0)
    weights = dict(zip(names, result.weights))
    assert result.value < result.start_value
    assert max(weights, key=weights.get) == "right"
    assert weights["right"] > 0.7 and all(abs(weights[n]) < 0.4 * weights["right"] for n in names if n != "right")
