"""Persona identity on the embedded MiniLM, on synthetic personas who differ individually and
not by group (one group, no separation; each persona leans to one label on its own,
``leniency``), as annotators who rate everything offensive or nothing: a unified adapter
cannot tell them apart, an adapter that reads who is asking (``persona_token``) and offsets
per persona over unified's scores (``persona_bias``) can.

The issue's bar: persona_token beats unified by more than 5 points there, and persona_bias
over unified beats unified too. The numbers are one deterministic training each (seed 0);
``bench/persona_identity.py`` gives the same comparison with its persona-level CI.
"""

from __future__ import annotations

import pytest

from personalab.data import write_dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.evaluate.compare import compare_runs
from personalab.run.evaluation import evaluate_run
from personalab.models.base import ModelSpec
from personalab.run.rundir import RunConfig, train_run
from personalab.train.presets import resolve_settings

DATA = SynthConfig(n_personas=24, n_groups=1, separation=0.0, leniency=1.0, examples_per_persona=60, seed=0)


@pytest.mark.slow
def test_persona_identity_beats_unified_on_individually_differing_personas(tmp_path):
    write_dataset(tmp_path / "data", *synthesize(DATA))
    differences = {}
    for strategy in ("unified", "persona_token", "persona_bias"):
        config = RunConfig(data=str(tmp_path / "data"), strategy=strategy, seed=0,
                           model=ModelSpec(name="minilm", with_profile=False),
                           settings=resolve_settings(epochs=3))
        reuse = [] if strategy == "unified" else [tmp_path / "unified"]
        train_run(config, tmp_path / strategy, progress=False, reuse=reuse)
        evaluate_run(tmp_path / strategy, progress=False, references=False)
        if strategy != "unified":
            overall = compare_runs(tmp_path / "unified", tmp_path / strategy, "test", n_resamples=199, seed=0)["overall"]
            differences[strategy] = overall["difference"]
    assert differences["persona_token"] > 0.05, differences
    assert differences["persona_bias"] > 0.05, differences
