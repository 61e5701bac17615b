"""Calibration of a plan's decision (../shared/BENCHMARK.md, section 9): how often the procedure
``personalab plan`` follows adopts a candidate that is no better, how often it adopts one that
is, and how often the harm check stops one that helps on average but hurts a group of personas.
No training and no model: per-row correctness is simulated, and every statistic and every
decision is made by the library's own functions, so what is calibrated is the real code.

The procedure (``personalab.plan.runner``), with ``Acceptance(alpha, min_gain=0, harm_alpha)``:

1. **selection**: candidates in cost order; each compared with the baseline on the selection
   (validation) rows by ``paired_comparison`` (persona-level sign-flip p-value) and judged by
   ``acceptance.judge`` (p < alpha and gain >= min_gain); the pick is ``acceptance.choose``
   (``stop: first_win``: the first accepted; the candidates after it are not run);
2. **confirmation**, once, for the pick, on the test rows: ``acceptance.confirm`` on the
   comparison dictionary ``compare_runs`` would build (``comparison_dict`` below builds it from
   the same functions, in the same shape), whose ``"harm"`` entry tests the personas worse
   under the pick on the selection rows (``harm.persona_outcomes(...).worse_ids()``) on the
   test rows (``harm.harm_check``). The plan adopts the pick when the confirmation holds.

The old procedure, for comparison on the same simulated data: every candidate tried in order
on the *test* rows, accepted when the row-level exact McNemar test (``stats.mcnemar_p``) gives
p < alpha and the gain is >= 0, first win adopted. Its per-persona Holm harm rule is left out:
with ~10 rows a persona it could never fire (``personalab.evaluate.harm``'s docstring: 0.05 /
262 needs 14 or more discordant rows of one persona), so it changed no decision.

Simulation (POPQUORN-shaped): 262 personas x 10 selection and 10 test rows. Each persona's
baseline accuracy p_A ~ clip(Normal(0.68, 0.12), 0.05, 0.98): that heterogeneity is what
correlates a persona's rows. Baseline correct ~ Bernoulli(p_A) per row. A candidate with a
per-persona true gain delta flips the baseline's rows with a base discordance c = 0.08 each way
plus the effect: for delta >= 0, P(wrong->right) = (delta + p_A c) / (1 - p_A) and
P(right->wrong) = c; for delta < 0, P(right->wrong) = (-delta + (1 - p_A) c) / p_A and
P(wrong->right) = c; both clipped to [0, 1] (clipping makes a persona near p_A = 1 gain less
than delta). Selection and test rows are drawn independently with the same deltas.
Clipping also touches delta = 0: a persona with p_A above 1 / (1 + c) ~ 0.93 cannot get
P(wrong->right) = p_A c / (1 - p_A), so a "no gain" candidate is on average 0.07 points worse
than the baseline (2% of personas), which makes the null scenario very slightly conservative.
With a constant delta the flips of different rows are independent, so the row-level McNemar
test is valid for *one* candidate here: the old procedure's excess false acceptance comes from
trying eight on the rows that decide. Personas with different deltas (the harm scenario) make
flips persona-correlated.

Scenarios, each ``--plans`` simulated plans of 8 candidates (or single candidates):

- ``false_acceptance``: all 8 candidates have delta = 0 for every persona; the share of plans
  that adopt one (must be <= alpha within Monte-Carlo error); ``false_acceptance_old``: the old
  procedure on the same data;
- ``power``: one candidate with delta = +0.05 for every persona at a uniformly random position,
  the 7 others null; the share of plans adopting exactly it (``power_old`` likewise); and
  ``harm_false_alarm``: how often the harm check fires for that candidate (computed for it in
  every plan, picked or not);
- ``harm_rejected``: one candidate with an overall true gain of +2 points that makes 30% of the
  personas worse: those (drawn anew each simulation) get delta = -h, the others
  (0.02 + s h) / (1 - s), s the share actually drawn (79 / 262), so the persona-average true
  gain is exactly +0.02 before clipping. The share of simulations in which the harm check fires
  (``harm["harmful"]``: the check alone, flagged on the candidate's selection rows and tested
  on its test rows, as the confirmation runs it whenever that candidate is the pick), for
  h = ``--harm-loss`` (``--plans`` simulations) and for each other h
  of ``harm_rejected_by_loss`` (``--curve-plans``).

The permutation tests use ``--resamples`` (999 by default, against the plan's 9999): the
p-value's resolution, 0.001, is ample for a decision at alpha 0.05, and a comparison costs
~0.03 s instead of ~0.14 s (``--quick``: 499, resolution 0.002, still ample). A candidate
whose selection gain is already below min_gain is not tested: ``judge`` rejects it on its gain
whatever its p-value, so it is judged (by ``judge``, so the rule stays the library's) on a
comparison carrying its gain and p = 1.0.

Standard errors are the binomial Monte-Carlo ones, sqrt(r (1 - r) / n), with a 95%
Clopper-Pearson interval. Seeded: the same ``--seed`` and ``--plans`` give the same numbers.

    python bench/decision_calibration.py --out runs/bench/decision_calibration.json
    python bench/decision_calibration.py --quick     # smoke test only (~200 plans)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy
import statsmodels
from scipy import stats as scipy_stats
from tqdm import tqdm

from personalab.evaluate.harm import confirmation_sums, harm_check, persona_outcomes
from personalab.evaluate.stats import contingency_table, mcnemar_p, paired_comparison
from personalab.plan.acceptance import TOLERANCE, choose, confirm, judge
from personalab.plan.spec import Acceptance
from personalab.plan.steps import BOOTSTRAP_SEED

PERSONAS, ROWS, CANDIDATES = 262, 10, 8
BASE_MEAN, BASE_SD, BASE_CLIP = 0.68, 0.12, (0.05, 0.98)
DISCORDANCE = 0.08  # c: rows flipped each way by a candidate no better than the baseline
POWER_GAIN = 0.05
HARM_GAIN, HARM_SHARE, HARM_LOSS = 0.02, 0.30, 0.15
HARM_LOSSES = (0.05, 0.10, 0.15, 0.20)
FULL_PLANS, QUICK_PLANS = 2000, 200
FULL_RESAMPLES, QUICK_RESAMPLES = 999, 499  # p resolved to 0.001 / 0.002: either is ample at alpha 0.05
STOP = "first_win"
SELECTION, CONFIRMATION = "val", "test"


# ----- simulation ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Split:
    """One set of rows: the baseline's correctness and each candidate's (``cands[k]``)."""

    base: np.ndarray  # (rows,) bool
    cands: np.ndarray  # (candidates, rows) bool

    def gain(self, k: int) -> float:
        return float(self.cands[k].mean() - self.base.mean())


def persona_ids(n_personas: int, rows: int) -> np.ndarray:
    return np.repeat([f"p{i:03d}" for i in range(n_personas)], rows)


def baseline_accuracy(rng: np.random.Generator, n_personas: int) -> np.ndarray:
    return np.clip(rng.normal(BASE_MEAN, BASE_SD, n_personas), *BASE_CLIP)


def simulate_split(rng: np.random.Generator, p_a: np.ndarray, deltas: np.ndarray, rows: int) -> Split:
    """The baseline's rows (Bernoulli(p_A)) and, for each row of ``deltas`` (candidates x
    personas), a candidate made by flipping them (see the module docstring)."""
    pa = np.repeat(p_a, rows)[None, :]
    delta = np.repeat(deltas, rows, axis=1)
    c = DISCORDANCE
    base = rng.random(pa.shape[1]) < pa[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        up = np.where(delta >= 0, (delta + pa * c) / (1 - pa), c)  # P(wrong -> right)
        down = np.where(delta >= 0, c, (-delta + (1 - pa) * c) / pa)  # P(right -> wrong)
    up, down = np.clip(up, 0, 1), np.clip(down, 0, 1)
    u = rng.random(delta.shape)
    flip = np.where(base[None, :], u < down, u < up)
    return Split(base, base[None, :] ^ flip)


def harm_deltas(rng: np.random.Generator, n_personas: int, loss: float) -> np.ndarray:
    """One candidate: HARM_SHARE of the personas (drawn anew) lose ``loss``, the others gain
    enough for a persona-average true gain of HARM_GAIN."""
    hurt = rng.choice(n_personas, size=round(HARM_SHARE * n_personas), replace=False)
    share = len(hurt) / n_personas
    deltas = np.full(n_personas, (HARM_GAIN + share * loss) / (1 - share))
    deltas[hurt] = -loss
    return deltas[None, :]


# ----- the comparison dictionaries, as compare_runs builds them ---------------------------------

def run_info(name: str) -> dict[str, Any]:
    return {"run": name, "name": name, "strategy": None, "model": None}


def harm_entry(ids: np.ndarray, flag: tuple[np.ndarray, np.ndarray], base: np.ndarray, cand: np.ndarray,
               rule: Acceptance, flag_split: str = SELECTION) -> dict[str, Any]:
    """``compare_runs``' ``"harm"``: the personas worse under B on the flag rows, tested here.
    (``harm_alpha or 0.05``: what ``personalab.plan.steps.compare_step`` passes.)"""
    flagged = persona_outcomes(ids, *flag).worse_ids()
    sums = confirmation_sums(ids, base, cand)
    harm = harm_check(flagged, sums, alpha=rule.harm_alpha or 0.05, n_resamples=rule.n_resamples,
                      seed=BOOTSTRAP_SEED)
    return {"flag_split": flag_split, **harm.to_dict()}


def comparison_dict(ids: np.ndarray, base: np.ndarray, cand: np.ndarray, split: str, rule: Acceptance,
                    flag: tuple[np.ndarray, np.ndarray] | None = None,
                    names: tuple[str, str] = ("baseline", "candidate"), per_persona: bool = True) -> dict[str, Any]:
    """What ``compare_runs(A, B, split, flag_split=...)`` returns for these rows (``flag``: the
    baseline's and the candidate's correctness on the flag split's rows, same persona ids),
    built by the same functions with the plan's statistics settings (``compare_step``).
    ``per_persona=False`` leaves out the per-persona table, which no rule reads (see
    ``selection_comparison``)."""
    overall = paired_comparison(ids, base, cand, n_resamples=rule.n_resamples, seed=BOOTSTRAP_SEED,
                                confidence=rule.confidence)
    result = {
        "split": split,
        "a": run_info(names[0]),
        "b": run_info(names[1]),
        "overall": overall.to_dict(),
        "per_persona": persona_outcomes(ids, base, cand).to_dict(),
        "harm": None,
    } if per_persona else {"split": split, "a": run_info(names[0]), "b": run_info(names[1]),
                          "overall": overall.to_dict(), "harm": None}
    if flag is not None:
        result["harm"] = harm_entry(ids, flag, base, cand, rule)
    return result


def selection_comparison(ids: np.ndarray, split: Split, k: int, rule: Acceptance) -> dict[str, Any]:
    """Candidate ``k`` on the selection rows, for ``judge`` (which reads ``"overall"`` only).
    Below min_gain it is not tested: judge rejects it on its gain whatever the p-value, so
    p = 1.0 stands in (the rule applied is still judge's). The per-persona table is left out:
    ``persona_outcomes`` on 262 personas costs about as much as the permutation test and no rule
    reads it here (the pick's selection outcomes are recomputed for the harm flags, as
    ``compare_runs`` recomputes them); the confirmation's comparison carries the full shape."""
    gain = split.gain(k)
    if gain < rule.min_gain - TOLERANCE:
        return {"split": SELECTION, "overall": {"difference": gain, "p_value": 1.0}}
    return comparison_dict(ids, split.base, split.cands[k], SELECTION, rule, names=("baseline", f"c{k}"),
                           per_persona=False)


# ----- the procedures -----------------------------------------------------------------------------

@dataclass
class PlanOutcome:
    picked: int | None  # the candidate chosen on the selection rows
    adopted: int | None  # the pick, when its confirmation held
    tested: int  # selection comparisons that ran the permutation test
    confirmation: dict[str, Any] | None  # the pick's test comparison (with "harm")
    verdict: dict[str, Any] | None


def run_plan(ids: np.ndarray, val: Split, test: Split, rule: Acceptance) -> PlanOutcome:
    """``personalab plan``'s decision: select on ``val``, confirm the pick once on ``test``."""
    accepted: list[tuple[str, float]] = []
    tested = 0
    for k in range(val.cands.shape[0]):
        if STOP == "first_win" and choose(accepted, STOP) is not None:
            break  # the runner does not run the candidates after the first accepted
        comparison = selection_comparison(ids, val, k, rule)
        tested += "n" in comparison["overall"]  # a paired_comparison ran
        if judge(comparison, rule).accepted:
            accepted.append((f"c{k}", comparison["overall"]["difference"]))
    winner = choose(accepted, STOP)
    if winner is None:
        return PlanOutcome(None, None, tested, None, None)
    k = int(winner[1:])
    comparison = comparison_dict(ids, test.base, test.cands[k], CONFIRMATION, rule,
                                 flag=(val.base, val.cands[k]), names=("baseline", winner))
    verdict = confirm(comparison, rule)
    return PlanOutcome(k, k if verdict.accepted else None, tested, comparison, verdict.to_dict())


def run_old_plan(test: Split, rule: Acceptance) -> int | None:
    """The old decision: each candidate on the test rows, row-level exact McNemar p < alpha and
    gain >= min_gain (0), the first to pass adopted. (Its per-persona Holm harm rule could never
    fire on ~10 rows a persona, so it is left out: it changed no decision.) The two conditions
    are judge's, so judge applies them, to the McNemar p-value."""
    accepted: list[tuple[str, float]] = []
    for k in range(test.cands.shape[0]):
        if choose(accepted, STOP) is not None:
            break
        comparison = {"overall": {"p_value": mcnemar_p(contingency_table(test.base, test.cands[k])),
                                  "difference": test.gain(k)}}
        if judge(comparison, rule).accepted:
            accepted.append((f"c{k}", comparison["overall"]["difference"]))
    winner = choose(accepted, STOP)
    return None if winner is None else int(winner[1:])


# ----- the scenarios -------------------------------------------------------------------------------

def rate(hits: int, n: int) -> dict[str, Any]:
    """A Monte-Carlo proportion: the share, its standard error and a 95% Clopper-Pearson CI."""
    share = hits / n
    ci = scipy_stats.binomtest(hits, n).proportion_ci(0.95, method="exact")
    return {"rate": share, "se": math.sqrt(share * (1 - share) / n), "ci95": [float(ci.low), float(ci.high)],
            "hits": hits, "n": n}


def null_scenario(rng, ids, n_plans: int, rule: Acceptance, progress: bool) -> dict[str, Any]:
    adopted = old = picked = tested = harm_fired = 0
    deltas = np.zeros((CANDIDATES, PERSONAS))
    for _ in tqdm(range(n_plans), desc="null (8 x no gain)", disable=not progress, file=sys.stderr):
        p_a = baseline_accuracy(rng, PERSONAS)
        val, test = simulate_split(rng, p_a, deltas, ROWS), simulate_split(rng, p_a, deltas, ROWS)
        outcome = run_plan(ids, val, test, rule)
        picked += outcome.picked is not None
        adopted += outcome.adopted is not None
        tested += outcome.tested
        harm_fired += bool(outcome.confirmation and outcome.confirmation["harm"]["harmful"])
        old += run_old_plan(test, rule) is not None
    return {"false_acceptance": rate(adopted, n_plans), "false_acceptance_old": rate(old, n_plans),
            "picked_on_selection": rate(picked, n_plans), "harm_fired_at_confirmation": rate(harm_fired, n_plans),
            "selection_tests_per_plan": tested / n_plans}


def power_scenario(rng, ids, n_plans: int, rule: Acceptance, progress: bool) -> dict[str, Any]:
    adopted = old = picked = false_alarm = 0
    test_gains = []
    for _ in tqdm(range(n_plans), desc=f"power (+{POWER_GAIN:g} at a random place)", disable=not progress,
                  file=sys.stderr):
        position = int(rng.integers(CANDIDATES))
        deltas = np.zeros((CANDIDATES, PERSONAS))
        deltas[position] = POWER_GAIN
        p_a = baseline_accuracy(rng, PERSONAS)
        val, test = simulate_split(rng, p_a, deltas, ROWS), simulate_split(rng, p_a, deltas, ROWS)
        outcome = run_plan(ids, val, test, rule)
        picked += outcome.picked == position
        adopted += outcome.adopted == position
        old += run_old_plan(test, rule) == position
        # The harm check of the good candidate in every plan, picked or not (the same check).
        if outcome.picked == position:
            harm = outcome.confirmation["harm"]
        else:
            harm = harm_entry(ids, (val.base, val.cands[position]), test.base, test.cands[position], rule)
        false_alarm += harm["harmful"]
        test_gains.append(test.gain(position))
    return {"power": rate(adopted, n_plans), "power_old": rate(old, n_plans),
            "picked_on_selection": rate(picked, n_plans), "harm_false_alarm": rate(false_alarm, n_plans),
            "mean_test_gain": float(np.mean(test_gains))}


def harm_scenario(rng, ids, n_sims: int, loss: float, rule: Acceptance, progress: bool) -> dict[str, Any]:
    """The harm check of the one harmful candidate: flagged on its selection rows, tested on
    its test rows, as the confirmation does whenever it is the pick."""
    fired = 0
    test_gains, flagged = [], []
    for _ in tqdm(range(n_sims), desc=f"harm (h = {loss:g})", disable=not progress, file=sys.stderr):
        deltas = harm_deltas(rng, PERSONAS, loss)
        p_a = baseline_accuracy(rng, PERSONAS)
        val, test = simulate_split(rng, p_a, deltas, ROWS), simulate_split(rng, p_a, deltas, ROWS)
        harm = harm_entry(ids, (val.base, val.cands[0]), test.base, test.cands[0], rule)
        fired += harm["harmful"]
        test_gains.append(test.gain(0))
        flagged.append(harm["n_flagged"])
    return {"harm_loss": loss, "harm_rejected": rate(fired, n_sims), "mean_test_gain": float(np.mean(test_gains)),
            "mean_flagged": float(np.mean(flagged))}


def run(args) -> dict[str, Any]:
    resamples = args.resamples or (QUICK_RESAMPLES if args.quick else FULL_RESAMPLES)
    rule = Acceptance(alpha=args.alpha, min_gain=0.0, harm_alpha=args.alpha, n_resamples=resamples)
    n_plans = args.plans or (QUICK_PLANS if args.quick else FULL_PLANS)
    curve_plans = args.curve_plans or (n_plans // 4 if args.quick else n_plans)
    losses = sorted(set(HARM_LOSSES) | {args.harm_loss})
    progress = not args.no_progress
    ids = persona_ids(PERSONAS, ROWS)
    # One independent stream per scenario: a scenario's numbers do not depend on the others'.
    streams = iter(np.random.default_rng(s) for s in np.random.SeedSequence(args.seed).spawn(2 + len(losses)))
    started, cpu = time.perf_counter(), time.process_time()
    null = null_scenario(next(streams), ids, n_plans, rule, progress)
    null["seconds"] = time.perf_counter() - started
    power = power_scenario(next(streams), ids, n_plans, rule, progress)
    power["seconds"] = time.perf_counter() - started - null["seconds"]
    harms = {}
    for loss in losses:
        at = time.perf_counter()
        n = n_plans if loss == args.harm_loss else curve_plans
        harms[loss] = harm_scenario(next(streams), ids, n, loss, rule, progress)
        harms[loss]["seconds"] = time.perf_counter() - at
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    main = harms[args.harm_loss]
    return {
        "false_acceptance": null["false_acceptance"]["rate"],
        "false_acceptance_se": null["false_acceptance"]["se"],
        "false_acceptance_old": null["false_acceptance_old"]["rate"],
        "false_acceptance_old_se": null["false_acceptance_old"]["se"],
        "power": power["power"]["rate"],
        "power_se": power["power"]["se"],
        "power_old": power["power_old"]["rate"],
        "power_old_se": power["power_old"]["se"],
        "harm_rejected": main["harm_rejected"]["rate"],
        "harm_rejected_se": main["harm_rejected"]["se"],
        "harm_loss": args.harm_loss,
        "harm_mean_test_gain": main["mean_test_gain"],
        "harm_rejected_by_loss": {f"{loss:g}": {"rate": h["harm_rejected"]["rate"], "se": h["harm_rejected"]["se"],
                                                "mean_test_gain": h["mean_test_gain"], "n": h["harm_rejected"]["n"]}
                                  for loss, h in harms.items() if loss in HARM_LOSSES},
        "harm_false_alarm": power["harm_false_alarm"]["rate"],
        "harm_false_alarm_se": power["harm_false_alarm"]["se"],
        "alpha": args.alpha,
        "seed": args.seed,
        "plans": n_plans,
        "curve_plans": curve_plans,
        "resamples": resamples,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,  # wall time on a shared machine runs longer
        "details": {"null": null, "power": power, "harm": {f"{loss:g}": h for loss, h in harms.items()}},
    }


def environment() -> dict[str, Any]:
    import personalab

    record = {"python": platform.python_version(), "platform": platform.platform(), "numpy": np.__version__,
              "scipy": scipy.__version__, "statsmodels": statsmodels.__version__,
              "personalab": getattr(personalab, "__version__", "unknown"), "cpu_count": os.cpu_count(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "device": "cpu"}
    if hasattr(os, "getloadavg"):
        record["load_average_1m_at_start"] = os.getloadavg()[0]  # the machine is shared
    return record


def print_table(results: dict[str, Any]) -> None:
    def pm(key: str) -> str:
        return f"{results[key]:.3f} ± {results[key + '_se']:.3f}"

    alpha = results["alpha"]
    print(f"{results['plans']} simulated plans of {CANDIDATES} candidates, {PERSONAS} personas x {ROWS} selection "
          f"+ {ROWS} test rows; alpha {alpha:g}, {results['resamples']} resamples, seed {results['seed']}, "
          f"{results['seconds']:.0f} s ({results['cpu_seconds']:.0f} s of CPU)")
    print(f"{'measure':<44} {'rate ± se':>15}  {'old procedure':>15}")
    print(f"{'-' * 44} {'-' * 15}  {'-' * 15}")
    print(f"{'false acceptance (8 x no gain)':<44} {pm('false_acceptance'):>15}  {pm('false_acceptance_old'):>15}")
    print(f"{f'power (one +{POWER_GAIN * 100:g} pts among 8)':<44} {pm('power'):>15}  {pm('power_old'):>15}")
    print(f"{'harm check false alarm (+5 pts for all)':<44} {pm('harm_false_alarm'):>15}  {'-':>15}")
    for loss, h in results["harm_rejected_by_loss"].items():
        label = f"harm rejected (+2 pts, 30% lose {float(loss) * 100:g} pts)"
        print(f"{label:<44} {h['rate']:.3f} ± {h['se']:.3f}  {'-':>15}   mean test gain "
              f"{h['mean_test_gain'] * 100:+.2f} pts")
    print(f"false acceptance {pm('false_acceptance')} (old procedure {pm('false_acceptance_old')}); "
          f"power {pm('power')}; harm rejected (h = {results['harm_loss']:g}) {pm('harm_rejected')}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_PLANS} plans: a smoke test only")
    parser.add_argument("--out", type=Path, help="write the full results as JSON to this file")
    parser.add_argument("--plans", type=int, help=f"simulated plans per scenario (default {FULL_PLANS}; "
                        f"{QUICK_PLANS} with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--alpha", type=float, default=0.05, help="the acceptance rule's alpha (and harm_alpha)")
    parser.add_argument("--resamples", type=int, help="resamples of every permutation test and bootstrap "
                        f"(default {FULL_RESAMPLES}, {QUICK_RESAMPLES} with --quick; the plan's default is 9999: "
                        f"{FULL_RESAMPLES} resolves p to 0.001, ample at alpha 0.05)")
    parser.add_argument("--harm-loss", type=float, default=HARM_LOSS, help="h: what the harmed 30%% of "
                        "personas lose under the harmful candidate")
    parser.add_argument("--curve-plans", type=int, help="simulations for each other loss of harm_rejected_by_loss "
                        "(default: --plans; a quarter of them with --quick)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    env = environment()  # the load average before the work
    results = run(args)
    results["config"] = {"benchmark": "decision calibration (BENCHMARK.md section 9)", "quick": args.quick,
                         "personas": PERSONAS, "rows_per_persona": {"selection": ROWS, "test": ROWS},
                         "candidates": CANDIDATES, "stop": STOP, "min_gain": 0.0, "harm_alpha": args.alpha,
                         "baseline_accuracy": f"clip(Normal({BASE_MEAN}, {BASE_SD}), {BASE_CLIP[0]}, {BASE_CLIP[1]})",
                         "discordance": DISCORDANCE, "power_gain": POWER_GAIN, "harm_gain": HARM_GAIN,
                         "harm_share": HARM_SHARE, "harm_losses": list(HARM_LOSSES),
                         "bootstrap_seed": BOOTSTRAP_SEED}
    results["environment"] = env
    print_table(results)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"results: {args.out}")


if __name__ == "__main__":
    main()
