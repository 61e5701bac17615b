"""Runs trained again under other seeds (``personalab train --repeats N``): evaluating them with
their run, the spread of accuracy across seeds, and the gain of one run over another seed by
seed.

A p-value describes one trained instance; with ~30 rows per persona the spread from one
training seed to the next can be as large as the gain, so a gain is believable only when it
holds under every seed. The runs themselves live in ``RUN_DIR/repeats/seed<S>/``
(``personalab.run.rundir.repeat_runs``); ``personalab.run.evaluation.evaluate_repeats`` puts
the seed-by-seed results into the run's ``eval/<split>/metrics.json`` as ``"repeats"``, its own
seed first.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from personalab.evaluate.compare import METRICS, compare_runs, metric_label
from personalab.evaluate.figures import companion, label, shown


def spread(values) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1) of one figure across seeds."""
    values = np.asarray(values, dtype=float)
    sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return float(values.mean()), sd


def format_repeats(repeats: list[dict[str, Any]]) -> str:
    """The two figures under each seed, then their mean and standard deviation."""
    first = repeats[0].get("headline", "accuracy")
    second = companion(first)
    lines = [f"  repeats: the same run trained under {len(repeats)} seeds", "",
             f"    {'seed':<12}{label(first):>10}{label(second):>12}"]
    lines += [f"    {r['seed']:<12}{shown(first, r[first]):>10}{shown(second, r[second]):>12}" for r in repeats]
    one, two = spread([r[first] for r in repeats]), spread([r[second] for r in repeats])
    lines += [f"    {'mean':<12}{shown(first, one[0]):>10}{shown(second, two[0]):>12}",
              f"    {'std. dev.':<12}{one[1] * 100:>6.2f} pts{shown(second, two[1]):>12}"]
    return "\n".join(lines)


def compare_repeats(run_a: Path, run_b: Path, split: str = "test", **statistics: Any) -> dict[str, Any] | None:
    """B - A under each seed both runs were evaluated under (``compare_runs`` on each pair of
    runs of one seed, with ``statistics`` such as ``n_resamples``), with the gains' mean and
    spread; None unless they share at least two seeds."""
    runs_a, runs_b = evaluated_seeds(run_a, split), evaluated_seeds(run_b, split)
    seeds = [seed for seed in runs_a if seed in runs_b]
    if len(seeds) < 2:
        return None
    gains = [_gain(seed, compare_runs(runs_a[seed], runs_b[seed], split, **statistics)) for seed in seeds]
    differences = [g["difference"] for g in gains]
    mean, sd = spread(differences)
    return {"seeds": seeds, "gains": gains, "mean": mean, "sd": sd, "min": min(differences),
            "max": max(differences), "b_ahead": sum(d > 0 for d in differences),
            "only_a": [s for s in runs_a if s not in seeds], "only_b": [s for s in runs_b if s not in seeds]}


def evaluated_seeds(run: Path, split: str) -> dict[int, Path]:
    """Seed -> run directory of the run's repeats evaluated on ``split`` (its own seed first),
    as its metrics.json records them; empty if it has none."""
    path = Path(run) / "eval" / split / METRICS
    metrics = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    return {r["seed"]: Path(run) / r.get("run", ".") for r in metrics.get("repeats") or ()}


def _gain(seed: int, comparison: dict[str, Any]) -> dict[str, Any]:
    overall = comparison["overall"]
    return {"seed": seed, "metric": overall.get("metric", "accuracy"), "score_a": overall["score_a"], "score_b": overall["score_b"],
            "difference": overall["difference"], "ci_low": overall["ci_low"], "ci_high": overall["ci_high"],
            "confidence": overall["confidence"], "p_value": overall["p_value"]}


def format_repeat_gains(result: dict[str, Any]) -> str:
    """B - A under each seed with its CI and p, then the mean and spread of the gains."""
    name = metric_label(result["gains"][0])
    lines = [f"repeats: B - A under each of {len(result['seeds'])} training seeds (persona-level CI and p, as above)",
             "", f"  {'seed':<8}{name + ' A':>12}{name + ' B':>12}{'B - A':>12}{'CI of B - A':>26}{'p':>9}"]
    for g in result["gains"]:
        ci = f"{g['ci_low'] * 100:+.2f} to {g['ci_high'] * 100:+.2f} pts"
        lines.append(f"  {g['seed']:<8}{g['score_a']:>12.2%}{g['score_b']:>12.2%}"
                     f"{g['difference'] * 100:>+8.2f} pts{ci:>26}{_p(g['p_value']):>9}")
    n = len(result["seeds"])
    lines += ["", f"  mean B - A {result['mean'] * 100:+.2f} pts, standard deviation {result['sd'] * 100:.2f} pts "
                  f"(from {result['min'] * 100:+.2f} to {result['max'] * 100:+.2f}); B ahead under {result['b_ahead']} "
                  f"of {n} seeds"]
    for side in ("a", "b"):
        if result[f"only_{side}"]:
            lines.append(f"  seeds only {side.upper()} was evaluated under (not compared): "
                         f"{', '.join(map(str, result[f'only_{side}']))}")
    return "\n".join(lines)


def _p(value: float) -> str:
    return f"{value:.4f}" if value >= 1e-4 else f"{value:.1e}"
