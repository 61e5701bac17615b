"""Per-persona outcomes and the harm check: exact on fixed arrays, at its edges, against a direct
scipy call, by simulation on POPQUORN-sized personas — and the old rule (exact McNemar per
persona, Holm across personas) shown unable to fire on the same data."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests

from personalab.evaluate.harm import confirmation_sums, harm_check, persona_outcomes

RNG = "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"
PERSONAS, ROWS = 262, 10  # POPQUORN: 262 annotators, ~10 test rows each


def simulate(rng, deltas, p_a=0.68, c=0.08):
    """A's and B's right/wrong on ``ROWS`` rows per persona; persona ``i`` gains ``deltas[i]``
    under B (flips of A's rows: wrong -> right for a gain, right -> wrong for a loss)."""
    n = len(deltas)
    a = rng.random((n, ROWS)) < p_a
    up = np.where(deltas >= 0, (deltas + p_a * c) / (1 - p_a), c)[:, None]
    down = np.where(deltas >= 0, c, (-deltas + (1 - p_a) * c) / p_a)[:, None]
    u = rng.random((n, ROWS))
    b = np.where(a, u >= np.clip(down, 0, 1), u < np.clip(up, 0, 1))
    ids = np.repeat([f"p{i:03d}" for i in range(n)], ROWS)
    return ids, a.ravel(), b.ravel()


def harmful_deltas(rng, loss=0.15, share=0.3, gain=0.02):
    """``share`` of the personas lose ``loss``; the rest gain enough for +``gain`` overall."""
    harmed = rng.random(PERSONAS) < share
    return np.where(harmed, -loss, (gain + share * loss) / (1 - share))


def check(rng, deltas, alpha=0.05, seed=0):
    """The harm check as a plan runs it: flag on one draw of rows, test on an independent one."""
    flagged = persona_outcomes(*simulate(rng, deltas)).worse_ids()
    return harm_check(flagged, confirmation_sums(*simulate(rng, deltas)), alpha=alpha, n_resamples=999, seed=seed)


def test_persona_outcomes_count_each_personas_discordant_rows():
    ids = np.array(["b", "a", "a", "b", "c", "c"])
    a = np.array([1, 1, 0, 0, 1, 0], dtype=bool)
    b = np.array([0, 1, 1, 1, 1, 0], dtype=bool)
    outcome = persona_outcomes(ids, a, b)
    assert [p.persona_id for p in outcome.personas] == ["a", "b", "c"]
    assert [(p.b_better, p.a_better) for p in outcome.personas] == [(1, 0), (1, 1), (0, 0)]
    assert (outcome.improved, outcome.equal, outcome.worse) == (1, 2, 0)
    assert outcome.personas[0].difference == pytest.approx(0.5)
    data = outcome.to_dict()
    assert data["n_personas"] == 3 and len(data["personas"]) == 3


def test_harm_p_equals_a_one_sided_scipy_permutation_test_of_the_flagged_personas():
    rng = np.random.default_rng(1)
    ids, a, b = simulate(rng, harmful_deltas(rng))
    sums = confirmation_sums(ids, a, b)
    flagged = list(sums.ids[::3])
    result = harm_check(flagged, sums, n_resamples=2000, seed=4)
    keep = np.isin(sums.ids, flagged)
    direct = stats.permutation_test((sums.sums[keep],), lambda s, axis: s.sum(axis), permutation_type="samples",
                                    n_resamples=2000, alternative="less", vectorized=True,
                                    **{RNG: np.random.default_rng(4)}).pvalue
    assert result.p_value == pytest.approx(direct, rel=1e-12)
    assert result.n_tested == keep.sum()
    assert result.flagged_difference == pytest.approx(sums.sums[keep].sum() / sums.counts[keep].sum())


def test_nobody_flagged_is_no_harm():
    ids, a, b = simulate(np.random.default_rng(2), np.zeros(20))
    result = harm_check([], confirmation_sums(ids, a, b))
    assert (result.n_flagged, result.n_tested, result.p_value, result.harmful) == (0, 0, 1.0, False)


def test_flagged_personas_without_confirmation_rows_are_not_tested():
    ids, a, b = simulate(np.random.default_rng(3), np.zeros(20))
    result = harm_check(["someone-else"], confirmation_sums(ids, a, b))
    assert (result.n_flagged, result.n_tested, result.harmful) == (1, 0, False)
    assert result.flagged_difference is None


def test_harm_needs_p_strictly_below_alpha():
    # Three flagged personas, all worse: 1 of the 8 sign patterns is as low, p = 1/8 exactly.
    ids = np.repeat(["x", "y", "z"], 2)
    a, b = np.ones(6, dtype=bool), np.array([0, 1, 0, 1, 0, 1], dtype=bool)
    sums = confirmation_sums(ids, a, b)
    assert harm_check(["x", "y", "z"], sums, alpha=0.125).p_value == pytest.approx(0.125)
    assert not harm_check(["x", "y", "z"], sums, alpha=0.125).harmful
    assert harm_check(["x", "y", "z"], sums, alpha=0.13).harmful


def test_flagged_personas_that_are_better_on_the_second_rows_are_no_harm():
    ids = np.repeat([f"p{i}" for i in range(12)], 5)
    a = np.zeros(60, dtype=bool)
    b = a.copy()
    b[::5] = True  # every persona gains one row
    assert harm_check(sorted(set(ids)), confirmation_sums(ids, a, b)).p_value == 1.0


def test_bad_alpha_and_mismatched_rows_are_clear_errors():
    ids, a, b = simulate(np.random.default_rng(5), np.zeros(4))
    with pytest.raises(ValueError, match="alpha"):
        harm_check([], confirmation_sums(ids, a, b), alpha=0)
    with pytest.raises(ValueError, match="persona ids"):
        persona_outcomes(ids[:-1], a, b)
    with pytest.raises(ValueError, match="no rows"):
        persona_outcomes([], [], [])


def test_the_old_rule_cannot_fire_on_popquorn_sized_personas_and_the_new_one_does():
    # A candidate that gains +2 points overall but costs 30% of the personas 30 points each.
    rng = np.random.default_rng(2026)
    deltas = harmful_deltas(rng, loss=0.3)
    ids, a, b = simulate(rng, deltas)
    # Old rule: an exact McNemar test per persona, Holm across the 262 personas. With 10 rows
    # even 10 of 10 rows lost gives p = 2 / 2^10 = 0.002 > 0.05 / 262: no persona can pass.
    raw = []
    for pid in sorted(set(ids)):
        pa, pb = a[ids == pid], b[ids == pid]
        raw.append(mcnemar([[np.sum(pa & pb), np.sum(pa & ~pb)], [np.sum(~pa & pb), np.sum(~pa & ~pb)]],
                           exact=True).pvalue)
    assert min(raw) > 0.05 / PERSONAS
    assert not multipletests(raw, alpha=0.05, method="holm")[0].any()
    # New rule: the personas worse on these rows, tested on an independent draw of rows.
    flagged = persona_outcomes(ids, a, b).worse_ids()
    harm = harm_check(flagged, confirmation_sums(*simulate(rng, deltas)), n_resamples=999)
    assert harm.harmful and harm.flagged_difference < 0


def test_the_harm_check_catches_a_harmful_candidate_and_rarely_raises_a_false_alarm():
    rng = np.random.default_rng(11)
    trials = 60
    caught = sum(check(rng, harmful_deltas(rng), seed=t).harmful for t in range(trials))
    alarms = sum(check(rng, np.full(PERSONAS, 0.05), seed=t).harmful for t in range(trials))
    assert caught / trials >= 0.8
    assert alarms / trials <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / trials)


def test_with_no_persona_harmed_the_check_holds_its_level():
    # Every persona exactly as good under B: the flagged set is pure noise, and the independent
    # rows show it; false alarms at most alpha (within Monte-Carlo error).
    rng = np.random.default_rng(12)
    trials = 120
    alarms = sum(check(rng, np.zeros(PERSONAS), seed=t).harmful for t in range(trials))
    assert alarms / trials <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / trials)
