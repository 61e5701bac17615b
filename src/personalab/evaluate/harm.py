"""Per-persona outcomes of a paired comparison, and the harm check: does B make some personas
worse, even when it helps on average?

With ~10 test rows a persona, no persona's own test can tell a real loss from noise: an exact
McNemar test on 10 rows cannot reach a Holm threshold over 262 personas (0.05 / 262 needs 14 or
more discordant rows), so a rule that counts "personas significantly worse" never fires. And
the share of personas *observed* worse is mostly noise: with 10 rows, many personas of a
candidate that helps everyone look worse by chance.

The harm check therefore uses two independent sets of rows, as a plan has them:

1. **flag** the personas that look worse under B on the first set (the selection rows);
2. **test** those personas on the second set (the confirmation rows): a one-sided persona-level
   sign-flip permutation test (``personalab.evaluate.stats.sign_flip_p``) of whether B is worse
   than A on them.

The rows are independent, so flagging by noise cannot bias the second look: when B harms no
persona, the flagged personas' confirmation difference has a mean of zero or more, and the
check raises a false alarm at most ``alpha`` of the time. When B really harms a group of
personas, the flagged set is rich in them and their confirmation rows show it.
``bench/decision_calibration.py`` measures both rates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from personalab.evaluate.stats import PersonaSums, persona_sums, sign_flip_p


@dataclass(frozen=True)
class PersonaOutcome:
    """A against B on the rows of one persona."""

    persona_id: str
    n: int
    score_a: float  # A's mean per-row score on the persona's rows (its accuracy, or e.g. ROUGE-L)
    score_b: float
    difference: float  # score_b - score_a: the persona is better under B when positive
    b_better: int  # rows B scored higher on (only B got right, for correctness)
    a_better: int  # rows A scored higher on


@dataclass(frozen=True)
class PerPersona:
    """Every persona's outcome, and how many personas moved which way."""

    personas: tuple[PersonaOutcome, ...]

    @property
    def improved(self) -> int:
        return sum(p.difference > 0 for p in self.personas)

    @property
    def equal(self) -> int:
        return sum(p.difference == 0 for p in self.personas)

    @property
    def worse(self) -> int:
        return sum(p.difference < 0 for p in self.personas)

    def worse_ids(self) -> list[str]:
        return [p.persona_id for p in self.personas if p.difference < 0]

    def to_dict(self) -> dict:
        return {"n_personas": len(self.personas), "improved": self.improved, "equal": self.equal,
                "worse": self.worse, "personas": [asdict(p) for p in self.personas]}


@dataclass(frozen=True)
class HarmCheck:
    """The flagged personas' second look (see the module docstring)."""

    n_flagged: int  # personas worse under B on the flag rows
    n_tested: int  # of those, personas with rows in the confirmation set
    flagged_difference: float | None  # their pooled B - A on the confirmation rows
    p_value: float  # one-sided: B worse than A on the flagged personas' confirmation rows
    alpha: float

    @property
    def harmful(self) -> bool:
        return self.p_value < self.alpha

    def to_dict(self) -> dict:
        return {**asdict(self), "harmful": self.harmful}


def persona_outcomes(persona_ids: Sequence[str], score_a: np.ndarray, score_b: np.ndarray) -> PerPersona:
    """Each persona's mean scores under A and B (accuracies, for right/wrong scores) and the
    rows each scored higher on, sorted by persona id."""
    ids = np.asarray([str(p) for p in persona_ids])
    a, b = np.asarray(score_a, dtype=float), np.asarray(score_b, dtype=float)
    if not (len(ids) == len(a) == len(b)):
        raise ValueError(f"{len(ids)} persona ids for {len(a)} and {len(b)} rows")
    if len(ids) == 0:
        raise ValueError("nothing to compare: no rows")
    return PerPersona(tuple(_outcome(pid, a[ids == pid], b[ids == pid]) for pid in sorted(set(ids))))


def harm_check(flagged: Sequence[str], confirmation: PersonaSums, alpha: float = 0.05,
               n_resamples: int = 9999, seed: int = 0) -> HarmCheck:
    """Test the ``flagged`` personas (worse under B on other rows) on the ``confirmation``
    per-persona sums of B - A: harmful when they are significantly worse there too."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    wanted = set(flagged)
    keep = np.array([pid in wanted for pid in confirmation.ids], dtype=bool)
    if not keep.any():
        return HarmCheck(len(wanted), 0, None, 1.0, alpha)
    sums, counts = confirmation.sums[keep], confirmation.counts[keep]
    p = sign_flip_p(sums, n_resamples, seed, alternative="less")
    return HarmCheck(len(wanted), int(keep.sum()), float(sums.sum() / counts.sum()), p, alpha)


def confirmation_sums(persona_ids: Sequence[str], score_a: np.ndarray, score_b: np.ndarray) -> PersonaSums:
    """The per-persona sums of B - A that ``harm_check`` tests."""
    return persona_sums(persona_ids, np.asarray(score_a, dtype=float), np.asarray(score_b, dtype=float))


def _outcome(persona_id: str, a: np.ndarray, b: np.ndarray) -> PersonaOutcome:
    return PersonaOutcome(persona_id=persona_id, n=len(a), score_a=float(a.mean()), score_b=float(b.mean()),
                          difference=float(b.mean() - a.mean()), b_better=int(np.sum(b > a)),
                          a_better=int(np.sum(a > b)))
