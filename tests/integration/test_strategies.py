"""Every registered strategy against one contract (train into a run, route every persona
through the engine, evaluate), and the behaviour each one promises, on synthetic data with a
tiny classifier. Adapters are reused across runs by fingerprint, which these tests also check."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from personalab.bank import AdapterBank
from personalab.data import write_dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.run.evaluation import evaluate_run
from personalab.models.base import ModelSpec
from personalab.routing import Ensemble
from personalab.run.rundir import RunConfig, open_run, train_run, training_records
from personalab.strategies import list_strategies

PLAYBOOK = ("unified", "per_persona", "per_cluster", "weighted_merge", "from_unified", "ensemble", "moe", "lorahub")
FAST = {"k": 2}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, *synthesize(SynthConfig(n_personas=8, n_groups=2, examples_per_persona=24, seed=7)))
    return root


def config(data, strategy, **options) -> RunConfig:
    from personalab.train.presets import resolve_settings

    return RunConfig(data=str(data), strategy=strategy, strategy_options=options,
                     model=ModelSpec(name="tiny-classifier"), settings=resolve_settings(epochs=1))


@pytest.fixture(scope="module")
def personas_run(synth_dir, tmp_path_factory):
    """A per_persona run whose unified and persona adapters the other runs reuse."""
    out = tmp_path_factory.mktemp("personas")
    train_run(config(synth_dir, "per_persona"), out, progress=False)
    return out


def test_all_playbook_strategies_are_registered():
    assert set(PLAYBOOK) <= {name for name, _ in list_strategies()}


@pytest.mark.parametrize("strategy", [s for s in PLAYBOOK if s not in ("unified", "per_persona")])
def test_strategy_contract(strategy, synth_dir, personas_run, tmp_path):
    options = {} if strategy == "per_persona" else FAST
    train_run(config(synth_dir, strategy, **options), tmp_path, progress=False, reuse=[personas_run])
    records = training_records(tmp_path)
    assert records["reused"]["unified"] == str(personas_run)  # never trained twice
    metrics = evaluate_run(tmp_path, progress=False)
    predictions = [json.loads(line) for line in (tmp_path / "eval" / "test" / "predictions.jsonl").read_text().splitlines()]
    run = open_run(tmp_path)
    assert metrics["n"] == len(predictions) == len(run.dataset.split("test"))
    assert metrics["accuracy"] == pytest.approx(np.mean([p["predicted"] == p["output"] for p in predictions]))
    assert all(p["route"] == run.personalizer.describe(p["persona_id"]) for p in predictions)
    assert set(run.personalizer.adapters()) <= set(AdapterBank(tmp_path / "bank").names())
    assert_routes_every_persona(run.personalizer, run.dataset.personas, records)
    for name in run.personalizer.adapters():
        for trained, val_loss in _validation_curves(tmp_path, name):
            assert len(val_loss) == 2 and val_loss[1] != val_loss[0], f"{trained}: training left the validation loss at {val_loss}"


def assert_routes_every_persona(personalizer, personas, records) -> None:
    """Each routing table of ``personalizer`` that routes by persona has a route of its own for
    every persona, but those the strategy records as falling back to the default; a table
    without personas (``unified``'s, an ensemble member) routes everyone to its default."""
    tables = [t for t, _ in personalizer.members] if isinstance(personalizer, Ensemble) else [personalizer]
    falling_back = set(records.get("default_route_personas", []))
    assert any(table.table for table in tables), "no table routes by persona"
    for table in tables:
        assert table.default.adapters, "the default route names no adapter"
        if table.table:
            assert {pid for pid in personas if table.uses_default(pid)} == falling_back


def _validation_curves(run_dir, name: str) -> list[tuple[str, list[float]]]:
    """The validation-loss curves of the adapters that trained ``name`` of a run: its own, that
    of the run it was reused from, or for a merged adapter those of the adapters it merges."""
    records = training_records(run_dir)
    if name in records.get("training", {}):
        return [(name, records["training"][name]["val_loss"])]
    if name in records.get("reused", {}):
        return _validation_curves(Path(records["reused"][name]), name)
    mixture = records["merge"]["materialized"][name]["mixture"]
    return [curve for source in mixture for curve in _validation_curves(run_dir, source)]


def test_reused_persona_adapters_are_the_ones_trained_before(synth_dir, personas_run, tmp_path):
    train_run(config(synth_dir, "weighted_merge", **FAST), tmp_path, progress=False, reuse=[personas_run])
    before, after = AdapterBank(personas_run / "bank"), AdapterBank(tmp_path / "bank")
    persona_names = [n for n in before.names() if n.startswith("persona/")]
    assert persona_names and set(training_records(tmp_path)["reused"]) >= set(persona_names)
    assert all(before.entry(n)["files"] == after.entry(n)["files"] for n in persona_names)


def test_changed_settings_are_not_reused(synth_dir, personas_run, tmp_path):
    changed = config(synth_dir, "unified")
    changed.settings = replace(changed.settings, lr=changed.settings.lr * 2)
    train_run(changed, tmp_path, progress=False, reuse=[personas_run])
    assert "reused" not in training_records(tmp_path)


def test_from_unified_leaves_the_unified_adapter_unchanged(synth_dir, personas_run, tmp_path):
    train_run(config(synth_dir, "from_unified", **FAST), tmp_path, progress=False)  # trains its own unified
    ours, reference = AdapterBank(tmp_path / "bank"), AdapterBank(personas_run / "bank")
    assert ours.entry("unified")["files"] == reference.entry("unified")["files"]
    table = json.loads((tmp_path / "personalizer.json").read_text())["table"]
    assert all(set(route) == {"unified", next(n for n in route if n.startswith("stacked_cluster/"))}
               for route in table.values())


def test_ensemble_weight_one_reproduces_the_first_route(synth_dir, personas_run, tmp_path):
    train_run(config(synth_dir, "ensemble", weight=1.0, second="per_persona"), tmp_path / "e", progress=False,
              reuse=[personas_run])
    train_run(config(synth_dir, "unified"), tmp_path / "u", progress=False, reuse=[personas_run])
    for run in ("e", "u"):
        evaluate_run(tmp_path / run, progress=False)
    # the same numbers up to batch composition (rows are padded with different neighbours)
    assert np.allclose(_scores(tmp_path / "e"), _scores(tmp_path / "u"), atol=1e-5)
    records = training_records(tmp_path / "e")["ensemble"]
    assert records["weight"] == 1.0 and "val_accuracy_playbook_0.6" in records


def test_moe_at_temperature_zero_routes_each_persona_to_its_nearest_cluster(synth_dir, personas_run, tmp_path):
    train_run(config(synth_dir, "moe", temperature=0.0, top_k=2, **FAST), tmp_path, progress=False,
              reuse=[personas_run])
    router = json.loads((tmp_path / "router" / "router.json").read_text())
    from safetensors.numpy import load_file

    keys = load_file(str(tmp_path / "router" / "router.safetensors"))["keys"]
    from personalab.embed import persona_embeddings
    from personalab.data import load_dataset

    embeddings = persona_embeddings(load_dataset(synth_dir), source="inputs")
    table = json.loads((tmp_path / "personalizer.json").read_text())["table"]
    for pid, vector in zip(embeddings.ids, embeddings.matrix):
        nearest = router["experts"][int(np.argmax(keys @ vector))]
        assert table[pid] == {nearest: 1.0}


def test_moe_routes_held_out_personas_without_adapters(synth_dir, personas_run, tmp_path):
    cfg = config(synth_dir, "moe", **FAST)
    cfg.holdout = 0.3
    train_run(cfg, tmp_path, progress=False)
    held = training_records(tmp_path)["held_out_personas"]
    assert held
    table = json.loads((tmp_path / "personalizer.json").read_text())["table"]
    assert all(pid in table and all(n.startswith("cluster/") for n in table[pid]) for pid in held)
    assert set(training_records(tmp_path)["moe"]["routed_by_profile"]) == set(held)
    metrics = evaluate_run(tmp_path, progress=False)
    assert metrics["cold_start"]["personas"] == len(held) and metrics["cold_start"]["rows"] > 0


def _scores(run_dir) -> np.ndarray:
    lines = (run_dir / "eval" / "test" / "predictions.jsonl").read_text().splitlines()
    return np.array([[v for v in json.loads(line)["scores"].values()] for line in lines])


def test_weighted_merge_materialized_equals_the_mixture_it_merges(synth_dir, personas_run, tmp_path):
    for name, materialize in (("mixture", False), ("merged", True)):
        train_run(config(synth_dir, "weighted_merge", materialize=materialize, temperature=1.0, **FAST),
                  tmp_path / name, progress=False, reuse=[personas_run])
        evaluate_run(tmp_path / name, progress=False)
    mixture = json.loads((tmp_path / "mixture" / "personalizer.json").read_text())["table"]
    assert max(len(route) for route in mixture.values()) > 1  # a real mixture, several adapters
    merged = json.loads((tmp_path / "merged" / "personalizer.json").read_text())["table"]
    assert all(len(route) == 1 and next(iter(route)).startswith("merged/") for route in merged.values())
    assert np.allclose(_scores(tmp_path / "mixture"), _scores(tmp_path / "merged"), atol=1e-4)
    records = training_records(tmp_path / "merged")["merge"]["materialized"]
    assert records and all(r["max_relative_error"] < 1e-5 for r in records.values())


def test_merges_on_top_of_unified_mix_the_stacked_persona_adapters_over_unified(synth_dir, personas_run, tmp_path):
    stacked = tmp_path / "stacked"
    train_run(config(synth_dir, "per_persona", on_top_of="unified"), stacked, progress=False, reuse=[personas_run])
    stacked_personas = {n for n in AdapterBank(stacked / "bank").names() if n.startswith("persona/")}
    for name, materialize in (("mixture", False), ("merged", True)):
        train_run(config(synth_dir, "weighted_merge", on_top_of="unified", materialize=materialize, temperature=1.0,
                         **FAST), tmp_path / name, progress=False, reuse=[personas_run, stacked])
        reused = training_records(tmp_path / name)["reused"]
        assert {n: reused[n] for n in stacked_personas} == {n: str(stacked) for n in stacked_personas}
        evaluate_run(tmp_path / name, progress=False)
    mixture = json.loads((tmp_path / "mixture" / "personalizer.json").read_text())["table"]
    assert all(route["unified"] == 1.0 and len(route) > 2 for route in mixture.values())
    assert np.allclose(_scores(tmp_path / "mixture"), _scores(tmp_path / "merged"), atol=1e-4)

    train_run(config(synth_dir, "lorahub", on_top_of="unified", budget=6, materialize=False, **FAST),
              tmp_path / "hub", progress=False, reuse=[stacked])
    searched = json.loads((tmp_path / "hub" / "personalizer.json").read_text())["table"]
    assert all(route["unified"] == 1.0 for route in searched.values())
    assert all(r["on_top_of"] == "unified" for r in training_records(tmp_path / "hub")["lorahub"].values())


def test_augment_modifies_only_the_train_rows_a_strategy_trains_on(synth_dir, tmp_path):
    from personalab.data import load_dataset

    cfg = config(synth_dir, "unified")
    cfg.augment, cfg.augment_copies = ["swap", "context_noise"], 2
    train_run(cfg, tmp_path, progress=False)
    report = training_records(tmp_path)["augment"]
    dataset = load_dataset(synth_dir)
    n_train = len(dataset.split("train"))
    trained_rows = AdapterBank(tmp_path / "bank").entry("unified")["data"]["rows"]
    assert trained_rows == n_train + report["added"] and n_train < trained_rows <= 3 * n_train
    assert set(report["augmenters"]) == {"swap", "context_noise"}
    assert evaluate_run(tmp_path, progress=False)["n"] == len(dataset.split("test"))


def test_lorahub_records_its_search_and_budget_zero_keeps_the_playbook_weights(synth_dir, personas_run, tmp_path):
    train_run(config(synth_dir, "lorahub", budget=0, **FAST), tmp_path / "zero", progress=False, reuse=[personas_run])
    for record in training_records(tmp_path / "zero")["lorahub"].values():
        assert record["weights"] == record["start_weights"] and record["evaluations"] == 0
    train_run(config(synth_dir, "lorahub", budget=12, **FAST), tmp_path / "some", progress=False, reuse=[personas_run])
    for record in training_records(tmp_path / "some")["lorahub"].values():
        assert 1 <= record["evaluations"] <= 12 and record["objective"] <= record["start_objective"]
