"""``persona_bias`` end to end with the tiny classifier, on synthetic personas who each lean
to one label on their own (``leniency``): it trains on top of a reused unified adapter, beats
unified where personas differ that way, and its offsets reach evaluation, predict and export."""

from __future__ import annotations

import json

import numpy as np
import pytest

from personalab.data import write_dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.run.evaluation import evaluate_run
from personalab.export import export_run
from personalab.export.answer import answer
from personalab.models.base import ModelSpec
from personalab.run.rundir import RunConfig, open_run, train_run, training_records
from personalab.train.presets import resolve_settings


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    data = tmp_path_factory.mktemp("lenient")
    write_dataset(data, *synthesize(SynthConfig(n_personas=12, n_groups=1, leniency=2.0, seed=3)))
    root = tmp_path_factory.mktemp("runs")

    def config(strategy: str, **options) -> RunConfig:
        return RunConfig(data=str(data), strategy=strategy, strategy_options=options,
                         model=ModelSpec(name="tiny-classifier"), settings=resolve_settings(epochs=1))

    train_run(config("unified"), root / "unified", progress=False)
    train_run(config("persona_bias"), root / "bias", progress=False, reuse=[root / "unified"])
    train_run(config("persona_bias", penalty=5.0), root / "fixed", progress=False, reuse=[root / "unified"])
    train_run(config("persona_token"), root / "token", progress=False, reuse=[root / "unified"])
    train_run(config("persona_bias", over="persona_token"), root / "token_bias", progress=False,
              reuse=[root / "unified", root / "token"])
    for name in ("unified", "bias", "fixed", "token", "token_bias"):
        evaluate_run(root / name, progress=False)
    return root


def predictions(run) -> list[dict]:
    return [json.loads(line) for line in (run / "eval" / "test" / "predictions.jsonl").read_text().splitlines()]


def accuracy(run) -> float:
    return json.loads((run / "eval" / "test" / "metrics.json").read_text())["accuracy"]


def test_it_reuses_unified_and_beats_it_where_personas_lean_on_their_own(runs):
    assert training_records(runs / "bias")["reused"]["unified"] == str(runs / "unified")
    assert accuracy(runs / "bias") > accuracy(runs / "unified") + 0.10


def test_the_penalty_is_chosen_on_validation_rows_or_taken_as_given(runs):
    chosen = training_records(runs / "bias")["persona_bias"]
    by_penalty = chosen["val_accuracy_by_penalty"]
    assert by_penalty[str(chosen["penalty"])] == max(by_penalty.values()) > by_penalty["None"]
    assert training_records(runs / "fixed")["persona_bias"]["penalty"] == 5.0


def test_offsets_are_fit_on_the_scores_the_inner_strategy_gives(runs):
    # persona_token's scores are those of inputs behind identifiers; "no offsets" on the
    # validation rows must be exactly its validation accuracy.
    evaluate_run(runs / "token", split="val", progress=False)
    token_val = json.loads((runs / "token" / "eval" / "val" / "metrics.json").read_text())["accuracy"]
    assert training_records(runs / "token_bias")["persona_bias"]["val_accuracy_by_penalty"]["None"] == token_val


@pytest.mark.parametrize("inner, biased", [("unified", "bias"), ("token", "token_bias")])
def test_each_test_row_is_the_inner_score_plus_its_personas_offsets(runs, inner, biased):
    offsets = json.loads((runs / biased / "personalizer.json").read_text())["offsets"]
    for plain, biased in zip(predictions(runs / inner), predictions(runs / biased)):
        assert plain["input"] == biased["input"]
        shift = offsets.get(plain["persona_id"], [0.0, 0.0])
        want = [plain["scores"][c] + s for c, s in zip(("dislike", "like"), shift)]
        assert np.allclose([biased["scores"][c] for c in ("dislike", "like")], want, atol=2e-6)
        assert biased["route"]["route"] == plain["route"]


def test_predict_gives_the_evaluations_probabilities(runs):
    run = open_run(runs / "bias")
    row = predictions(runs / "bias")[0]
    result = answer(run, row["persona_id"], [row["input"]])
    scores = np.array([row["scores"][c] for c in run.backend.choices])
    expected = np.exp(scores - np.logaddexp.reduce(scores))
    assert np.allclose(list(result.answers[0].probabilities.values()), expected, atol=1e-4)
    assert "plus its own choice offsets" in result.how


def test_export_carries_the_offsets_for_the_client_to_add(runs, tmp_path):
    report = export_run(runs / "bias", tmp_path / "export")
    routing = json.loads((tmp_path / "export" / "routing.json").read_text())
    offsets = json.loads((runs / "bias" / "personalizer.json").read_text())["offsets"]
    assert routing["persona_bias"]["offsets"] == {pid: dict(zip(("dislike", "like"), o)) for pid, o in offsets.items()}
    assert set(routing["personas"].values()) == {"unified"}  # the adapter is unified's, unchanged
    assert any("persona_bias" in note for note in report.notes)
