"""``persona_token`` (identity text) end to end on both tiny backends: train, evaluate, predict
and export a run on a dataset where the persona alone decides the label (persona ``a`` always
says "good", ``b`` always "bad", about the same texts), so only a model that sees who is
asking can beat 50%. Persona ``d`` is held out of training (cold start).

Checked: the identifiers in the run are the ones a fresh tokenizer draws; they reach the model
(in training: accuracy beyond what the texts allow; in scoring: the run's scores are the
shared adapter's scores of the prefixed text); cold-start personas get their plain input; the
token adapter never passes for the unified one; the export, loaded in plain PEFT and fed
``routing.json``'s identifier + input, reproduces the run, and a causal-LM export passes the
vLLM check."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from personalab.bank import AdapterBank
from personalab.engine.routes import Route
from personalab.run.evaluation import evaluate_run
from personalab.export import export_run
from personalab.export.answer import answer
from personalab.models import build_backend, load_head
from personalab.models.base import ModelSpec
from personalab.models.tiny import corpus_lines
from personalab.routing import RoutingTable, predict, score_routes, with_identifier
from personalab.run.rundir import RunConfig, open_run, train_run, training_records
from personalab.strategies.identifiers import draw_identifiers, identifier_vocabulary
from personalab.strategies.persona_token import ADAPTER
from personalab.train.head import HEAD_FILE
from personalab.train.presets import resolve_settings

MODELS = ("tiny-classifier", "tiny-causal-lm")
LABELS = {"a": "good", "b": "bad", "d": "good"}
HELD_OUT = ["d"]  # what holdout 0.2 holds out of a, b, d (split_hash; asserted below)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("opposite")
    words = " ".join(corpus_lines()).translate(str.maketrans("", "", ";,.!?")).split()
    texts = [" ".join(words[i : i + 6]) for i in range(0, 6 * 36, 6)]
    (root / "dataset.yaml").write_text("name: opposite\ntask: classification\nchoices: [bad, good]\n")
    personas = [{"persona_id": pid, "profile": f"persona {pid}"} for pid in LABELS]
    (root / "personas.jsonl").write_text("".join(json.dumps(p) + "\n" for p in personas))
    rows = [{"persona_id": pid, "input": text, "output": label,
             "split": "train" if i < 24 else "val" if i < 28 else "test"}
            for pid, label in LABELS.items() for i, text in enumerate(texts)]
    (root / "examples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def config(data: Path, model: str, strategy: str = "persona_token", **options) -> RunConfig:
    # No profile in the input: the identifier is then the only thing that tells personas apart.
    # The tiny causal LM's validation loss is still falling after 6 epochs (about 2.0 at seed 0,
    # from 10.0), its test accuracy then anywhere from 50% to 100% by the seed: it gets 10.
    epochs = 10 if model == "tiny-causal-lm" else 6
    return RunConfig(data=str(data), strategy=strategy, strategy_options=options, holdout=0.2,
                     model=ModelSpec(name=model, with_profile=False),
                     settings=resolve_settings(epochs=epochs, lr=1e-2, batch_size=8, patience=epochs))


@pytest.fixture(scope="module")
def runs(data_dir, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    for model in MODELS:
        train_run(config(data_dir, model), root / model, progress=False)
        evaluate_run(root / model, progress=False, references=False)
    return {model: root / model for model in MODELS}


def _saved_scores(run_dir: Path) -> tuple[list[dict], np.ndarray]:
    records = [json.loads(line) for line in (run_dir / "eval" / "test" / "predictions.jsonl").read_text().splitlines()]
    return records, np.array([list(r["scores"].values()) for r in records])


@pytest.mark.parametrize("model", MODELS)
def test_the_run_holds_freshly_drawn_identifiers_and_none_for_cold_start(model, runs):
    run = open_run(runs[model])
    assert training_records(runs[model])["held_out_personas"] == HELD_OUT
    fresh = build_backend(run.config.model, run.backend.choices, {}).tokenizer
    assert run.personalizer.identifiers == draw_identifiers(["a", "b"], identifier_vocabulary(fresh), 3)
    assert run.personalizer.uses_default("d") and not run.personalizer.uses_default("a")
    assert training_records(runs[model])["persona_token"]["cold_start_personas"] == HELD_OUT
    metrics = json.loads((runs[model] / "eval" / "test" / "metrics.json").read_text())
    assert metrics["cold_start"]["personas"] == 1 and metrics["default_route_personas"] == HELD_OUT


@pytest.mark.parametrize("model", MODELS)
def test_the_identifier_is_learned_where_the_texts_alone_give_50_percent(model, runs, data_dir, tmp_path):
    """Each test text is asked of a and b with opposite labels: any model that sees only the
    text gets exactly half of a's and b's rows right (unified shows it)."""
    train_run(config(data_dir, model, strategy="unified"), tmp_path, progress=False)
    evaluate_run(tmp_path, progress=False, references=False)
    for run_dir, expected in ((tmp_path, lambda acc: acc == 0.5), (runs[model], lambda acc: acc >= 0.75)):
        records, _ = _saved_scores(run_dir)
        known = [r["predicted"] == r["output"] for r in records if r["persona_id"] in ("a", "b")]
        assert expected(float(np.mean(known))), (run_dir.name, np.mean(known))


@pytest.mark.parametrize("model", MODELS)
def test_scores_are_the_shared_adapter_fed_the_prefixed_text(model, runs):
    run = open_run(runs[model])
    records, saved = _saved_scores(runs[model])
    rows = run.dataset.split("test")
    assert [r.persona_id for r in rows] == [r["persona_id"] for r in records]
    # The same text for a and b: different scores, each the plain adapter's on identifier + text.
    text = rows[0].input
    same_text = [replace(rows[0], persona_id=pid) for pid in ("a", "b", "d")]
    scores = predict(run.backend, run.model, run.personalizer, same_text, progress=False).scores
    assert not np.allclose(scores[0], scores[1])
    identifiers = run.personalizer.identifiers
    prefixed = [replace(row, input=with_identifier(identifiers.get(row.persona_id, ""), text)) for row in same_text]
    plain_route = RoutingTable(default=Route.single(ADAPTER))  # no identifiers of its own
    expected = score_routes(run.backend, run.model, prefixed, [plain_route.default] * 3, chunk=8, progress=False)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert prefixed[2].input == text  # the cold-start persona: its plain input
    # and evaluation wrote exactly what predict gives (rows scored in other batches: rounding)
    np.testing.assert_allclose(predict(run.backend, run.model, run.personalizer, rows, progress=False).scores,
                               saved, atol=1e-5)


def test_the_token_adapter_is_kept_apart_from_unified_and_reused_by_fingerprint(runs, data_dir, tmp_path):
    bank = AdapterBank(runs["tiny-classifier"] / "bank")
    # A classifier's head trains with unified (the run's first adapter); the token adapter after it.
    assert set(bank.names()) == {"unified", ADAPTER}
    assert bank.entry("unified")["fingerprint"] != bank.entry(ADAPTER)["fingerprint"]
    assert set(AdapterBank(runs["tiny-causal-lm"] / "bank").names()) == {ADAPTER}  # no head: no unified
    same = tmp_path / "same"
    train_run(config(data_dir, "tiny-classifier"), same, progress=False, reuse=[runs["tiny-classifier"]])
    assert set(training_records(same)["reused"]) == {"unified", ADAPTER}
    longer = tmp_path / "longer"
    train_run(config(data_dir, "tiny-classifier", tokens=4), longer, progress=False, reuse=[runs["tiny-classifier"]])
    assert set(training_records(longer)["reused"]) == {"unified"}  # other identifiers: other inputs
    assert ADAPTER in training_records(longer)["training"]


@pytest.mark.parametrize("model", MODELS)
def test_the_export_served_with_plain_peft_and_text_reproduces_the_run(model, runs, tmp_path):
    from peft import PeftModel

    report = export_run(runs[model], tmp_path / "out")
    out = tmp_path / "out"
    routing = json.loads((out / "routing.json").read_text())
    run = open_run(runs[model])
    assert routing["identifiers"] == run.personalizer.identifiers and "d" not in routing["identifiers"]
    assert routing["input_format"] == "{identifier} {input}"
    backend = build_backend(run.config.model, run.backend.choices, run.dataset.profiles, seed=run.config.seed)
    if (out / HEAD_FILE).exists():
        load_head(backend.model, out / HEAD_FILE)
    folder = routing["default"]
    assert set(routing["personas"].values()) == {folder}
    peft_model = PeftModel.from_pretrained(backend.model, str(out / "adapters" / folder))
    # What a server does with nothing but routing.json: identifier + input as text.
    def served(row):
        identifier = routing["identifiers"].get(row.persona_id)
        text = routing["input_format"].format(identifier=identifier, input=row.input) if identifier else row.input
        return replace(row, input=text)

    rows = run.dataset.split("test")
    _, saved = _saved_scores(runs[model])
    scores = backend.scores(peft_model, [served(row) for row in rows]).numpy()
    np.testing.assert_allclose(scores, saved, atol=1e-4)
    vllm = report.compatibility.to_json()
    assert vllm["servable"] == (model == "tiny-causal-lm")
    if model == "tiny-causal-lm":
        assert not vllm["problems"]


def test_predict_answers_with_the_persona_identifier_and_a_new_persona_without(runs):
    run = open_run(runs["tiny-classifier"])
    records, saved = _saved_scores(runs["tiny-classifier"])
    index = next(i for i, r in enumerate(records) if r["persona_id"] == "a")
    known = answer(run, "a", [records[index]["input"]])
    assert f"with identifier {run.personalizer.identifiers['a']!r}" in known.route
    assert np.allclose(list(known.answers[0].probabilities.values()), np.exp(saved[index]), atol=1e-4)
    new = answer(run, "newcomer", [records[index]["input"]])
    plain = score_routes(run.backend, run.model, [replace(run.dataset.split("test")[index], persona_id="newcomer")],
                         [Route.single(ADAPTER)], chunk=8, progress=False)
    assert "identifier" not in new.route
    assert np.allclose(list(new.answers[0].probabilities.values()), np.exp(plain[0]), atol=1e-4)


def test_an_ensemble_member_keeps_its_identifiers(runs, data_dir, tmp_path):
    """Identifiers belong to a routing table, so they hold inside an ensemble too: at weight 0
    for unified the ensemble scores exactly as the persona_token run, and its export gives each
    persona the token member's identifier."""
    run_dir = tmp_path / "ensemble"
    train_run(config(data_dir, "tiny-classifier", strategy="ensemble", first="unified", second="persona_token",
                     weight=0.0), run_dir, progress=False, reuse=[runs["tiny-classifier"]])
    evaluate_run(run_dir, progress=False, references=False)
    np.testing.assert_allclose(_saved_scores(run_dir)[1], _saved_scores(runs["tiny-classifier"])[1], atol=1e-5)
    export_run(run_dir, tmp_path / "out", check=False)
    routing = json.loads((tmp_path / "out" / "routing.json").read_text())
    identifiers = open_run(runs["tiny-classifier"]).personalizer.identifiers
    assert [m.get("identifier") for m in routing["personas"]["a"]["members"]] == [None, identifiers["a"]]
    assert all("identifier" not in m for m in routing["personas"]["d"]["members"] + routing["default"]["members"])
    assert routing["input_format"] == "{identifier} {input}"
