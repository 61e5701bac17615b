"""Sharded fleets: a fleet trains at most ``fleet_shard`` adapters at once, each adapter ends
the same whatever shard it landed in, and a killed run resumes at the first shard that is not
in the bank (killed between shards or in the middle of one)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from personalab.bank import AdapterBank
from personalab.data import write_dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.models.base import ModelSpec
from personalab.run.rundir import RunConfig, train_run, training_records
from personalab.strategies import steps
from personalab.train.presets import resolve_settings

PERSONAS = 6

CHILD = """
import json, signal, sys
from pathlib import Path
from personalab.data.faults import set_fault_hook
from personalab.run.rundir import RunConfig, train_run

config, out, stop_at = RunConfig.from_dict(json.loads(Path(sys.argv[1]).read_text())), Path(sys.argv[2]), sys.argv[3]
shards_saved = 0


def stop(name, **details):
    global shards_saved
    if name == "fleet.shard_saved":
        shards_saved = details["shard"]
        if stop_at == "between_shards" and shards_saved == 1:
            pause()
    if name == "fleet.step_done" and stop_at == "mid_shard" and shards_saved == 1:
        pause()  # the second shard has taken a training step, and is not saved


def pause():
    (out / ".paused").write_text(stop_at)
    while True:
        signal.pause()


set_fault_hook(stop)
train_run(config, out, progress=False)
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> RunConfig:
    data = tmp_path_factory.mktemp("data")
    write_dataset(data, *synthesize(SynthConfig(n_personas=PERSONAS, examples_per_persona=16, seed=5)))
    # The tiny causal LM has no dropout of its own; LoRA dropout stays on (default), so the
    # resumed runs below must reproduce the shards' dropout draws too.
    return RunConfig(data=str(data), strategy="per_persona", strategy_options={"min_train_rows": 1},
                     model=ModelSpec(name="tiny-causal-lm"), settings=resolve_settings(epochs=2, lr=5e-3),
                     fleet_shard=2)


@pytest.fixture(scope="module")
def uninterrupted(config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    train_run(config, out, progress=False)
    return out


def persona_weights(run: Path) -> dict[str, dict]:
    bank = AdapterBank(run / "bank")
    return {name: bank.read_weights(name) for name in bank.names() if name.startswith("persona/")}


def assert_same_adapters(a: dict, b: dict, **tolerance) -> None:
    assert a.keys() == b.keys() and len(a) == PERSONAS
    for name in a:
        for path in a[name]:
            torch.testing.assert_close(a[name][path].A, b[name][path].A, **tolerance)
            torch.testing.assert_close(a[name][path].B, b[name][path].B, **tolerance)


def test_a_fleet_trains_at_most_a_shard_of_adapters_at_once(config, uninterrupted, monkeypatch, tmp_path):
    sizes = []
    train_members = steps.train_members

    def recording(context, members, *args):
        sizes.append(len(members))
        return train_members(context, members, *args)

    monkeypatch.setattr(steps, "train_members", recording)
    train_run(replace(config, fleet_shard=4), tmp_path, progress=False)
    assert sizes == [4, 2]
    assert len(AdapterBank(tmp_path / "bank").names()) == PERSONAS + 1  # and unified


def test_an_adapter_ends_the_same_whatever_shard_it_trained_in(config, tmp_path):
    """Without dropout, who shares a shard (and a step) changes nothing: each adapter has its
    own seed, batches, schedule and optimizer state."""
    no_dropout = replace(config, settings=replace(config.settings, dropout=0.0))
    train_run(replace(no_dropout, fleet_shard=1), tmp_path / "one", progress=False)
    train_run(replace(no_dropout, fleet_shard=64), tmp_path / "all", progress=False)
    assert_same_adapters(persona_weights(tmp_path / "one"), persona_weights(tmp_path / "all"), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("stop_at", ["between_shards", "mid_shard"])
def test_a_killed_run_resumes_at_the_first_unfinished_shard(config, uninterrupted, tmp_path, stop_at):
    out = tmp_path / "run"
    out.mkdir()
    child = start_child(config, out, tmp_path, stop_at)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)

    assert not (out / "personalizer.json").exists()
    first_shard = set(persona_weights(out))
    assert len(first_shard) == 2  # the first shard is in the bank, the second is not
    train_run(config, out, progress=False)
    # Only the two unfinished shards trained again; the result is the uninterrupted run's, bit
    # for bit (each shard's dropout draws are seeded afresh).
    trained = {name for name in training_records(out)["training"] if name.startswith("persona/")}
    assert trained == set(persona_weights(out)) - first_shard and len(trained) == PERSONAS - 2
    assert_same_adapters(persona_weights(out), persona_weights(uninterrupted), rtol=0, atol=0)


def start_child(config: RunConfig, out: Path, tmp_path: Path, stop_at: str) -> subprocess.Popen:
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    (tmp_path / "child.py").write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(tmp_path / "child.py"), str(tmp_path / "config.json"), str(out),
                              stop_at], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (out / ".paused").exists():
        if child.poll() is not None:
            pytest.fail(f"the training process ended (exit {child.returncode}) before pausing:\n{child.stderr.read()}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail("the training process never reached its pause point")
        time.sleep(0.1)
    return child
