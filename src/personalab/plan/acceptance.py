"""The acceptance rule: whether a candidate's paired comparison with the baseline counts as a
win — and when it does not, which condition failed — and which winner the plan picks.

A candidate is accepted when all three hold:

1. the exact McNemar p-value is strictly below ``alpha`` (p == alpha is *not* significant);
2. the accuracy difference (candidate - baseline) is at least ``min_gain``;
3. when ``max_share_worse`` is set: the share of personas significantly worse under the
   candidate, after the correction across personas, is at most that share.

It reads the dictionary ``personalab.evaluate.compare.compare_runs`` returns and nothing else.
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
    name: str  # "significance", "gain" or "personas"
    passed: bool
    text: str  # e.g. "McNemar p = 0.012 < alpha 0.05"


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
    """Apply ``rule`` to a ``compare_runs`` result (baseline = A, candidate = B)."""
    overall, personas = comparison["overall"], comparison["per_persona"]
    return Verdict((
        _significance(float(overall["p_value"]), rule.alpha),
        _gain(float(overall["difference"]), rule.min_gain),
        _personas(int(personas["significantly_worse"]), int(personas["n_personas"]), rule),
    ))


def _significance(p: float, alpha: float) -> Check:
    passed = p < alpha
    return Check("significance", passed, f"McNemar p = {p:.4g} {'<' if passed else '>='} alpha {alpha:g}")


def _gain(difference: float, min_gain: float) -> Check:
    passed = difference >= min_gain - TOLERANCE
    return Check("gain", passed, f"gain {difference * 100:+.2f} pts {'>=' if passed else '<'} "
                                 f"minimum {min_gain * 100:+.2f} pts")


def _personas(worse: int, n_personas: int, rule: Acceptance) -> Check:
    if rule.max_share_worse is None:
        return Check("personas", True, f"{worse} of {n_personas} personas significantly worse (no limit set)")
    passed = worse <= rule.max_share_worse * n_personas + TOLERANCE
    share = worse / n_personas if n_personas else 0.0
    return Check("personas", passed, f"{worse} of {n_personas} personas significantly worse ({share:.1%}, "
                                     f"{rule.correction}) {'<=' if passed else '>'} limit {rule.max_share_worse:.1%}")


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
