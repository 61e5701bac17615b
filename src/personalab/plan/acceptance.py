"""The acceptance rule: whether a candidate's paired comparison with the baseline counts as a
win — and when it does not, which condition failed — and which candidate the plan picks.

A plan uses the rule twice (``personalab.plan.runner``):

- **selection**, on the selection rows (validation by default), for every candidate tried:
  1. the persona-level paired test's p-value is strictly below ``alpha`` (p == alpha is *not*
     significant);
  2. the accuracy difference (candidate - baseline) is at least ``min_gain``;
- **confirmation**, once, on the test rows, for the one candidate selected: the same two
  conditions, and
  3. the harm check (``personalab.evaluate.harm``) does not find the personas that looked worse
     on the selection rows significantly worse on the test rows (when ``harm_alpha`` is set);
  4. with ``require_every_repeat``: the gain is positive under every repeat seed.

Selection may try many candidates; only the confirmation touches the test rows, once, so the
chance that a plan accepts a candidate that is no better stays at most ``alpha``.

It reads the dictionaries ``personalab.evaluate.compare.compare_runs`` returns and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from personalab.plan.spec import Acceptance

# Accuracies are ratios of counts, and their difference in floating point can land a hair
# below a round minimum (0.3 - 0.2 = 0.0999...98): a gain equal to the minimum on paper passes.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Check:
    name: str  # "significance", "gain", "harm" or "repeats"
    passed: bool
    text: str  # e.g. "persona-level p = 0.012 < alpha 0.05"


@dataclass(frozen=True)
class Verdict:
    checks: tuple[Check, ...]

    @property
    def accepted(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed(self) -> list[str]:
        return [check.text for check in self.checks if not check.passed]

    def explain(self) -> str:
        """Every condition when accepted; only those that failed when not."""
        return "; ".join(check.text for check in self.checks) if self.accepted else "; ".join(self.failed)

    def to_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "checks": [vars(check) for check in self.checks],
                "failed": self.failed, "explanation": self.explain()}


def judge(comparison: dict[str, Any], rule: Acceptance) -> Verdict:
    """The selection rule applied to a ``compare_runs`` result (baseline = A, candidate = B)."""
    overall = comparison["overall"]
    return Verdict((_significance(float(overall["p_value"]), rule.alpha),
                    _gain(float(overall["difference"]), rule.min_gain)))


def confirm(comparison: dict[str, Any], rule: Acceptance, repeat_gains: Sequence[float] = ()) -> Verdict:
    """The confirmation rule: the selection rule on the test comparison, the harm check it
    carries (``comparison["harm"]``), and the repeats' gains when the rule asks for them."""
    checks = list(judge(comparison, rule).checks)
    if rule.harm_alpha is not None:
        checks.append(_harm(comparison.get("harm")))
    if rule.require_every_repeat and repeat_gains:
        checks.append(_repeats(repeat_gains))
    return Verdict(tuple(checks))


def _significance(p: float, alpha: float) -> Check:
    passed = p < alpha
    return Check("significance", passed, f"persona-level p = {p:.4g} {'<' if passed else '>='} alpha {alpha:g}")


def _gain(difference: float, min_gain: float) -> Check:
    passed = difference >= min_gain - TOLERANCE
    return Check("gain", passed, f"gain {difference * 100:+.2f} pts {'>=' if passed else '<'} "
                                 f"minimum {min_gain * 100:+.2f} pts")


def _harm(harm: dict[str, Any] | None) -> Check:
    if not harm:
        return Check("harm", True, "harm check not possible (no selection rows to flag personas on)")
    if not harm["n_tested"]:
        return Check("harm", True, "no persona looked worse on the selection rows")
    passed, n = not harm["harmful"], harm["n_tested"]
    return Check("harm", passed, (
        f"the {n} persona{'s' if n != 1 else ''} worse on the selection rows {'are' if n != 1 else 'is'} {harm['flagged_difference'] * 100:+.2f} pts "
        f"on the test rows (one-sided p = {harm['p_value']:.4g} {'>=' if passed else '<'} {harm['alpha']:g})"))


def _repeats(gains: Sequence[float]) -> Check:
    negative = [g for g in gains if g <= 0]
    shown = ", ".join(f"{g * 100:+.2f}" for g in gains)
    return Check("repeats", not negative, f"gain under every repeat seed: {shown} pts"
                 + ("" if not negative else f" ({len(negative)} not positive)"))


def choose(accepted: Sequence[tuple[str, float]], stop: str) -> str | None:
    """The winner among ``(name, gain)`` pairs of accepted candidates, in the order tried:
    the first under ``first_win``, the largest gain under ``all`` (ties: the one tried first,
    i.e. the cheaper branch)."""
    if not accepted:
        return None
    if stop == "first_win":
        return accepted[0][0]
    best = max(gain for _, gain in accepted)
    return next(name for name, gain in accepted if gain == best)
