"""Paired statistics for comparing two strategies scored on the same rows, with the persona as
the unit.

This module owns the numbers behind "is B better than A?", for any per-row score: 0/1
correctness (the headline difference is then an accuracy difference) or a continuous score
such as a generated answer's ROUGE-L. Rows come in personas, and a
persona's rows move together (a persona adapter flips many of them at once), so the headline
figures resample and permute whole personas, not rows:

- the **confidence interval** of the mean score difference B - A is a persona-level (cluster)
  bootstrap: personas are drawn with replacement, each with all of its rows, and the statistic
  is the pooled difference ``sum of row differences / sum of rows`` (scipy ``bootstrap`` with
  the per-persona sums and row counts as paired samples; BCa, percentile when BCa degenerates);
- the **p-value** is a persona-level sign-flip permutation test (scipy ``permutation_test``
  on the per-persona sums of row differences). Under "A and B are exchangeable" each persona's
  sum is as likely to be positive as negative, whatever the correlation among that persona's
  rows, so flipping signs persona by persona gives an exact (randomized) null without assuming
  a distribution or a large number of rows per persona. It was preferred over a clustered
  McNemar test (Obuchowski 1998), which relies on a normal approximation of its statistic, and
  it takes any per-row score, where McNemar takes only right/wrong. Its statistic, the sum of
  the row differences, is the headline difference times the (fixed) number of rows, so the
  test and the reported gain agree.

For right/wrong scores the row-level exact McNemar p-value (statsmodels) and the 2x2 table
stay as secondary figures (None for continuous scores): they treat rows as independent and
overstate certainty when a persona's rows move together.
Per-persona harm is ``personalab.evaluate.harm``. This module works on arrays only and knows
nothing of runs or files (``personalab.evaluate.compare`` reads those).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

# Resamples scored per batch: bounds memory; the results do not depend on it.
_BATCH = 1000

# scipy 1.15 renamed ``random_state`` to ``rng`` (SPEC 7); either takes a Generator.
_RNG_PARAMETER = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


@dataclass(frozen=True)
class PairedComparison:
    """Strategy A against strategy B on the same ``n`` rows of ``n_personas`` personas."""

    n: int
    n_personas: int
    score_a: float  # A's mean per-row score: its accuracy, or e.g. its mean ROUGE-L
    score_b: float
    difference: float  # score_b - score_a (mean per-row score difference)
    p_value: float  # persona-level sign-flip permutation test, two-sided
    ci_low: float  # persona-level bootstrap confidence interval of ``difference``
    ci_high: float
    confidence: float
    ci_method: str  # "BCa", "percentile" (BCa was degenerate), or "exact" (no spread to resample)
    n_resamples: int  # for the bootstrap and the permutation test alike
    seed: int
    # rows: A right / wrong; columns: B right / wrong (None unless every score is 0 or 1)
    table: tuple[tuple[int, int], tuple[int, int]] | None
    b_better: int  # rows B scored higher than A (A wrong and B right, for correctness)
    a_better: int  # rows A scored higher than B
    mcnemar_p: float | None  # row-level exact McNemar (right/wrong only), rows taken as independent
    metric: str = "accuracy"  # what the per-row scores are
    test: str = "persona-level sign-flip permutation test"

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["table"] = None if self.table is None else [list(row) for row in self.table]
        return data


@dataclass(frozen=True)
class PersonaSums:
    """Per-persona totals of the per-row differences B - A: the unit every test resamples."""

    ids: tuple[str, ...]  # sorted
    sums: np.ndarray  # sum over the persona's rows of (score B - score A)
    counts: np.ndarray  # the persona's number of rows

    @property
    def differences(self) -> np.ndarray:
        return self.sums / self.counts


def paired_comparison(
    persona_ids: Sequence[str] | np.ndarray,
    score_a: Sequence[float] | np.ndarray,
    score_b: Sequence[float] | np.ndarray,
    n_resamples: int = 9999,
    seed: int = 0,
    confidence: float = 0.95,
    metric: str = "accuracy",
) -> PairedComparison:
    """Compare A and B on the same rows: ``score_a[i]`` and ``score_b[i]`` are each one's score
    on row ``i`` (of persona ``persona_ids[i]``): right (1, True) or wrong (0, False), or any
    finite number such as a ROUGE-L. Reproducible: both the bootstrap and the permutation test
    draw from ``default_rng(seed)``."""
    a, b = _paired_arrays(score_a, score_b)
    _check_parameters(n_resamples, confidence)
    sums = persona_sums(persona_ids, a, b)
    low, high, method = persona_bootstrap_ci(sums, n_resamples, seed, confidence)
    binary = bool(np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all())
    table = contingency_table(a == 1, b == 1) if binary else None
    return PairedComparison(
        n=len(a), n_personas=len(sums.ids), score_a=float(a.mean()), score_b=float(b.mean()),
        difference=float(b.mean() - a.mean()), p_value=sign_flip_p(sums.sums, n_resamples, seed),
        ci_low=low, ci_high=high, confidence=confidence, ci_method=method, n_resamples=n_resamples, seed=seed,
        table=table, b_better=int(np.sum(b > a)), a_better=int(np.sum(a > b)),
        mcnemar_p=mcnemar_p(table) if binary else None, metric=metric,
    )


def persona_sums(persona_ids, score_a: np.ndarray, score_b: np.ndarray) -> PersonaSums:
    """Sum the per-row differences ``score_b - score_a`` within each persona."""
    ids = np.asarray([str(p) for p in persona_ids], dtype=object)
    if len(ids) != len(score_a):
        raise ValueError(f"{len(ids)} persona ids for {len(score_a)} rows")
    names, index = np.unique(ids.astype(str), return_inverse=True)
    sums = np.bincount(index, weights=score_b - score_a, minlength=len(names))
    counts = np.bincount(index, minlength=len(names)).astype(float)
    return PersonaSums(tuple(str(n) for n in names), sums, counts)


def sign_flip_p(sums: np.ndarray, n_resamples: int, seed: int, alternative: str = "two-sided") -> float:
    """Persona-level sign-flip permutation test of ``sum(sums)`` (see the module docstring).
    With few enough personas scipy enumerates every sign pattern and the p-value is exact."""
    sums = np.asarray(sums, dtype=float)
    if not np.any(sums):
        return 1.0  # every persona ties: no evidence either way (scipy would agree, slowly)
    if len(sums) == 1:  # scipy wants two personas; one has just two sign patterns, +s and -s
        return _one_persona_p(float(sums[0]), alternative)
    result = stats.permutation_test(
        (sums,), _total, permutation_type="samples", n_resamples=n_resamples, alternative=alternative,
        vectorized=True, batch=_BATCH, **{_RNG_PARAMETER: np.random.default_rng(seed)},
    )
    return float(min(1.0, result.pvalue))


def _one_persona_p(total: float, alternative: str) -> float:
    flipped = np.array([total, -total])
    less, greater = np.mean(flipped <= total), np.mean(flipped >= total)
    return float({"less": less, "greater": greater, "two-sided": min(1.0, 2 * min(less, greater))}[alternative])


def persona_bootstrap_ci(sums: PersonaSums, n_resamples: int, seed: int, confidence: float) -> tuple[float, float, str]:
    """Cluster bootstrap CI of the pooled difference ``sum(sums) / sum(counts)``: each persona's
    sum and row count are resampled together (``paired=True``)."""
    differences = sums.differences
    if np.all(differences == differences[0]):
        # Every resample has the same value: scipy would warn and answer NaN; the answer is exact.
        value = float(differences[0])
        return value, value, "exact"
    with warnings.catch_warnings():
        # BCa can be degenerate (too few resamples below the estimate); detected below.
        warnings.simplefilter("ignore")
        low, high = _bootstrap(sums, n_resamples, seed, confidence, "BCa")
    if np.isfinite(low) and np.isfinite(high):
        return low, high, "BCa"
    low, high = _bootstrap(sums, n_resamples, seed, confidence, "percentile")
    return low, high, "percentile"


def contingency_table(a: np.ndarray, b: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """((both right, only A right), (only B right, both wrong))."""
    return (
        (int(np.sum(a & b)), int(np.sum(a & ~b))),
        (int(np.sum(~a & b)), int(np.sum(~a & ~b))),
    )


def mcnemar_p(table: tuple[tuple[int, int], tuple[int, int]]) -> float:
    # Exact: a binomial test on the discordant pairs, valid however few there are. With no
    # discordant pairs statsmodels answers 1.0 with no warning.
    return float(mcnemar(np.asarray(table), exact=True).pvalue)


def _total(sums: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.sum(sums, axis=axis)


def _pooled(sums: np.ndarray, counts: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.sum(sums, axis=axis) / np.sum(counts, axis=axis)


def _bootstrap(sums: PersonaSums, n_resamples: int, seed: int, confidence: float, method: str):
    result = stats.bootstrap(
        (sums.sums, sums.counts), _pooled, paired=True, n_resamples=n_resamples, confidence_level=confidence,
        method=method, batch=_BATCH, vectorized=True, **{_RNG_PARAMETER: np.random.default_rng(seed)},
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _check_parameters(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def _paired_arrays(score_a, score_b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_scores(score_a, "score_a"), _as_scores(score_b, "score_b")
    if len(a) != len(b):
        raise ValueError(f"a paired comparison needs the same rows: {len(a)} results for A, {len(b)} for B")
    if len(a) == 0:
        raise ValueError("nothing to compare: no rows")
    return a, b


def _as_scores(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    # Booleans are right/wrong; numbers are scores; anything else is a caller passing labels by mistake.
    if array.size and not (array.dtype == bool or np.issubdtype(array.dtype, np.number)):
        raise ValueError(f"{name} must hold booleans or numbers, got dtype {array.dtype}")
    array = array.astype(float)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds a score that is not a finite number")
    return array
