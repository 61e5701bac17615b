"""``personalab train --repeats N`` through the CLI on the tiny classifier: the repeat runs, resuming,
``evaluate`` with every seed, and ``compare`` seed by seed."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file

from personalab.run import rundir
from personalab.cli.main import main
from personalab.data import write_dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.evaluate.compare import compare_runs
from personalab.evaluate.repeats import compare_repeats

SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, *synthesize(SynthConfig(n_personas=8, examples_per_persona=30, seed=3)))
    return root


def train_args(data: Path, out: Path, *flags: str) -> list[str]:
    return ["train", "--data", str(data), "--out", str(out), "--model", "tiny-classifier", "--epochs", "1",
            "--quiet", "--repeats", "3", *flags]


def cli(*argv: str) -> str:
    """Run the CLI, expect success, return what it printed."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(argv)) == 0
    return out.getvalue()


@pytest.fixture(scope="module")
def runs(synth_dir, tmp_path_factory) -> dict[str, object]:
    """A (unified) and B (per_persona on top of A's unified), each under seeds 0, 1, 2 and
    evaluated; with what training A and evaluating it printed."""
    root = tmp_path_factory.mktemp("runs")
    a, b = root / "a", root / "b"
    trained = cli(*train_args(synth_dir, a))
    cli(*train_args(synth_dir, b, "--strategy", "per_persona", "--on-top-of", "unified", "--reuse", str(a)))
    evaluated = cli("evaluate", str(a), "--quiet")
    cli("evaluate", str(b), "--quiet")
    return {"a": a, "b": b, "trained": trained, "evaluated": evaluated}


def seed_dir(run: Path, seed: int) -> Path:
    return run if seed == SEEDS[0] else run / "repeats" / f"seed{seed}"


def test_repeats_are_the_run_under_the_next_seeds(runs):
    a = runs["a"]
    assert sorted(p.name for p in (a / "repeats").iterdir()) == ["seed1", "seed2"]
    configs = [rundir.read_config(seed_dir(a, seed)) for seed in SEEDS]
    assert [c.pop("seed") for c in configs] == list(SEEDS)
    for config in configs:
        config.pop("versions")
    assert configs[0] == configs[1] == configs[2]  # the same run but the seed
    # A seed that changed nothing would leave the adapters equal.
    weights = [load_file(seed_dir(a, seed) / "bank" / "unified" / "adapter_model.safetensors") for seed in SEEDS]
    for one, other in ((0, 1), (0, 2), (1, 2)):
        assert weights[one].keys() == weights[other].keys()
        assert any(not weights[one][k].equal(weights[other][k]) for k in weights[one])
    for number, seed in enumerate(SEEDS, 1):
        assert f"[{number}/3] seed {seed}: {seed_dir(a, seed)}: trained in" in runs["trained"]


def test_a_repeat_reuses_the_lenders_repeat_of_its_seed(runs):
    a, b = runs["a"], runs["b"]
    for seed in SEEDS:
        reused = rundir.training_records(seed_dir(b, seed))["reused"]
        assert reused == {"unified": str(seed_dir(a, seed))}


def test_the_same_command_again_trains_nothing(runs, synth_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("retrained a complete run")

    monkeypatch.setattr(rundir, "train_run", refuse)
    printed = cli(*train_args(synth_dir, runs["a"]))
    assert printed.count("already trained with these settings and data, kept") == 3


def test_an_unfinished_repeat_is_trained_again_alone(runs, synth_dir, tmp_path, monkeypatch):
    out = tmp_path / "a"
    shutil.copytree(runs["a"], out)
    (out / "repeats" / "seed2" / "personalizer.json").unlink()  # as if killed while training
    trained, train_run = [], rundir.train_run

    def record(config, target, **kwargs):
        trained.append((config.seed, Path(target)))
        return train_run(config, target, **kwargs)

    monkeypatch.setattr(rundir, "train_run", record)
    cli(*train_args(synth_dir, out))
    assert trained == [(2, out / "repeats" / "seed2")]
    assert (out / "repeats" / "seed2" / "personalizer.json").exists()


def test_evaluate_reports_every_seed(runs):
    a, printed = runs["a"], runs["evaluated"]
    metrics = json.loads((a / "eval" / "test" / "metrics.json").read_text())
    repeats = metrics["repeats"]
    assert [r["seed"] for r in repeats] == list(SEEDS)
    assert repeats[0]["accuracy"] == metrics["accuracy"] and repeats[0]["macro_f1"] == metrics["macro_f1"]
    for seed, repeat in zip(SEEDS[1:], repeats[1:]):
        own = json.loads((seed_dir(a, seed) / "eval" / "test" / "metrics.json").read_text())
        assert (repeat["accuracy"], repeat["macro_f1"]) == (own["accuracy"], own["macro_f1"])
        assert f"evaluating repeat {seed + 1} of 3 (seed {seed})" in printed
    assert "the same run trained under 3 seeds" in printed
    for repeat in repeats:
        assert f"{repeat['seed']:<12}{repeat['accuracy']:>10.2%}{repeat['macro_f1']:>12.4f}" in printed
    assert "mean" in printed and "std. dev." in printed


def test_compare_gives_the_gain_under_each_seed(runs, tmp_path):
    a, b = runs["a"], runs["b"]
    saved = tmp_path / "cmp.json"
    printed = cli("compare", str(a), str(b), "--resamples", "499", "--json", str(saved))
    assert "B - A under each of 3 training seeds" in printed and "standard deviation" in printed
    repeats = json.loads(saved.read_text())["repeats"]
    assert repeats["seeds"] == list(SEEDS)
    for seed, gain in zip(SEEDS, repeats["gains"]):
        overall = compare_runs(seed_dir(a, seed), seed_dir(b, seed), n_resamples=499)["overall"]
        assert (gain["seed"], gain["difference"], gain["p_value"]) == (seed, overall["difference"], overall["p_value"])
        assert (gain["ci_low"], gain["ci_high"]) == (overall["ci_low"], overall["ci_high"])
        assert f"{overall['difference'] * 100:>+8.2f} pts" in printed
    differences = [g["difference"] for g in repeats["gains"]]
    assert repeats["mean"] == pytest.approx(sum(differences) / 3)
    # A run without repeats has nothing to compare seed by seed.
    assert compare_repeats(a, seed_dir(b, 1)) is None


def test_repeats_must_be_at_least_one(synth_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--data", str(synth_dir), "--out", str(tmp_path / "x"), "--repeats", "0"])
    assert stop.value.code == 2
    assert "--repeats: must be at least 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
