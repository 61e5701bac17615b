"""Paired statistics for comparing two strategies scored on the same rows.

This module owns the numbers behind "is B better than A?": the 2x2 table of right/wrong pairs,
the exact McNemar p-value (statsmodels), a paired bootstrap confidence interval of the accuracy
difference B - A (scipy), and the same test per persona with a correction for testing many
personas at once (statsmodels ``multipletests``). It works on boolean arrays only and knows
nothing of runs or files (``personalab.evaluate.compare`` reads those).

The libraries do the statistics; what is ours is the handling of the degenerate cases they
report as warnings and NaN: no rows (a ``ValueError``), and per-row differences that are all
equal (identical predictions, or B right exactly where A is wrong on every row), whose bootstrap
distribution is a single point, so the interval is that point and no resampling is done.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

CORRECTIONS = ("holm", "fdr_bh")

# Resamples scored per batch: bounds memory at about 16 bytes x batch x rows (9999 x 26k rows
# at once would need 4 GB). The results do not depend on it: the generator yields the same
# stream whatever the batch size.
_BATCH = 500

# scipy 1.15 renamed ``random_state`` to ``rng`` (SPEC 7); either takes a Generator.
_RNG_PARAMETER = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


@dataclass(frozen=True)
class PairedComparison:
    """Strategy A against strategy B on the same ``n`` rows."""

    n: int
    accuracy_a: float
    accuracy_b: float
    difference: float  # accuracy_b - accuracy_a
    table: tuple[tuple[int, int], tuple[int, int]]  # rows: A right / wrong; columns: B right / wrong
    b_better: int  # rows A got wrong and B right
    a_better: int  # rows A got right and B wrong
    p_value: float  # exact McNemar: are the two kinds of disagreement equally likely?
    ci_low: float  # confidence interval of ``difference`` (paired bootstrap)
    ci_high: float
    confidence: float
    ci_method: str  # "BCa", "percentile" (BCa was degenerate), or "exact" (no spread to resample)
    n_resamples: int
    seed: int

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["table"] = [list(row) for row in self.table]
        return data


@dataclass(frozen=True)
class PersonaComparison:
    """A against B on the rows of one persona."""

    persona_id: str
    n: int
    accuracy_a: float
    accuracy_b: float
    difference: float
    b_better: int
    a_better: int
    p_value: float  # exact McNemar on this persona's rows alone
    p_adjusted: float  # after the correction across all personas
    significant: bool  # p_adjusted rejects at alpha


@dataclass(frozen=True)
class PerPersona:
    """The per-persona comparisons and how many personas moved which way."""

    personas: tuple[PersonaComparison, ...]
    method: str
    alpha: float

    @property
    def improved(self) -> int:
        return sum(p.b_better > p.a_better for p in self.personas)

    @property
    def equal(self) -> int:
        return sum(p.b_better == p.a_better for p in self.personas)

    @property
    def worse(self) -> int:
        return sum(p.b_better < p.a_better for p in self.personas)

    @property
    def significantly_better(self) -> int:
        return sum(p.significant and p.b_better > p.a_better for p in self.personas)

    @property
    def significantly_worse(self) -> int:
        return sum(p.significant and p.b_better < p.a_better for p in self.personas)

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "alpha": self.alpha,
            "n_personas": len(self.personas),
            "improved": self.improved,
            "equal": self.equal,
            "worse": self.worse,
            "significantly_better": self.significantly_better,
            "significantly_worse": self.significantly_worse,
            "personas": [asdict(p) for p in self.personas],
        }


def paired_comparison(
    correct_a: Sequence[bool] | np.ndarray,
    correct_b: Sequence[bool] | np.ndarray,
    n_resamples: int = 9999,
    seed: int = 0,
    confidence: float = 0.95,
) -> PairedComparison:
    """Compare A and B on the same rows: ``correct_a[i]`` and ``correct_b[i]`` say whether each
    got row ``i`` right. Reproducible: the bootstrap draws from ``default_rng(seed)``."""
    a, b = _paired_arrays(correct_a, correct_b)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    table = contingency_table(a, b)
    low, high, method = _bootstrap_difference(b.astype(float) - a.astype(float), n_resamples, seed, confidence)
    return PairedComparison(
        n=len(a),
        accuracy_a=float(a.mean()),
        accuracy_b=float(b.mean()),
        difference=float(b.mean() - a.mean()),
        table=table,
        b_better=table[1][0],
        a_better=table[0][1],
        p_value=mcnemar_p(table),
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        ci_method=method,
        n_resamples=n_resamples,
        seed=seed,
    )


def per_persona_comparison(
    persona_ids: Sequence[str] | np.ndarray,
    correct_a: Sequence[bool] | np.ndarray,
    correct_b: Sequence[bool] | np.ndarray,
    method: str = "holm",
    alpha: float = 0.05,
) -> PerPersona:
    """An exact McNemar test per persona, the p-values adjusted across personas by ``method``
    ("holm" controls the chance of any false "significant"; "fdr_bh" their expected share)."""
    a, b = _paired_arrays(correct_a, correct_b)
    ids = np.asarray([str(p) for p in persona_ids], dtype=object)
    if len(ids) != len(a):
        raise ValueError(f"{len(ids)} persona ids for {len(a)} rows")
    if method not in CORRECTIONS:
        raise ValueError(f"unknown correction {method!r}; choose one of {', '.join(CORRECTIONS)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    personas = sorted(set(ids))
    raw = [_persona_counts(pid, a[ids == pid], b[ids == pid]) for pid in personas]
    reject, adjusted, _, _ = multipletests([r["p_value"] for r in raw], alpha=alpha, method=method)
    comparisons = tuple(
        PersonaComparison(**r, p_adjusted=float(p), significant=bool(s)) for r, p, s in zip(raw, adjusted, reject)
    )
    return PerPersona(comparisons, method, alpha)


def contingency_table(a: np.ndarray, b: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]]:
    """((both right, only A right), (only B right, both wrong))."""
    return (
        (int(np.sum(a & b)), int(np.sum(a & ~b))),
        (int(np.sum(~a & b)), int(np.sum(~a & ~b))),
    )


def mcnemar_p(table: tuple[tuple[int, int], tuple[int, int]]) -> float:
    # Exact: a binomial test on the discordant pairs, valid however few there are (the
    # chi-square version is not, and a persona has only ~10 test rows). With no discordant
    # pairs statsmodels answers 1.0 with no warning.
    return float(mcnemar(np.asarray(table), exact=True).pvalue)


def _persona_counts(persona_id: str, a: np.ndarray, b: np.ndarray) -> dict:
    table = contingency_table(a, b)
    return {
        "persona_id": persona_id,
        "n": len(a),
        "accuracy_a": float(a.mean()),
        "accuracy_b": float(b.mean()),
        "difference": float(b.mean() - a.mean()),
        "b_better": table[1][0],
        "a_better": table[0][1],
        "p_value": mcnemar_p(table),
    }


def _bootstrap_difference(
    differences: np.ndarray, n_resamples: int, seed: int, confidence: float
) -> tuple[float, float, str]:
    """CI of the mean per-row difference (= accuracy B - A): resampling the rows' differences
    keeps each row's pair together, which is what makes the bootstrap paired."""
    if np.all(differences == differences[0]):
        # Every resample has the same mean: scipy would warn and answer NaN; the answer is exact.
        value = float(differences[0])
        return value, value, "exact"
    with warnings.catch_warnings():
        # BCa (better coverage for a skewed statistic) can still be degenerate, e.g. when too
        # few resamples fall below the estimate; that is detected below, not shown to the user.
        warnings.simplefilter("ignore")
        low, high = _bootstrap(differences, n_resamples, seed, confidence, "BCa")
    if np.isfinite(low) and np.isfinite(high):
        return low, high, "BCa"
    low, high = _bootstrap(differences, n_resamples, seed, confidence, "percentile")
    return low, high, "percentile"


def _bootstrap(differences: np.ndarray, n_resamples: int, seed: int, confidence: float, method: str):
    result = stats.bootstrap(
        (differences,), np.mean, n_resamples=n_resamples, confidence_level=confidence, method=method,
        batch=_BATCH, vectorized=True, **{_RNG_PARAMETER: np.random.default_rng(seed)},
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _paired_arrays(correct_a, correct_b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_bool(correct_a, "correct_a"), _as_bool(correct_b, "correct_b")
    if len(a) != len(b):
        raise ValueError(f"a paired comparison needs the same rows: {len(a)} results for A, {len(b)} for B")
    if len(a) == 0:
        raise ValueError("nothing to compare: no rows")
    return a, b


def _as_bool(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.dtype != bool:
        # 0/1 are accepted as right/wrong; anything else is a caller passing labels by mistake.
        if array.size and not (np.issubdtype(array.dtype, np.number) and np.isin(array, (0, 1)).all()):
            raise ValueError(f"{name} must hold booleans (or 0/1), got dtype {array.dtype}")
        array = array.astype(bool)
    return array
