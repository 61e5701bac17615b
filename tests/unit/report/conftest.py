"""A fake plan folder for the report tests, written in milliseconds without training: plan.json
with one candidate of every status (rejected, skipped by a gate, accepted, not run, failed),
per-persona comparisons on the validation and test rows, the confirmation of the pick, a
reference baseline, learning curves (one run with a fleet of 12 adapters), a cluster
picture and a ledger. Verdicts and the decision come from the planner's own code, so their
words are the real ones. One candidate is named ``<script>alert(1)</script>``: names are text.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict
from pathlib import Path

import pytest

from personalab.plan.acceptance import confirm, judge
from personalab.plan.decision import describe_decision
from personalab.plan.ledger import Ledger
from personalab.plan.spec import Acceptance

# A valid 1x1 PNG: the report copies pictures, it does not read them.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg==")
SCRIPT = "<script>alert(1)</script>"
RULE = Acceptance()
SPLITS = ("val", "test")


def personas(differences: list[float]) -> list[dict]:
    return [{"persona_id": f"p{i:02d}", "n": 10, "score_a": 0.5, "score_b": 0.5 + d, "difference": d,
             "b_better": max(0, round(d * 10)), "a_better": max(0, round(-d * 10))}
            for i, d in enumerate(differences)]


def comparison(difference: float, p: float, rows: list[dict], split: str = "val") -> dict:
    better = [r for r in rows if r["difference"] > 0]
    worse = [r for r in rows if r["difference"] < 0]
    harm = None if split == "val" else {"flag_split": "val", "n_flagged": 2, "n_tested": 2,
                                        "flagged_difference": -0.05, "p_value": 0.4, "alpha": 0.05, "harmful": False}
    return {
        "split": split,
        "overall": {"n": 200, "n_personas": len(rows), "score_a": 0.6, "score_b": 0.6 + difference,
                    "difference": difference, "p_value": p, "ci_low": difference - 0.03, "ci_high": difference + 0.03,
                    "confidence": 0.95, "b_better": 30, "a_better": 20, "mcnemar_p": p / 10, "ci_method": "BCa",
                    "n_resamples": 999, "seed": 0, "table": [[100, 20], [30, 50]],
                    "test": "persona-level sign-flip permutation test"},
        "per_persona": {"n_personas": len(rows), "improved": len(better), "equal": len(rows) - len(better) - len(worse),
                        "worse": len(worse), "personas": rows},
        "harm": harm,
    }


def entry(name: str, strategy: str, status: str = "pending", reason: str | None = None, branch: str = "",
          gate: dict | None = None, metrics: dict | None = None, seconds: dict | None = None) -> dict:
    """A candidate's record as ``personalab.plan.record`` writes it."""
    return {"name": name, "strategy": strategy, "preset": None, "options": {}, "settings": {}, "branch": branch,
            "gate": gate, "run": f"runs/{name}", "status": status, "reason": reason, "training": None,
            "metrics": metrics or {}, "comparisons": {}, "verdict": None, "seconds": seconds or {}}


def summary(full: dict) -> dict:
    return {"split": full["split"], "overall": full["overall"], "harm": full["harm"],
            "per_persona": {k: v for k, v in full["per_persona"].items() if k != "personas"}}


def judged(record: dict, fulls: dict[str, dict]) -> dict:
    """Fill ``record`` from its comparisons as the runner does: summaries, verdict, status, reason."""
    verdict = judge(fulls["val"], RULE)
    record.update(comparisons={split: summary(full) for split, full in fulls.items()}, verdict=verdict.to_dict(),
                  reason=verdict.explain(), status="accepted" if verdict.accepted else "rejected",
                  metrics={split: {"accuracy": full["overall"]["score_b"], "macro_f1": 0.5, "n": 200}
                           for split, full in fulls.items()})
    return record


def curves(epochs: int, start: float = 0.9) -> dict:
    return {"val_loss": [start - 0.05 * e for e in range(epochs + 1)],
            "train_loss": [start - 0.08 * e for e in range(1, epochs + 1)], "best_epoch": epochs, "seconds": 1.0}


GATE_REASON = ("gate: silhouette 0.022 < 0.1 (poor clusters, k=3); a cluster strategy cannot help where personas "
               "form no clusters")


def build_plan() -> tuple[dict, dict[str, dict[str, dict]]]:
    """``plan.json`` and the full comparisons by candidate name and split."""
    fulls = {"per_cluster": {split: comparison(-0.02, 0.30, personas([0.1, -0.1, 0.0, -0.2, 0.1, 0.0, -0.1, 0.0]),
                                               split) for split in SPLITS},
             "fleet": {split: comparison(0.05, 0.001, personas([0.2, 0.1, 0.0, -0.1, 0.3, 0.1, 0.0, 0.2, 0.1, -0.2,
                                                                0.1, 0.1]), split) for split in SPLITS}}
    candidates = [
        judged(entry("per_cluster", "per_cluster", branch="one LoRA per cluster", gate={"min_silhouette": 0.01},
                     seconds={"train": 3.0, "evaluate": 0.5, "compare-val": 0.2}), fulls["per_cluster"]),
        entry(SCRIPT, "weighted_merge", "skipped", GATE_REASON, branch="(1) weighted <b>merge</b> & co",
              gate={"min_silhouette": 0.1}),
        judged(entry("fleet", "per_persona", branch="one LoRA per persona",
                     seconds={"train": 9.0, "evaluate": 0.7, "compare-val": 0.3}), fulls["fleet"]),
        entry("ensemble", "ensemble", "not run", "not needed: fleet was accepted first (stop: first_win)"),
        entry("broken", "moe", "failed", "too few personas to cluster"),
    ]
    baseline = entry("unified", "unified", branch="unified LoRA on all personas",
                     metrics={split: {"accuracy": 0.6, "macro_f1": 0.55, "n": 200} for split in SPLITS},
                     seconds={"train": 4.0, "evaluate": 0.6})
    reference = {"label": "logistic regression on text embeddings + persona id",
                 "metrics": {split: {"accuracy": 0.62, "macro_f1": 0.6, "n": 200} for split in SPLITS},
                 "comparisons": {split: summary(comparison(0.02, 0.2, personas([0.1, -0.1]), split)) for split in SPLITS}}
    plan = {"format": 2, "status": "done", "source": "configs/fake.yaml", "description": "A fake plan & its <tree>.",
            "started": "2026-01-02T03:04:05+00:00", "updated": "2026-01-02T03:14:05+00:00",
            "finished": "2026-01-02T03:14:05+00:00", "select_on": "val", "split_by": "row", "repeats": 1,
            "stop": "first_win", "acceptance": asdict(RULE),
            "spec": {"data": "data/fake", "model": {"name": "tiny-classifier"}},
            "versions": {"personalab": "0.1.0"}, "baseline": baseline, "candidates": candidates,
            "references": {"logreg_text_persona": reference},
            "clustering": {"inputs-kmeans-k2-8": {"silhouette": 0.022, "quality": "poor", "k": 3, "sizes": [4, 4, 4],
                                                  "folder": "cluster/inputs-kmeans-k2-8"}},
            "decision": None, "notes": ["Picked on `val`, confirmed on test."],
            "budget": {"minutes": 30.0, "spent_seconds": 20.0, "exhausted": False},
            "wall_seconds": 21.0, "compute_seconds": 20.0, "error": None}
    test = summary(fulls["fleet"]["test"])
    verdict = confirm(test, RULE)
    plan["confirmation"] = {"candidate": "fleet", "split": "test", "selected_on": "val", "comparison": test,
                            "repeats": [], "verdict": verdict.to_dict(), "confirmed": verdict.accepted}
    against = {"name": "logreg_text_persona", "label": reference["label"],
               "comparison": summary(comparison(0.05, 0.01, personas([0.1, 0.0]), "test"))}
    plan["decision"] = describe_decision(plan, against)
    return plan, fulls


def write_runs(root: Path) -> None:
    trainings = {
        "unified": {"training": {"unified": curves(4)}},
        "per_cluster": {"training": {"cluster/0": curves(3), "cluster/1": curves(4, 0.8)},
                        "reused": {"unified": "runs/unified"}, "clustering": {"silhouette": 0.3, "k": 2}},
        # A fleet: 12 adapters, some stopped early (ragged curves) -> median and IQR band.
        "fleet": {"training": {f"persona/p{i:02d}": curves(2 + i % 3, 0.7 + i / 50) for i in range(12)}},
    }
    for name, records in trainings.items():
        (root / "runs" / name).mkdir(parents=True)
        (root / "runs" / name / "training.json").write_text(json.dumps(records))
    (root / "runs" / "per_cluster" / "clusters.png").write_bytes(PNG)


def write_ledger(root: Path, plan: dict) -> None:
    ledger = Ledger(root / "ledger.sqlite")
    try:
        ledger.start("cluster:inputs-kmeans-k2-8", "cluster", "inputs-kmeans-k2-8", "k", {}, {})
        ledger.finish("cluster:inputs-kmeans-k2-8", 1.5, {}, "cluster/inputs-kmeans-k2-8/clustering.json", "h")
        for record in [plan["baseline"], *plan["candidates"]]:
            for kind, seconds in record["seconds"].items():
                step = f"{kind}:{record['name']}"
                ledger.start(step, kind, record["name"], "k", {}, {})
                ledger.finish(step, seconds, {}, "artifact", "h")
        ledger.start("train:broken", "train", "broken", "k", {}, {})
        ledger.fail("train:broken", 0.4, "PersonalabError: too few personas to cluster")
    finally:
        ledger.close()


def write_fake_plan(root: Path) -> Path:
    plan, fulls = build_plan()
    root.mkdir(parents=True, exist_ok=True)
    (root / "plan.json").write_text(json.dumps(plan, indent=2))
    for name, by_split in fulls.items():
        for split, full in by_split.items():
            (root / "compare" / split).mkdir(parents=True, exist_ok=True)
            (root / "compare" / split / f"{name}.json").write_text(json.dumps(full))
    (root / "cluster" / "inputs-kmeans-k2-8").mkdir(parents=True)
    (root / "cluster" / "inputs-kmeans-k2-8" / "clusters.png").write_bytes(PNG)
    write_runs(root)
    write_ledger(root, plan)
    return root


@pytest.fixture
def plan_dir(tmp_path) -> Path:
    """A fake plan folder (see the module docstring), for a test to change."""
    return write_fake_plan(tmp_path / "plan")


@pytest.fixture
def quick_plots(monkeypatch):
    """Pictures replaced by a 1x1 PNG, for tests about words (drawing takes most of a report's time)."""
    from personalab.report import plots

    for name in ("persona_gains", "training_curves", "step_times"):
        monkeypatch.setattr(plots, name, lambda *args, **kwargs: PNG)


@pytest.fixture(scope="session")
def rendered(tmp_path_factory) -> Path:
    """A fake plan folder with its report written, shared: tests must only read it."""
    from personalab.report import write_report

    root = write_fake_plan(tmp_path_factory.mktemp("rendered") / "plan")
    write_report(root)
    return root


@pytest.fixture
def edit_plan():
    """``edit_plan(root, change)``: apply ``change(plan)`` to ``root/plan.json`` in place."""

    def edit(root: Path, change) -> dict:
        plan = json.loads((root / "plan.json").read_text())
        change(plan)
        (root / "plan.json").write_text(json.dumps(plan))
        return plan

    return edit
