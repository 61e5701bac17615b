import pytest
from sklearn.metrics import f1_score

from personalab.data.schema import Example
from personalab.evaluate.metrics import classification_metrics


def rows(pairs, split="test"):
    return [Example(persona_id=p, input=f"x{i}", output=o, split=split) for i, (p, o) in enumerate(pairs)]


def test_accuracy_f1_and_per_persona():
    test = rows([("a", "yes"), ("a", "no"), ("b", "no"), ("b", "no")])
    predicted = ["yes", "yes", "no", "yes"]
    m = classification_metrics(test, predicted, ["yes", "no"])
    assert m["accuracy"] == 0.5
    assert m["macro_f1"] == pytest.approx(f1_score([r.output for r in test], predicted, average="macro"))
    assert m["per_persona"] == {"a": {"n": 2, "accuracy": 0.5}, "b": {"n": 2, "accuracy": 0.5}}
    assert "mae" not in m


def test_mae_only_for_numeric_labels():
    test = rows([("a", "1"), ("a", "5")])
    m = classification_metrics(test, ["2", "3"], ["1", "2", "3", "4", "5"])
    assert m["mae"] == pytest.approx(1.5)
