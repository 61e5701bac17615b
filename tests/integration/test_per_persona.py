"""The per_persona strategy end to end: fleet-trained persona adapters in the bank, routes,
fallback to unified for personas with too few rows, and training on top of unified."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from personalab.bank import AdapterBank
from personalab.cli.main import main
from personalab.data import load_dataset, write_dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.evaluate.evaluation import evaluate_run
from personalab.models.base import ModelSpec
from personalab.rundir import RunConfig, train_run
from personalab.train.presets import resolve_settings


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, *synthesize(SynthConfig(n_personas=6, examples_per_persona=30, seed=4)))
    return root


def test_personas_get_their_own_adapters_and_few_row_personas_fall_back(synth_dir, tmp_path):
    train_counts = Counter(e.persona_id for e in load_dataset(synth_dir).split("train"))
    threshold = sorted(train_counts.values())[len(train_counts) // 2]  # about half fall back
    config = RunConfig(data=str(synth_dir), strategy="per_persona", strategy_options={"min_train_rows": threshold},
                       model=ModelSpec(name="tiny-classifier"), settings=resolve_settings(epochs=1))
    train_run(config, tmp_path, progress=False)

    own = {pid for pid, n in train_counts.items() if n >= threshold}
    assert 0 < len(own) < len(train_counts)
    assert set(AdapterBank(tmp_path / "bank").names()) == {"unified"} | {f"persona/{pid}" for pid in own}
    metrics = evaluate_run(tmp_path, progress=False)
    assert set(metrics["default_route_personas"]) == set(train_counts) - own
    routes = {json.loads(line)["persona_id"]: json.loads(line)["route"]
              for line in (tmp_path / "eval" / "test" / "predictions.jsonl").read_text().splitlines()}
    for pid, route in routes.items():
        assert route == ({f"persona/{pid}": 1.0} if pid in own else {"unified": 1.0})


def test_on_top_of_unified_stacks_each_persona_on_the_frozen_unified(synth_dir, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--data", str(synth_dir), "--out", str(out), "--model", "tiny-causal-lm",
                 "--strategy", "per_persona", "--on-top-of", "unified", "--epochs", "1", "--quiet"]) == 0
    table = json.loads((out / "personalizer.json").read_text())["table"]
    assert table and all(set(route) == {"unified", f"persona/{pid}"} for pid, route in table.items())
    assert main(["evaluate", str(out), "--quiet"]) == 0
    manifest = AdapterBank(out / "bank").manifest()
    assert all(manifest[f"persona/{pid}"]["on_top_of"] == "unified" for pid in table)
