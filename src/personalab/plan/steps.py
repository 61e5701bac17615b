"""The work behind each kind of plan step, behind one small interface (``Steps``) so that the
runner never special-cases a strategy and tests can script results without training.

- ``cluster(config, grouping, folder)``: embed and cluster the personas as a cluster strategy
  with these options would; returns the clustering (silhouette, k, sizes, ...).
- ``train(config, run_dir, reuse, progress)``: ``train_run`` into ``run_dir``, taking adapters
  the earlier runs in ``reuse`` trained from the same inputs; returns what training recorded.
- ``evaluate(run_dir, split, progress)``: ``evaluate_run``; returns n and the headline figures
  (accuracy, macro-F1; or ROUGE, BLEU, exact match, length and own-vs-other for generation).
- ``compare(baseline_dir, candidate_dir, split, acceptance, flag_split, metric)``:
  ``compare_runs``' dictionary by ``metric`` (with the harm check when ``flag_split`` is given).
- ``references(config, folder, splits)``: the reference baselines that need no adapter, fit on
  the train rows and written as evaluated runs ``folder/<name>/eval/<split>/``; returns their
  metrics (n, accuracy, macro-F1) by name and split.
- ``executor``: where the work runs (``personalab.run.executor``; None: this process). One
  that runs tasks elsewhere (Ray) lets the runner send whole candidate runs to its workers
  (``personalab.run.step_tasks``); the train step then reads its metrics with ``train_metrics``
  and an evaluation with ``evaluation_metrics``, as ``train_step`` and ``evaluate_step`` do.
- ``clock()``: seconds, what the steps' durations (and so the time budget) are measured with:
  ``time.perf_counter`` for real work, a scripted clock in tests.

Each must leave its artifact in place before returning (the runner checks that a done step's
artifact exists): ``RUN_DIR/personalizer.json`` for train, ``RUN_DIR/eval/<split>/metrics.json``
for evaluate; the runner writes the cluster and compare artifacts from the returned data.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

from personalab.evaluate.text_metrics import ROW_METRICS
from personalab.plan.spec import Acceptance

# BENCHMARK.md fixes the bootstrap's seed, so that every plan's intervals are comparable.
BOOTSTRAP_SEED = 0
EVALUATION_FIELDS = ("n", "accuracy", "macro_f1", "mae", *ROW_METRICS, "bleu", "length", "own_vs_other")


@dataclass
class Steps:
    cluster: Callable[[Any, dict, Path], dict]
    train: Callable[[Any, Path, Sequence[Path], bool], dict]
    evaluate: Callable[[Path, str, bool], dict]
    compare: Callable[[Path, Path, str, Acceptance, str | None, str], dict]
    references: Callable[[Any, Path, Sequence[str]], dict]
    clock: Callable[[], float] = time.perf_counter
    executor: Any = None

    @classmethod
    def real(cls, executor: Any = None) -> "Steps":
        """The real work; ``executor`` (``personalab.run.executor``) trains the fleet shards,
        and runs a plan's independent candidates side by side when it runs tasks elsewhere."""
        train = partial(train_step, executor=executor) if executor is not None else train_step
        return cls(cluster=cluster_step, train=train, evaluate=evaluate_step, compare=compare_step,
                   references=references_step, executor=executor)


def cluster_step(config, grouping: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Cluster the personas with train rows exactly as ``strategies.grouping`` does."""
    from personalab.cluster import cluster_personas, plot_clusters
    from personalab.data import load_dataset
    from personalab.data.splits import without_training_rows
    from personalab.embed import persona_embeddings

    dataset = load_dataset(config.data)
    dataset = without_training_rows(dataset, config.held_out(dataset))
    embeddings = persona_embeddings(dataset, source=grouping["source"])
    trained = {row.persona_id for row in dataset.split("train")}
    keep = [i for i, pid in enumerate(embeddings.ids) if pid in trained]
    subset = replace(embeddings, ids=[embeddings.ids[i] for i in keep], matrix=embeddings.matrix[keep])
    clustering = cluster_personas(subset, method=grouping["method"], k=grouping["k"],
                                  k_range=(grouping["k_min"], grouping["k_max"]), seed=config.seed)
    folder.mkdir(parents=True, exist_ok=True)
    plot_clusters(subset, clustering, folder / "clusters.png")
    return {"silhouette": clustering.silhouette, "quality": clustering.quality, "k": clustering.k,
            "sizes": clustering.sizes, "grouping": grouping, "clustering": json.loads(clustering.to_json())}


def train_step(config, run_dir: Path, reuse: Sequence[Path], progress: bool, executor: Any = None) -> dict[str, Any]:
    from personalab.run.rundir import train_run

    # Only runs that have a bank can lend adapters (a strategy that failed early has none).
    lenders = [Path(r) for r in reuse if (Path(r) / "bank" / "manifest.json").exists()]
    train_run(config, run_dir, progress=progress, reuse=lenders, executor=executor)
    return train_metrics(run_dir)


def train_metrics(run_dir: Path) -> dict[str, Any]:
    """What the ledger keeps of a trained run's records (training.json)."""
    from personalab.run.rundir import training_records

    records = training_records(run_dir)
    clustering = records.get("clustering") or {}
    metrics = {"train_seconds": records.get("seconds"), "reused": sorted(records.get("reused") or {}),
               "silhouette": clustering.get("silhouette"), "k": clustering.get("k")}
    if "executor" in records:  # the ledger shows where shards trained, and every retry
        metrics["executor"] = records["executor"]
    return metrics


def evaluate_step(run_dir: Path, split: str, progress: bool) -> dict[str, Any]:
    from personalab.run.evaluation import evaluate_run

    return evaluation_metrics(evaluate_run(run_dir, split, progress=progress))


def evaluation_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """What the ledger keeps of an evaluation's metrics.json."""
    return {name: metrics[name] for name in EVALUATION_FIELDS if name in metrics}


def compare_step(baseline_dir: Path, candidate_dir: Path, split: str, rule: Acceptance,
                 flag_split: str | None, metric: str = "accuracy") -> dict[str, Any]:
    from personalab.evaluate.compare import compare_runs

    return compare_runs(baseline_dir, candidate_dir, split, n_resamples=rule.n_resamples, seed=BOOTSTRAP_SEED,
                        confidence=rule.confidence, flag_split=flag_split, harm_alpha=rule.harm_alpha or 0.05,
                        metric=metric)


def references_step(config, folder: Path, splits: Sequence[str]) -> dict[str, Any]:
    from personalab.data import load_dataset
    from personalab.data.splits import without_training_rows
    from personalab.evaluate.references import write_references

    dataset = load_dataset(config.data)
    dataset = without_training_rows(dataset, config.held_out(dataset))  # the rows the strategies train on
    found = write_references(dataset, splits, folder)
    return {name: {split: {k: m[k] for k in EVALUATION_FIELDS if k in m} for split, m in by_split.items()}
            for name, by_split in found.items()}


def comparison_summary(comparison: dict[str, Any]) -> dict[str, Any]:
    """What the plan keeps of a comparison: the overall test, the persona counts and the harm
    check (the per-persona rows stay in ``compare/<split>/<name>.json``)."""
    personas = {k: v for k, v in comparison["per_persona"].items() if k != "personas"}
    return {"split": comparison.get("split"), "overall": comparison["overall"], "per_persona": personas,
            "harm": comparison.get("harm")}
