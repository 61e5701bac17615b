"""The persona bias layer's fit, on score matrices whose true offsets are known, and its
personalizer: offsets added to the right rows, none for other personas, a JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import softmax

from personalab.data.schema import Example
from personalab.engine.routes import Route
from personalab.errors import PersonalabError
from personalab.routing import PersonaBias, RoutingTable, add_offsets, personalizer_from_json
from personalab.strategies import get_strategy
from personalab.strategies.persona_bias import fit_offsets


def simulated(n_personas: int, rows_each: int, true: np.ndarray, seed: int = 0):
    """Scores of a shared model, and labels drawn from softmax(scores + the persona's true offsets)."""
    rng = np.random.default_rng(seed)
    persona_index = np.repeat(np.arange(n_personas), rows_each)
    scores = rng.normal(0, 1.5, size=(len(persona_index), true.shape[1]))
    probabilities = softmax(scores + true[persona_index], axis=1)
    labels = np.array([rng.choice(true.shape[1], p=p) for p in probabilities])
    return scores, labels, persona_index


def test_the_fit_recovers_known_offsets():
    rng = np.random.default_rng(1)
    true = rng.normal(0, 1.0, size=(12, 3))
    scores, labels, index = simulated(12, 600, true)
    fitted = fit_offsets(scores, labels, index, 12, penalty=0.01)
    # Offsets are defined up to a constant per persona (softmax ignores it); the penalty picks
    # the one of least norm, which is centred.
    centred = true - true.mean(axis=1, keepdims=True)
    assert np.abs(fitted - centred).max() < 0.3
    assert np.abs(fitted.sum(axis=1)).max() < 1e-3


def test_a_stronger_penalty_shrinks_the_offsets_toward_zero():
    true = np.array([[2.0, -2.0], [-1.5, 1.5], [0.0, 0.0]])
    scores, labels, index = simulated(3, 200, true)
    norms = [np.abs(fit_offsets(scores, labels, index, 3, penalty)).sum() for penalty in (0.01, 1.0, 100.0, 1e4)]
    assert norms == sorted(norms, reverse=True)
    assert norms[-1] < 0.05 * norms[0]


def test_choices_a_row_does_not_allow_take_no_part():
    scores = np.array([[0.0, -np.inf, 0.5], [0.2, 0.1, -np.inf], [1.0, 0.0, 0.0]])
    offsets = fit_offsets(scores, np.array([0, 1, 2]), np.array([0, 0, 0]), 1, penalty=1.0)
    assert np.all(np.isfinite(offsets))


def bias(offsets: dict) -> PersonaBias:
    return PersonaBias(RoutingTable(Route.single("unified")), ("no", "yes"), offsets, 0.3)


def rows(*personas: str) -> list[Example]:
    return [Example(pid, "some text", "no", "test") for pid in personas]


def test_offsets_go_to_their_personas_rows_and_no_one_else():
    scores = np.array([[-0.1, -2.0], [-0.3, -1.5], [-0.2, -1.7]])
    shifted = add_offsets(scores, rows("a", "b", "new"), bias({"a": (0.0, 3.0), "b": (-1.0, 0.5)}))
    np.testing.assert_array_equal(shifted, [[-0.1, 1.0], [-1.3, -1.0], [-0.2, -1.7]])


def test_no_offsets_leave_the_scores_exactly_as_they_were():
    scores = np.array([[-0.1, -2.0], [-0.3, -1.5]])
    np.testing.assert_array_equal(add_offsets(scores, rows("a", "b"), bias({})), scores)


def test_a_persona_bias_round_trips_through_json():
    original = PersonaBias(RoutingTable(Route.single("unified"), {"a": Route.single("persona/a")}),
                           ("no", "yes"), {"a": (0.1234567890123, -0.5)}, 0.3)
    again = personalizer_from_json(json.loads(json.dumps(original.to_json())))
    assert again == original
    assert again.route("a") == Route.single("persona/a") and again.adapters() == ["persona/a", "unified"]


@pytest.mark.parametrize("options, message", [
    ({"over": "ensemble"}, "routes by persona"),
    ({"over": "persona_bias"}, "routes by persona"),
    ({"over": "no_such_strategy"}, "no_such_strategy"),
    ({"penalty": 0}, "penalty"),
    ({"penalty": -1.0}, "penalty"),
    ({"penalty": "strong"}, "penalty"),
    ({"penalty": True}, "penalty"),
    ({"over_options": ["k", 2]}, "over_options"),
    ({"over": "per_cluster", "over_options": {"no_such_option": 1}}, "no_such_option"),
])
def test_bad_options_are_refused_with_a_clear_message(options, message):
    with pytest.raises(PersonalabError, match=message):
        get_strategy("persona_bias", **options)
