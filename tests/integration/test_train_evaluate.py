"""Training the unified strategy into a run and evaluating it, through the library and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from personalab.bank import AdapterBank
from personalab.cli.main import build_parser, main
from personalab.cli.train import config_from_args
from personalab.data import load_dataset, write_dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.models.base import ModelSpec
from personalab.run.rundir import RunConfig, _backend, open_run
from personalab.engine import Route
from personalab.evaluate.references import REFERENCES
from personalab.routing import RoutingTable, predict
from personalab.strategies import FitContext, get_strategy
from personalab.engine import MultiLoraModel
from personalab.train.fleet import ExtraParameters, Member, train_fleet
from personalab.train.head import head_parameters, save_head
from personalab.train.result import seed_everything
from personalab.train.presets import resolve_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, *synthesize(SynthConfig(n_personas=8, examples_per_persona=30, seed=3)))
    return root


def _fit(config: RunConfig, out: Path):
    """Train in-process and return the in-memory backend (whose model now holds the adapter)."""
    dataset = load_dataset(config.data)
    backend = _backend(config, dataset)
    context = FitContext(dataset, backend, AdapterBank(out / "bank"), config.settings, out, config.seed, False)
    personalizer = get_strategy(config.strategy).fit(context)
    (out / "personalizer.json").write_text(json.dumps(personalizer.to_json()))
    (out / "config.yaml").write_text(json.dumps(config.to_dict()))  # JSON is valid YAML
    return dataset, backend, context


@pytest.mark.parametrize("model", ["minilm", "tiny-causal-lm"])
def test_training_reduces_validation_loss(synth_dir, tmp_path, model):
    # The real embedded encoder for the classifier: a tiny random one learns too erratically
    # from a hundred rows for this to be a fair check.
    spec = ModelSpec(name=model, max_length=64)
    config = RunConfig(data=str(synth_dir), model=spec, settings=resolve_settings(epochs=2, lr=2e-3))
    _, _, context = _fit(config, tmp_path)
    curve = context.records["training"]["unified"]
    assert curve["best_epoch"] > 0
    assert curve["best_val_loss"] < curve["val_loss"][0]


@pytest.mark.parametrize("model", ["tiny-classifier", "tiny-causal-lm"])
def test_reloaded_run_gives_identical_scores(synth_dir, tmp_path, model):
    """What ``unified`` trains in memory scores exactly as the saved run reopened (a fresh
    base, the saved head, the saved adapter in a new multi-LoRA engine)."""
    config = RunConfig(data=str(synth_dir), model=ModelSpec(name=model),
                       settings=resolve_settings(epochs=2, lr=1e-2, patience=2))
    dataset = load_dataset(config.data)
    backend = _backend(config, dataset)
    rows = dataset.split("test")
    untrained = backend.scores(backend.model, rows)
    engine = MultiLoraModel(backend.model, backend.target_modules(config.settings.target_roles))
    head = head_parameters(backend)
    member = Member("unified", dataset.split("train"), dataset.split("val"),
                    extra=[ExtraParameters(head, config.settings.head_lr)] if head else [])
    seed_everything(0)  # dropout masks: an unlucky draw keeps epoch 0, the untrained weights
    assert train_fleet(backend, engine, [member], config.settings, progress=False)["unified"].best_epoch > 0
    trained = backend.scores(engine, rows, route_ids=[0] * len(rows))
    assert not torch.equal(trained, untrained)
    AdapterBank(tmp_path / "bank").save_weights("unified", engine.adapter_weights("unified"),
                                                str(backend.resolved.path))
    save_head(backend, tmp_path)
    (tmp_path / "personalizer.json").write_text(json.dumps(RoutingTable(Route.single("unified")).to_json()))
    (tmp_path / "config.yaml").write_text(json.dumps(config.to_dict()))  # JSON is valid YAML

    run = open_run(tmp_path)
    reloaded = predict(run.backend, run.model, run.personalizer, rows, progress=False).scores
    torch.testing.assert_close(torch.from_numpy(reloaded).float(), trained, rtol=1.3e-6, atol=1e-5)


def test_cli_train_then_evaluate_writes_predictions_and_metrics(synth_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(synth_dir), "--out", str(out), "--model", "tiny-classifier",
                 "--epochs", "1", "--quiet"]) == 0
    assert main(["evaluate", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and all(label in printed for label in REFERENCES.values())

    metrics = json.loads((out / "eval" / "test" / "metrics.json").read_text())
    predictions = [json.loads(line) for line in (out / "eval" / "test" / "predictions.jsonl").read_text().splitlines()]
    test_rows = load_dataset(synth_dir).split("test")
    assert metrics["n"] == len(predictions) == len(test_rows)
    assert list(metrics["references"]) == list(REFERENCES)
    assert metrics["accuracy"] == pytest.approx(sum(p["correct"] for p in predictions) / len(predictions))
    assert {p["persona_id"] for p in predictions} == set(metrics["per_persona"])
    assert all(p["route"] == {"unified": 1.0} for p in predictions)
    adapter = out / "bank" / "unified"
    assert (adapter / "adapter_model.safetensors").exists() and not list(adapter.glob("*.bin"))


def test_constrained_preset_trains_a_query_only_rank_4_adapter(synth_dir, tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--data", str(synth_dir), "--out", str(out), "--model", "tiny-classifier",
                 "--preset", "constrained", "--epochs", "1", "--quiet"]) == 0
    adapter_config = json.loads((out / "bank" / "unified" / "adapter_config.json").read_text())
    assert adapter_config["r"] == 4 and adapter_config["lora_alpha"] == 8
    assert adapter_config["target_modules"] in (["query"], "query")
    assert not adapter_config.get("modules_to_save")


def test_cli_keeps_or_refuses_a_trained_run_and_unknown_strategy(synth_dir, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--data", str(synth_dir), "--out", str(out), "--model", "tiny-classifier", "--epochs", "1", "--quiet"]
    assert main(args) == 0
    assert main(args) == 0  # the same command again: nothing to train
    assert "already trained with these settings and data, kept" in capsys.readouterr().out
    assert main([*args, "--epochs", "2"]) == 2  # other settings: refused, never mixed
    assert "already holds a trained run" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    assert main(["train", "--data", str(synth_dir), "--out", str(tmp_path / "x"), "--strategy", "unifed"]) == 2
    assert "did you mean unified" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "nothing-here")]) == 2
    assert "not a trained run" in capsys.readouterr().err


# Run configs live in configs/runs/; configs/*.yaml are plans (tests/unit/plan/test_spec.py).
@pytest.mark.parametrize("path", sorted((REPO / "configs" / "runs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path, tmp_path):
    args = build_parser().parse_args(["train", "--config", str(path), "--out", str(tmp_path), "--data", "somewhere"])
    config = config_from_args(args)
    assert config.strategy == "unified"
    assert RunConfig.from_dict(config.to_dict()) == config


def test_cli_strategy_options_presets_and_holdout(tmp_path, capsys):
    def parsed(*flags):
        return config_from_args(build_parser().parse_args(["train", "--out", str(tmp_path), "--data", "x", *flags]))

    config = parsed("--strategy", "per_cluster:constrained", "--set", "k=4", "--set", "source=profile", "--holdout", "0.1")
    assert (config.strategy, config.preset, config.holdout) == ("per_cluster", "constrained", 0.1)
    assert config.strategy_options == {"k": 4, "source": "profile"}
    assert config.settings.r == 4  # the constrained preset
    assert RunConfig.from_dict(config.to_dict()) == config
    assert main(["train", "--data", "x", "--out", str(tmp_path), "--set", "k"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert main(["train", "--data", "x", "--out", str(tmp_path), "--strategy", "per_cluster", "--set", "kk=3"]) == 2
    assert "has no option kk" in capsys.readouterr().err
