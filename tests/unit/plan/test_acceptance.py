"""The acceptance rule at its edges, and the choice of the winner."""

from __future__ import annotations

import pytest

from personalab.plan import Acceptance, choose, judge


def comparison(difference: float, p: float, worse: int = 0, n_personas: int = 10) -> dict:
    return {"overall": {"difference": difference, "p_value": p},
            "per_persona": {"n_personas": n_personas, "significantly_worse": worse}}


def test_p_exactly_alpha_is_not_significant():
    verdict = judge(comparison(0.05, 0.05), Acceptance(alpha=0.05))
    assert not verdict.accepted
    assert verdict.failed == ["McNemar p = 0.05 >= alpha 0.05"]
    assert judge(comparison(0.05, 0.0499999), Acceptance(alpha=0.05)).accepted


@pytest.mark.parametrize("difference, min_gain", [(0.02, 0.02), (0.3 - 0.2, 0.1), (0.0, 0.0)])
def test_a_gain_exactly_the_minimum_is_enough(difference, min_gain):
    # 0.3 - 0.2 is 0.0999...98 in floating point: a gain equal to the minimum on paper passes.
    assert judge(comparison(difference, 0.01), Acceptance(min_gain=min_gain)).accepted


def test_a_gain_below_the_minimum_fails_and_says_so():
    verdict = judge(comparison(0.019, 0.001), Acceptance(min_gain=0.02))
    assert not verdict.accepted
    assert verdict.failed == ["gain +1.90 pts < minimum +2.00 pts"]


def test_a_negative_difference_fails_even_when_significant():
    assert not judge(comparison(-0.04, 0.001), Acceptance()).accepted


def test_personas_worse_at_the_limit_pass_and_one_more_fails():
    rule = Acceptance(max_share_worse=0.2)
    assert judge(comparison(0.05, 0.01, worse=2, n_personas=10), rule).accepted  # 20% == limit
    verdict = judge(comparison(0.05, 0.01, worse=3, n_personas=10), rule)
    assert not verdict.accepted
    assert verdict.failed == ["3 of 10 personas significantly worse (30.0%, holm) > limit 20.0%"]
    # 0.1 x 30 is 3.0000000000000004 in floating point; 3 of 30 is at the limit.
    assert judge(comparison(0.05, 0.01, worse=3, n_personas=30), Acceptance(max_share_worse=0.1)).accepted


def test_no_persona_rule_means_no_persona_condition():
    assert judge(comparison(0.05, 0.01, worse=10, n_personas=10), Acceptance()).accepted


def test_every_failed_condition_is_named():
    verdict = judge(comparison(-0.01, 0.5, worse=5), Acceptance(max_share_worse=0.1))
    assert [c.name for c in verdict.checks if not c.passed] == ["significance", "gain", "personas"]
    assert verdict.explain().count(";") == 2


def test_choose_first_win_and_all():
    accepted = [("a", 0.02), ("b", 0.05), ("c", 0.05)]
    assert choose(accepted, "first_win") == "a"
    assert choose(accepted, "all") == "b"
    assert choose([], "all") is None
