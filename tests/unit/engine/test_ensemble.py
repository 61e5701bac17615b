"""mix_scores: output-space mixtures of per-route log-score matrices."""

from __future__ import annotations

import pytest
import torch

from personalab.engine import mix_scores

INF = float("-inf")


def log_softmax(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.log_softmax(3 * torch.randn(4, 3, generator=generator), dim=-1)


FIRST, SECOND, THIRD = log_softmax(0), log_softmax(1), log_softmax(2)


@pytest.mark.parametrize("space", ["logprob", "prob"])
def test_weight_one_on_the_first_reproduces_it_exactly(space):
    assert torch.equal(mix_scores([FIRST, SECOND], [1.0, 0.0], space=space), FIRST)
    assert torch.equal(mix_scores([FIRST], [1.0], space=space), FIRST)


def test_logprob_space_is_the_weighted_sum_of_log_probabilities():
    mixed = mix_scores([FIRST, SECOND, THIRD], [0.5, 0.3, 0.2], space="logprob")
    assert torch.allclose(mixed, 0.5 * FIRST + 0.3 * SECOND + 0.2 * THIRD, atol=1e-6)


def test_prob_space_is_the_log_of_the_weighted_sum_of_probabilities():
    mixed = mix_scores([FIRST, SECOND], [0.6, 0.4], space="prob")
    direct = torch.log(0.6 * FIRST.double().exp() + 0.4 * SECOND.double().exp())
    assert torch.allclose(mixed.double(), direct, atol=1e-6)
    assert torch.allclose(mixed.exp().sum(dim=-1), torch.ones(4), atol=1e-6)  # a distribution


def test_prob_space_is_stable_for_very_negative_scores():
    low = torch.tensor([[-1000.0, -1001.0]])
    mixed = mix_scores([low, low - 2], [0.5, 0.5], space="prob")
    expected = -1000.0 + torch.log(torch.tensor(0.5 + 0.5 * torch.e**-2))
    assert torch.isfinite(mixed).all()
    assert mixed[0, 0].item() == pytest.approx(expected.item(), abs=1e-4)


@pytest.mark.parametrize("space", ["logprob", "prob"])
def test_choices_a_row_does_not_allow_stay_minus_infinity(space):
    first = torch.tensor([[-0.1, INF, -2.4]])
    second = torch.tensor([[-0.7, INF, -0.7]])
    mixed = mix_scores([first, second], [0.6, 0.4], space=space)
    assert mixed[0, 1] == INF and torch.isfinite(mixed[0, [0, 2]]).all()
    assert not torch.isnan(mix_scores([first, second], [1.0, 0.0], space=space)).any()


def test_refusals():
    with pytest.raises(ValueError, match="one weight per"):
        mix_scores([FIRST, SECOND], [1.0])
    with pytest.raises(ValueError, match="shape"):
        mix_scores([FIRST, FIRST[:2]], [0.5, 0.5])
    with pytest.raises(ValueError, match=">= 0"):
        mix_scores([FIRST, SECOND], [1.5, -0.5])
    with pytest.raises(ValueError, match="not all 0"):
        mix_scores([FIRST], [0.0])
    with pytest.raises(ValueError, match="space"):
        mix_scores([FIRST], [1.0], space="logits")
