"""The per_persona strategy end to end: fleet-trained persona adapters in the bank, routes,
fallback to unified for personas with too few rows, and training on top of unified."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

from personalab.bank import AdapterBank
from personalab.cli.main import main
from personalab.data import load_dataset, write_dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.run.evaluation import evaluate_run
from personalab.models.base import ModelSpec
from personalab.run.rundir import RunConfig, train_run, training_records
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


GRID = {"lr": [1e-3, 1e-2], "epochs": [1, 2]}


def test_a_recipe_grid_keeps_the_recipe_with_the_lowest_pooled_val_loss_for_every_persona(synth_dir, tmp_path):
    def run(out, settings, options, fleet_shard=64):
        config = RunConfig(data=str(synth_dir), strategy="per_persona", model=ModelSpec(name="tiny-classifier"),
                           strategy_options={"on_top_of": "unified", **options}, settings=settings,
                           fleet_shard=fleet_shard)
        train_run(config, out, progress=False, reuse=[tmp_path / "grid"] if out.name != "grid" else [])
        return AdapterBank(out / "bank")

    # Six personas x four recipes in shards of five: the grid's adapters pass through the bank.
    grid_bank = run(tmp_path / "grid", resolve_settings(epochs=1), {"grid": GRID}, fleet_shard=5)
    recipes = training_records(tmp_path / "grid")["recipes"]
    assert len(recipes["val_loss"]) == 4
    assert recipes["chosen"] == min(recipes["val_loss"], key=recipes["val_loss"].get)
    kept_names = [n for n in grid_bank.names() if n.startswith("persona/")]
    assert set(grid_bank.names()) == {"unified", *kept_names}  # the other recipes left the bank
    assert set(training_records(tmp_path / "grid")["training"]) == {"unified", *kept_names}
    kept = {json.dumps(grid_bank.entry(n)["data"]["recipe"]) for n in grid_bank.names() if n.startswith("persona/")}
    assert len(kept) == 1  # one recipe for every persona
    chosen = json.loads(kept.pop())
    assert recipes["chosen"] == f"lr {chosen['lr']:g}, {chosen['epochs']} epochs"

    # A grid of the run's own recipe alone keeps exactly what per_persona trains without a grid
    # (with test_fleet's recipe member == alone, the kept adapters are the kept recipe's own).
    settings = resolve_settings(epochs=1)
    single_bank = run(tmp_path / "single", settings, {"grid": {"lr": [settings.lr]}})
    plain_bank = run(tmp_path / "plain", settings, {})
    personas = [n for n in plain_bank.names() if n.startswith("persona/")]
    assert personas and sorted(personas) == sorted(n for n in single_bank.names() if n.startswith("persona/"))
    for name in personas:
        ours, theirs = single_bank.read_weights(name), plain_bank.read_weights(name)
        for path in ours:
            torch.testing.assert_close(ours[path].B, theirs[path].B, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("grid, message", [
    ({"lr": [1e-3], "batch_size": [4]}, "must map 'lr' and/or 'epochs'"),
    ({"lr": []}, "non-empty list of positive numbers"),
    ({"lr": [-1e-3]}, "non-empty list of positive numbers"),
    ({"epochs": [0, 2]}, "whole numbers of at least 1"),
    ({"epochs": [1.5]}, "whole numbers of at least 1"),
    ({"lr": [1e-4, 2e-4, 5e-4, 1e-3, 2e-3], "epochs": [1, 2, 3, 4]}, "at most 16"),
    ("fast", "must map 'lr' and/or 'epochs'"),
])
def test_a_bad_recipe_grid_is_a_clear_error(synth_dir, tmp_path, capsys, grid, message):
    assert main(["train", "--data", str(synth_dir), "--out", str(tmp_path / "run"), "--model", "tiny-classifier",
                 "--strategy", "per_persona", "--set", f"grid={json.dumps(grid)}", "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "personalizer.json").exists()
