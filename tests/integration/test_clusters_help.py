"""Real behaviour on the embedded MiniLM: with personas in well-separated latent groups, one
adapter per cluster beats one unified adapter on the same test rows (the playbook's premise,
and what `personalab demo` shows)."""

from __future__ import annotations

import pytest

from personalab.data import write_dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.run.evaluation import evaluate_run
from personalab.models.base import ModelSpec
from personalab.run.rundir import RunConfig, train_run
from personalab.train.presets import resolve_settings


@pytest.mark.slow
def test_per_cluster_beats_unified_when_groups_are_well_separated(tmp_path):
    data = tmp_path / "data"
    write_dataset(data, *synthesize(SynthConfig(n_personas=24, seed=0)))
    settings = resolve_settings("default", epochs=5, lr=2e-3)
    accuracy = {}
    for strategy in ("unified", "per_cluster"):
        config = RunConfig(data=str(data), strategy=strategy, model=ModelSpec(name="minilm", max_length=64),
                           settings=settings)
        train_run(config, tmp_path / strategy, progress=False, reuse=[tmp_path / "unified"] if strategy != "unified" else [])
        accuracy[strategy] = evaluate_run(tmp_path / strategy, progress=False)["accuracy"]
    assert accuracy["per_cluster"] > accuracy["unified"] + 0.03, accuracy
