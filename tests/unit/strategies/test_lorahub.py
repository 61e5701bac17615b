"""The weight search behind ``lorahub``: its budget, its start, and that it finds an optimum."""

from __future__ import annotations

import numpy as np

from personalab.strategies.lorahub import search_weights


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
