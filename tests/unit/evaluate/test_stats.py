"""Paired statistics against direct scipy / statsmodels calls on fixed arrays, and the degenerate
cases those libraries answer with warnings and NaN."""

from __future__ import annotations

import inspect
import json
import warnings

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from personalab.evaluate.stats import paired_comparison, per_persona_comparison

# The installed scipy's name for the generator argument (renamed in scipy 1.15).
RNG = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


def fixed_arrays(n=300, p_a=0.6, p_b=0.68, seed=7):
    """Two correlated right/wrong columns, as two strategies on the same rows would give."""
    rng = np.random.default_rng(seed)
    a = rng.random(n) < p_a
    # B keeps most of A's answers and flips some: discordant pairs both ways.
    flip = rng.random(n) < 0.25
    b = np.where(flip, rng.random(n) < p_b, a)
    return a, b


def direct_bootstrap(a, b, n_resamples, seed, method="BCa", confidence=0.95):
    differences = b.astype(float) - a.astype(float)
    result = stats.bootstrap((differences,), np.mean, n_resamples=n_resamples, method=method,
                             confidence_level=confidence, **{RNG: np.random.default_rng(seed)})
    return result.confidence_interval.low, result.confidence_interval.high


def test_counts_and_accuracies():
    a = np.array([1, 1, 0, 0, 1, 0, 1], dtype=bool)
    b = np.array([1, 0, 1, 1, 1, 0, 0], dtype=bool)
    result = paired_comparison(a, b, n_resamples=99)
    assert result.n == 7
    assert result.accuracy_a == pytest.approx(4 / 7) and result.accuracy_b == pytest.approx(4 / 7)
    assert result.difference == pytest.approx(0.0)
    assert result.table == ((2, 2), (2, 1))  # both right, only A; only B, both wrong
    assert (result.b_better, result.a_better) == (2, 2)


def test_p_value_equals_statsmodels_mcnemar():
    a, b = fixed_arrays()
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    expected = mcnemar(table, exact=True).pvalue
    assert paired_comparison(a, b, n_resamples=99).p_value == pytest.approx(expected, rel=1e-12)


def test_ci_equals_scipy_bootstrap_with_the_same_seed():
    a, b = fixed_arrays()
    result = paired_comparison(a, b, n_resamples=2000, seed=3)
    assert result.ci_method == "BCa"
    assert result.ci == pytest.approx(direct_bootstrap(a, b, 2000, 3), rel=1e-12)
    assert result.ci_low <= result.difference <= result.ci_high


def test_ci_honours_the_confidence_level():
    a, b = fixed_arrays()
    narrow = paired_comparison(a, b, n_resamples=2000, seed=3, confidence=0.8)
    assert narrow.ci == pytest.approx(direct_bootstrap(a, b, 2000, 3, confidence=0.8), rel=1e-12)
    wide = paired_comparison(a, b, n_resamples=2000, seed=3, confidence=0.99)
    assert wide.ci_low < narrow.ci_low and wide.ci_high > narrow.ci_high


def test_identical_predictions_give_p_one_and_a_zero_ci_without_warnings():
    a, _ = fixed_arrays()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = paired_comparison(a, a.copy())
    assert result.p_value == 1.0
    assert result.ci == (0.0, 0.0) and result.ci_method == "exact"
    assert result.b_better == result.a_better == 0


def test_all_rows_flipped_the_same_way_give_a_point_ci_without_warnings():
    a = np.zeros(12, dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = paired_comparison(a, ~a)
    assert result.ci == (1.0, 1.0) and result.difference == 1.0
    assert result.p_value == pytest.approx(stats.binomtest(0, 12, 0.5).pvalue)


def test_degenerate_bca_falls_back_to_percentile():
    # One discordant row in 21 and 3 resamples: with seed 0 no resample falls below the
    # estimate, so BCa's bias correction is infinite and scipy answers NaN.
    a = np.zeros(21, dtype=bool)
    b = a.copy()
    b[0] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(direct_bootstrap(a, b, 3, 0)).all()  # the case this test needs
    result = paired_comparison(a, b, n_resamples=3, seed=0)
    assert result.ci_method == "percentile"
    assert result.ci == pytest.approx(direct_bootstrap(a, b, 3, 0, method="percentile"), rel=1e-12)


def test_clearly_better_b_is_significant():
    rng = np.random.default_rng(11)
    a = rng.random(500) < 0.55
    b = a | (rng.random(500) < 0.3)  # B fixes about a third of A's mistakes, breaks none
    result = paired_comparison(a, b, n_resamples=2000)
    assert result.p_value < 0.05
    assert result.ci_low > 0


def test_a_small_difference_is_not_significant():
    a = np.array([True, False] * 20)
    b = a.copy()
    b[1] = True  # one row better out of 40
    result = paired_comparison(a, b, n_resamples=2000)
    assert result.p_value == 1.0  # exact binomial, one discordant pair
    assert result.ci_low <= 0 < result.ci_high


def test_seed_reproducibility():
    a, b = fixed_arrays()
    first = paired_comparison(a, b, n_resamples=500, seed=5)
    assert paired_comparison(a, b, n_resamples=500, seed=5) == first
    assert paired_comparison(a, b, n_resamples=500, seed=6).ci != first.ci


def test_accepts_zero_one_and_lists():
    a, b = fixed_arrays(n=50)
    as_bool = paired_comparison(a, b, n_resamples=99)
    assert paired_comparison(a.astype(int).tolist(), b.astype(int).tolist(), n_resamples=99) == as_bool


@pytest.mark.parametrize("a, b, message", [
    ([], [], "no rows"),
    ([True, False], [True], "same rows"),
    (["yes", "no"], ["no", "no"], "booleans"),
    ([0, 2], [1, 1], "booleans"),
    ([[True]], [[True]], "one-dimensional"),
])
def test_bad_inputs_raise_clear_errors(a, b, message):
    with pytest.raises(ValueError, match=message):
        paired_comparison(a, b)


def test_bad_parameters_raise_clear_errors():
    with pytest.raises(ValueError, match="n_resamples"):
        paired_comparison([True], [False], n_resamples=0)
    with pytest.raises(ValueError, match="confidence"):
        paired_comparison([True], [False], confidence=95)


def test_to_dict_is_json_ready():
    a, b = fixed_arrays(n=60)
    data = paired_comparison(a, b, n_resamples=99).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["table"][1][0] == data["b_better"]


# --- per persona -----------------------------------------------------------------------------


def persona_arrays(seed=2, personas=12, rows=15):
    rng = np.random.default_rng(seed)
    ids = np.repeat([f"p{i:02d}" for i in range(personas)], rows)
    a = rng.random(len(ids)) < 0.6
    # Some personas gain a lot under B, some lose, the rest flip at random.
    shift = np.repeat(rng.choice([-0.6, 0.0, 0.0, 0.8], personas), rows)
    b = np.where(rng.random(len(ids)) < np.abs(shift), shift > 0, a)
    return ids, a, b


@pytest.mark.parametrize("method", ["holm", "fdr_bh"])
def test_per_persona_adjustment_equals_multipletests(method):
    ids, a, b = persona_arrays()
    result = per_persona_comparison(ids, a, b, method=method, alpha=0.05)
    personas = sorted(set(ids))
    raw = []
    for pid in personas:
        pa, pb = a[ids == pid], b[ids == pid]
        raw.append(mcnemar([[np.sum(pa & pb), np.sum(pa & ~pb)], [np.sum(~pa & pb), np.sum(~pa & ~pb)]],
                           exact=True).pvalue)
    reject, adjusted, _, _ = multipletests(raw, alpha=0.05, method=method)
    assert [p.persona_id for p in result.personas] == personas
    assert [p.p_value for p in result.personas] == pytest.approx(raw, rel=1e-12)
    assert [p.p_adjusted for p in result.personas] == pytest.approx(adjusted, rel=1e-12)
    assert [p.significant for p in result.personas] == list(reject)


def test_per_persona_counts_follow_the_sign_of_the_difference():
    ids, a, b = persona_arrays(rows=40)  # enough rows for a persona to pass the correction
    result = per_persona_comparison(ids, a, b)
    diffs = np.array([b[ids == pid].mean() - a[ids == pid].mean() for pid in sorted(set(ids))])
    assert [p.difference for p in result.personas] == pytest.approx(diffs)
    assert (result.improved, result.equal, result.worse) == (
        int(np.sum(diffs > 1e-12)), int(np.sum(np.abs(diffs) <= 1e-12)), int(np.sum(diffs < -1e-12)))
    significant = np.array([p.significant for p in result.personas])
    assert result.significantly_better == int(np.sum(significant & (diffs > 0)))
    assert result.significantly_worse == int(np.sum(significant & (diffs < 0)))
    assert result.significantly_better + result.significantly_worse > 0  # the fixture has real effects


def test_per_persona_identical_predictions_are_all_equal_without_warnings():
    ids, a, _ = persona_arrays()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = per_persona_comparison(ids, a, a.copy())
    assert (result.improved, result.equal, result.worse) == (0, 12, 0)
    assert all(p.p_value == 1.0 and p.p_adjusted == 1.0 and not p.significant for p in result.personas)


def test_per_persona_to_dict_and_errors():
    ids, a, b = persona_arrays(personas=3, rows=4)
    data = per_persona_comparison(ids, a, b, method="fdr_bh").to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["n_personas"] == 3 and data["method"] == "fdr_bh"
    assert data["improved"] + data["equal"] + data["worse"] == 3
    with pytest.raises(ValueError, match="correction"):
        per_persona_comparison(ids, a, b, method="bonferonni")
    with pytest.raises(ValueError, match="persona ids"):
        per_persona_comparison(ids[:-1], a, b)
    with pytest.raises(ValueError, match="no rows"):
        per_persona_comparison([], [], [])
