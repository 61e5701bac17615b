"""Persona-level paired statistics: against direct scipy / statsmodels calls on fixed arrays,
the degenerate cases those libraries answer with warnings and NaN, and — by simulation — the
coverage of the interval and the size of the test on a seeded null whose rows are correlated
within a persona (where the row-level figures are shown to fail)."""

from __future__ import annotations

import inspect
import json
import warnings

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

from personalab.evaluate.stats import paired_comparison, persona_sums, sign_flip_p

# The installed scipy's name for the generator argument (renamed in scipy 1.15).
RNG = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


def fixed_arrays(personas=30, rows=10, p_a=0.6, p_b=0.68, seed=7):
    """Two correlated right/wrong columns over personas, as two strategies on the same rows."""
    rng = np.random.default_rng(seed)
    ids = np.repeat([f"p{i:02d}" for i in range(personas)], rows)
    a = rng.random(len(ids)) < p_a
    flip = rng.random(len(ids)) < 0.25  # B keeps most of A's answers and flips some
    b = np.where(flip, rng.random(len(ids)) < p_b, a)
    return ids, a, b


def sums_of(ids, a, b):
    names = sorted(set(ids))
    sums = np.array([np.sum(b[ids == n].astype(float) - a[ids == n]) for n in names])
    counts = np.array([np.sum(ids == n) for n in names], dtype=float)
    return sums, counts


def direct_bootstrap(ids, a, b, n_resamples, seed, method="BCa", confidence=0.95):
    sums, counts = sums_of(ids, a, b)
    result = stats.bootstrap((sums, counts), lambda s, n, axis: s.sum(axis) / n.sum(axis), paired=True,
                             vectorized=True, n_resamples=n_resamples, method=method, confidence_level=confidence,
                             **{RNG: np.random.default_rng(seed)})
    return result.confidence_interval.low, result.confidence_interval.high


def direct_permutation(ids, a, b, n_resamples, seed, alternative="two-sided"):
    sums, _ = sums_of(ids, a, b)
    return stats.permutation_test((sums,), lambda s, axis: s.sum(axis), permutation_type="samples",
                                  n_resamples=n_resamples, alternative=alternative, vectorized=True,
                                  **{RNG: np.random.default_rng(seed)}).pvalue


def test_counts_and_accuracies():
    ids = np.array(["x", "x", "x", "y", "y", "y", "y"])
    a = np.array([1, 1, 0, 0, 1, 0, 1], dtype=bool)
    b = np.array([1, 0, 1, 1, 1, 0, 0], dtype=bool)
    result = paired_comparison(ids, a, b, n_resamples=99)
    assert (result.n, result.n_personas) == (7, 2)
    assert result.score_a == pytest.approx(4 / 7) and result.score_b == pytest.approx(4 / 7)
    assert result.difference == pytest.approx(0.0)
    assert result.table == ((2, 2), (2, 1))  # both right, only A; only B, both wrong
    assert (result.b_better, result.a_better) == (2, 2)


def test_persona_sums_add_up_each_personas_row_differences():
    ids = np.array(["b", "a", "b", "a", "c"])
    sums = persona_sums(ids, np.array([1.0, 0, 0, 1, 1]), np.array([0.0, 1, 1, 1, 1]))
    assert sums.ids == ("a", "b", "c")
    assert sums.sums.tolist() == [1.0, 0.0, 0.0] and sums.counts.tolist() == [2.0, 2.0, 1.0]


def test_p_value_equals_scipy_sign_flip_permutation_test():
    ids, a, b = fixed_arrays()
    result = paired_comparison(ids, a, b, n_resamples=2000, seed=3)
    assert result.p_value == pytest.approx(direct_permutation(ids, a, b, 2000, 3), rel=1e-12)


def test_few_personas_are_tested_exactly():
    # 8 personas: 2^8 sign patterns < n_resamples, so scipy enumerates them all: the p-value is
    # the exact share of patterns at least as extreme, whatever the seed.
    ids, a, b = fixed_arrays(personas=8, rows=12, p_b=0.9)
    sums, _ = sums_of(ids, a, b)
    signs = np.array(np.meshgrid(*[[-1, 1]] * 8)).reshape(8, -1).T
    extreme = np.abs(signs @ np.abs(sums)) >= abs(sums.sum()) - 1e-9
    assert paired_comparison(ids, a, b, seed=1).p_value == pytest.approx(extreme.mean())
    assert paired_comparison(ids, a, b, seed=2).p_value == paired_comparison(ids, a, b, seed=1).p_value


def test_ci_equals_scipy_persona_bootstrap_with_the_same_seed():
    ids, a, b = fixed_arrays()
    result = paired_comparison(ids, a, b, n_resamples=2000, seed=3)
    assert result.ci_method == "BCa"
    assert result.ci == pytest.approx(direct_bootstrap(ids, a, b, 2000, 3), rel=1e-12)
    assert result.ci_low <= result.difference <= result.ci_high


def test_ci_honours_the_confidence_level():
    ids, a, b = fixed_arrays()
    narrow = paired_comparison(ids, a, b, n_resamples=2000, seed=3, confidence=0.8)
    assert narrow.ci == pytest.approx(direct_bootstrap(ids, a, b, 2000, 3, confidence=0.8), rel=1e-12)
    wide = paired_comparison(ids, a, b, n_resamples=2000, seed=3, confidence=0.99)
    assert wide.ci_low < narrow.ci_low and wide.ci_high > narrow.ci_high


def test_row_level_mcnemar_equals_statsmodels():
    ids, a, b = fixed_arrays()
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    assert paired_comparison(ids, a, b, n_resamples=99).mcnemar_p == pytest.approx(
        mcnemar(table, exact=True).pvalue, rel=1e-12)


def test_identical_predictions_give_p_one_and_a_zero_ci_without_warnings():
    ids, a, _ = fixed_arrays()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = paired_comparison(ids, a, a.copy())
    assert result.p_value == 1.0 and result.mcnemar_p == 1.0
    assert result.ci == (0.0, 0.0) and result.ci_method == "exact"


def test_every_persona_moving_alike_gives_a_point_ci_without_warnings():
    ids = np.repeat(["p1", "p2", "p3"], 4)
    a = np.zeros(12, dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = paired_comparison(ids, a, ~a)
    assert result.ci == (1.0, 1.0) and result.difference == 1.0
    assert result.p_value == pytest.approx(2 / 8)  # 3 personas: both all-plus and all-minus of 8 patterns


def test_degenerate_bca_falls_back_to_percentile():
    # One persona with a gain among 21 and 3 resamples: with seed 0 no resample falls below
    # the estimate, so BCa's bias correction is infinite and scipy answers NaN.
    ids = np.repeat([f"p{i}" for i in range(21)], 2)
    a = np.zeros(42, dtype=bool)
    b = a.copy()
    b[0] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(direct_bootstrap(ids, a, b, 3, 0)).all()  # the case this test needs
    result = paired_comparison(ids, a, b, n_resamples=3, seed=0)
    assert result.ci_method == "percentile"
    assert result.ci == pytest.approx(direct_bootstrap(ids, a, b, 3, 0, method="percentile"), rel=1e-12)


def test_a_broad_gain_is_significant_and_a_one_persona_gain_is_not():
    rng = np.random.default_rng(11)
    ids = np.repeat([f"p{i}" for i in range(50)], 10)
    a = rng.random(500) < 0.55
    broad = a | (rng.random(500) < 0.3)  # B fixes about a third of A's mistakes everywhere
    result = paired_comparison(ids, a, broad, n_resamples=2000)
    assert result.p_value < 0.05 and result.ci_low > 0
    narrow = a.copy()
    narrow[:10] = True  # one persona, all rows right: a big row count, one unit of evidence
    result = paired_comparison(ids, a, narrow, n_resamples=2000)
    assert result.p_value > 0.5 and result.ci_low <= 0


def test_seed_reproducibility():
    ids, a, b = fixed_arrays()
    first = paired_comparison(ids, a, b, n_resamples=500, seed=5)
    assert paired_comparison(ids, a, b, n_resamples=500, seed=5) == first
    assert paired_comparison(ids, a, b, n_resamples=500, seed=6).ci != first.ci


def test_accepts_zero_one_and_lists():
    ids, a, b = fixed_arrays(personas=5)
    as_bool = paired_comparison(ids, a, b, n_resamples=99)
    assert paired_comparison(list(ids), a.astype(int).tolist(), b.astype(int).tolist(), n_resamples=99) == as_bool


@pytest.mark.parametrize("ids, a, b, message", [
    ([], [], [], "no rows"),
    (["x", "x"], [True, False], [True], "same rows"),
    (["x", "x"], ["yes", "no"], ["no", "no"], "booleans or numbers"),
    (["x", "x"], [0.5, float("nan")], [1, 1], "finite"),
    (["x"], [[True]], [[True]], "one-dimensional"),
    (["x"], [True, False], [True, True], "persona ids"),
])
def test_bad_inputs_raise_clear_errors(ids, a, b, message):
    with pytest.raises(ValueError, match=message):
        paired_comparison(ids, a, b)


def test_continuous_scores_are_compared_by_the_same_persona_level_machinery():
    """Per-row ROUGE-like scores in [0, 1]: the same scipy bootstrap and sign-flip test on the
    per-persona sums, and no 2x2 table or McNemar (which need right/wrong)."""
    rng = np.random.default_rng(11)
    ids = np.repeat([f"p{i}" for i in range(12)], 5)
    a = rng.random(len(ids))
    b = np.clip(a + rng.normal(0.05, 0.1, len(ids)), 0, 1)
    result = paired_comparison(ids, a, b, n_resamples=999, seed=2, metric="rougeL")
    assert result.metric == "rougeL" and result.table is None and result.mcnemar_p is None
    assert (result.score_a, result.score_b) == (pytest.approx(a.mean()), pytest.approx(b.mean()))
    assert (result.b_better, result.a_better) == (int(np.sum(b > a)), int(np.sum(a > b)))
    assert result.p_value == pytest.approx(direct_permutation(ids, a, b, 999, 2), rel=1e-12)
    assert result.ci == pytest.approx(direct_bootstrap(ids, a, b, 999, 2), rel=1e-9)
    assert json.loads(json.dumps(result.to_dict()))["table"] is None


def test_bad_parameters_raise_clear_errors():
    with pytest.raises(ValueError, match="n_resamples"):
        paired_comparison(["x"], [True], [False], n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        paired_comparison(["x"], [True], [False], confidence=95)


def test_to_dict_is_json_ready():
    ids, a, b = fixed_arrays(personas=6)
    data = paired_comparison(ids, a, b, n_resamples=99).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["table"][1][0] == data["b_better"]


# ----- calibration by simulation: a null whose rows move together within a persona -------------


def correlated_null(rng, personas=60, rows=10, p_a=0.65):
    """A and B equally good on average, but each persona leans one way: some personas' rows all
    favour B, others' favour A (a persona adapter flips a persona's rows together). A persona's
    expected difference is its lean (symmetric around 0), made by flipping A's wrong rows to
    right (lean > 0) or its right rows to wrong (lean < 0)."""
    ids = np.repeat(np.arange(personas).astype(str), rows)
    a = rng.random(personas * rows) < p_a
    lean = np.repeat(rng.normal(0.0, 0.12, personas), rows)  # the persona's own direction
    flip_up = rng.random(personas * rows) < np.clip(lean / (1 - p_a), 0, 1)
    flip_down = rng.random(personas * rows) < np.clip(-lean / p_a, 0, 1)
    b = np.where(~a & flip_up, True, np.where(a & flip_down, False, a))
    return ids, a, b


def test_persona_level_ci_covers_the_true_difference_near_its_nominal_level():
    # The true difference of the null is 0 by symmetry. Row-level intervals assume independent
    # rows and are too narrow here; the persona bootstrap is not.
    rng = np.random.default_rng(2026)
    covered, covered_rows, trials = 0, 0, 150
    for trial in range(trials):
        ids, a, b = correlated_null(rng)
        result = paired_comparison(ids, a, b, n_resamples=499, seed=trial)
        covered += result.ci_low <= 0.0 <= result.ci_high
        rows = stats.bootstrap((b.astype(float) - a,), np.mean, n_resamples=499, method="percentile",
                               **{RNG: np.random.default_rng(trial)}).confidence_interval
        covered_rows += rows.low <= 0.0 <= rows.high
    assert 0.88 <= covered / trials <= 0.99  # 95% nominal; 150 trials: about +-3.6 points of MC error
    assert covered_rows / trials < 0.85  # what the row-level interval did: it over-claims


def test_persona_level_test_keeps_its_size_where_mcnemar_does_not():
    rng = np.random.default_rng(7)
    rejected, rejected_mcnemar, trials = 0, 0, 150
    for trial in range(trials):
        ids, a, b = correlated_null(rng)
        result = paired_comparison(ids, a, b, n_resamples=499, seed=trial)
        rejected += result.p_value < 0.05
        rejected_mcnemar += result.mcnemar_p < 0.05
    assert rejected / trials <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / trials)
    assert rejected_mcnemar / trials > 0.15  # the row-level test rejects a true null far too often


def test_sign_flip_of_nothing_is_one():
    assert sign_flip_p(np.zeros(10), 99, 0) == 1.0


@pytest.mark.parametrize("total, alternative, expected", [
    (-2.0, "less", 0.5), (-2.0, "greater", 1.0), (-2.0, "two-sided", 1.0),
    (3.0, "less", 1.0), (3.0, "greater", 0.5), (3.0, "two-sided", 1.0),
])
def test_one_persona_has_two_sign_patterns(total, alternative, expected):
    # scipy's permutation test refuses a single observation; its two sign patterns are exact.
    assert sign_flip_p(np.array([total]), 99, 0, alternative=alternative) == expected


def test_a_harm_check_of_one_flagged_persona_is_answered():
    from personalab.evaluate.harm import harm_check

    sums = persona_sums(["a", "a", "b", "b"], np.array([1.0, 1.0, 0.0, 1.0]), np.array([0.0, 0.0, 0.0, 1.0]))
    check = harm_check(["a"], sums, alpha=0.05, n_resamples=99)
    assert check.n_tested == 1 and check.p_value == 0.5 and not check.harmful
