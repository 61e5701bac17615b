"""bench/decision_calibration.py (BENCHMARK.md section 9): the quick run with a fixed seed gives
rates within what its Monte-Carlo error allows, and the comparison dictionaries it builds are
the ones ``compare_runs`` builds from run folders, so what it calibrates is the plan's rule."""

from __future__ import annotations

import importlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from personalab.evaluate.compare import compare_runs
from personalab.plan.acceptance import confirm
from personalab.plan.spec import Acceptance

REPO = Path(__file__).resolve().parents[2]
KEYS = ("false_acceptance", "false_acceptance_se", "false_acceptance_old", "false_acceptance_old_se", "power",
        "power_se", "harm_rejected", "harm_rejected_se", "harm_rejected_by_loss", "harm_mean_test_gain",
        "harm_false_alarm", "harm_false_alarm_se", "alpha", "seed", "plans", "resamples", "seconds")


def bench_module():
    sys.path.insert(0, str(REPO / "bench"))
    try:
        return importlib.import_module("decision_calibration")
    finally:
        sys.path.remove(str(REPO / "bench"))


def upper_bound(rate: float, n: int, sigmas: float = 3.0) -> float:
    """``rate`` plus ``sigmas`` binomial standard errors at ``n`` simulations."""
    return rate + sigmas * math.sqrt(rate * (1 - rate) / n)


@pytest.mark.slow
def test_decision_calibration_quick(tmp_path):
    out = tmp_path / "calibration.json"
    result = subprocess.run([sys.executable, "bench/decision_calibration.py", "--quick", "--seed", "0", "--no-progress",
                             "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "false acceptance" in result.stdout  # the table
    results = json.loads(out.read_text(encoding="utf-8"))
    for key in KEYS:
        assert key in results, key
    assert set(results["harm_rejected_by_loss"]) == {"0.05", "0.1", "0.15", "0.2"}
    assert results["config"]["quick"] is True and results["environment"]["scipy"]
    n, alpha = results["plans"], results["alpha"]
    assert n >= 200 and alpha == 0.05 and results["seed"] == 0
    # Rates are Monte-Carlo estimates over n plans: the bounds allow 3 standard errors.
    assert results["false_acceptance"] <= upper_bound(alpha, n)  # 0.096 at n = 200
    # Trying 8 candidates on the test rows (the old procedure) accepts a null one far more often.
    margin = 3 * math.hypot(results["false_acceptance_se"], results["false_acceptance_old_se"])
    assert results["false_acceptance_old"] > results["false_acceptance"] + margin
    assert results["power"] >= 0.6
    assert results["harm_rejected"] >= 0.6
    assert results["harm_false_alarm"] <= 0.1
    # Clipping makes the harmful candidate's realized gain a bit below its nominal +2 points.
    assert 0 < results["harm_mean_test_gain"] <= 0.02


def write_run(folder: Path, ids: np.ndarray, correct: dict[str, np.ndarray]) -> Path:
    for split, values in correct.items():
        path = folder / "eval" / split / "predictions.jsonl"
        path.parent.mkdir(parents=True)
        rows = [{"persona_id": str(p), "example_id": f"{split}-{i}", "correct": bool(c)}
                for i, (p, c) in enumerate(zip(ids, values))]
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return folder


def test_comparison_dict_is_compare_runs(tmp_path):
    """The bench's comparison (with the harm check) equals compare_runs' on the same rows, and
    confirm gives the same verdict on both."""
    dc = bench_module()
    rng = np.random.default_rng(3)
    n_personas, rows = 40, 10
    ids = dc.persona_ids(n_personas, rows)
    p_a = dc.baseline_accuracy(rng, n_personas)
    deltas = dc.harm_deltas(rng, n_personas, 0.15)
    val, test = dc.simulate_split(rng, p_a, deltas, rows), dc.simulate_split(rng, p_a, deltas, rows)
    rule = Acceptance(n_resamples=199)
    base = write_run(tmp_path / "baseline", ids, {"val": val.base, "test": test.base})
    cand = write_run(tmp_path / "candidate", ids, {"val": val.cands[0], "test": test.cands[0]})
    expected = compare_runs(base, cand, "test", n_resamples=rule.n_resamples, seed=dc.BOOTSTRAP_SEED,
                            confidence=rule.confidence, flag_split="val", harm_alpha=rule.harm_alpha)
    built = dc.comparison_dict(ids, test.base, test.cands[0], "test", rule, flag=(val.base, val.cands[0]))
    assert built.keys() == expected.keys()
    for key in ("split", "overall", "per_persona", "harm"):
        assert built[key] == expected[key], key
    assert built["a"].keys() == expected["a"].keys() and built["b"].keys() == expected["b"].keys()
    assert built["harm"]["n_tested"] > 0
    assert confirm(built, rule).to_dict() == confirm(expected, rule).to_dict()
    # The selection comparisons leave out only the per-persona table.
    lean = dc.comparison_dict(ids, val.base, val.cands[0], "val", rule, per_persona=False)
    assert lean.keys() == expected.keys() - {"per_persona"}
