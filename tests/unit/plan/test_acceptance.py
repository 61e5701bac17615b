"""The acceptance rule at its edges — selection and confirmation — and the choice of the pick."""

from __future__ import annotations

import pytest

from personalab.plan import Acceptance, choose, judge
from personalab.plan.acceptance import confirm


def comparison(difference: float, p: float, harm: dict | None = None) -> dict:
    return {"overall": {"difference": difference, "p_value": p}, "harm": harm}


def harm(p: float, alpha: float = 0.05, tested: int = 40, difference: float = -0.02) -> dict:
    return {"flag_split": "val", "n_flagged": tested, "n_tested": tested, "flagged_difference": difference,
            "p_value": p, "alpha": alpha, "harmful": p < alpha}


def test_p_exactly_alpha_is_not_significant():
    verdict = judge(comparison(0.05, 0.05), Acceptance(alpha=0.05))
    assert not verdict.accepted
    assert verdict.failed == ["persona-level p = 0.05 >= alpha 0.05"]
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


def test_selection_has_no_harm_condition():
    # The harm check needs a second set of rows: it belongs to the confirmation.
    verdict = judge(comparison(0.05, 0.01, harm(0.001)), Acceptance())
    assert verdict.accepted and [c.name for c in verdict.checks] == ["significance", "gain"]


def test_confirmation_fails_when_the_flagged_personas_are_harmed():
    verdict = confirm(comparison(0.05, 0.01, harm(0.004)), Acceptance())
    assert not verdict.accepted
    assert verdict.failed == ["the 40 personas worse on the selection rows are -2.00 pts on the test rows "
                              "(one-sided p = 0.004 < 0.05)"]


def test_confirmation_harm_p_at_alpha_is_no_harm_and_none_flagged_passes():
    assert confirm(comparison(0.05, 0.01, harm(0.05)), Acceptance()).accepted
    verdict = confirm(comparison(0.05, 0.01, harm(1.0, tested=0)), Acceptance())
    assert verdict.accepted and "no persona looked worse" in verdict.explain()


def test_confirmation_without_harm_alpha_has_no_harm_condition():
    verdict = confirm(comparison(0.05, 0.01, harm(0.001)), Acceptance(harm_alpha=None))
    assert verdict.accepted and [c.name for c in verdict.checks] == ["significance", "gain"]


def test_confirmation_with_require_every_repeat_needs_every_gain_positive():
    rule = Acceptance(require_every_repeat=True)
    assert confirm(comparison(0.05, 0.01, harm(0.5)), rule, [0.05, 0.01, 0.002]).accepted
    verdict = confirm(comparison(0.05, 0.01, harm(0.5)), rule, [0.05, 0.0, -0.01])
    assert not verdict.accepted
    assert verdict.failed == ["gain under every repeat seed: +5.00, +0.00, -1.00 pts (2 not positive)"]
    assert confirm(comparison(0.05, 0.01, harm(0.5)), Acceptance(), [0.05, -0.01]).accepted  # not asked for


def test_every_failed_condition_is_named():
    verdict = confirm(comparison(-0.01, 0.5, harm(0.001)), Acceptance(require_every_repeat=True), [-0.01])
    assert [c.name for c in verdict.checks if not c.passed] == ["significance", "gain", "harm", "repeats"]
    assert verdict.explain().count(";") == 3


def test_choose_first_win_and_all():
    accepted = [("a", 0.02), ("b", 0.05), ("c", 0.05)]
    assert choose(accepted, "first_win") == "a"
    assert choose(accepted, "all") == "b"
    assert choose([], "all") is None
