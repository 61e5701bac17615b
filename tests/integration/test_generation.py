"""A generation dataset end to end on the tiny causal LM, through the CLI: train, evaluate
(ROUGE, BLEU, own-vs-other, generated text in the predictions), and every bad input the
generation path refuses with a clear message and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personalab.cli.main import main
from personalab.data import write_dataset
from personalab.data.schema import DatasetSpec, Example, Persona

EMAILS = ["send me the numbers today", "the meeting is moved to monday", "fix the printer now",
          "where is my report", "call the client back", "we need more chairs"]
STYLES = {"p1": "Hello, {} please. Thanks!", "p2": "Hi team: {}. Regards", "p3": "{}!!"}
# Rows 0-3 train, 4 val, 5 test: every persona rewrites every email, so each test row has two
# other personas' rewrites of its input (own-vs-other has pairs).
SPLITS = ["train"] * 4 + ["val", "test"]
FAST = ["--epochs", "1", "--batch-size", "8", "--quiet"]
SHORT = ["--max-new-tokens", "4", "--quiet"]


@pytest.fixture(scope="module")
def gen_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("gen-data")
    personas = {pid: Persona(pid, f"writer {pid}") for pid in STYLES}
    examples = [Example(pid, email, style.format(email), split, example_id=f"{pid}-{i}")
                for pid, style in STYLES.items() for i, (email, split) in enumerate(zip(EMAILS, SPLITS))]
    write_dataset(root, DatasetSpec(name="gen", task="generation"), personas, examples)
    return root


@pytest.fixture(scope="module")
def trained(gen_data, tmp_path_factory) -> dict[str, Path]:
    """unified, and per_persona on top of it, trained once for the module."""
    root = tmp_path_factory.mktemp("gen-runs")
    runs = {"unified": root / "unified", "per_persona": root / "personas"}
    assert main(["train", "--data", str(gen_data), "--model", "tiny-causal-lm", "--out", str(runs["unified"]), *FAST]) == 0
    assert main(["train", "--data", str(gen_data), "--model", "tiny-causal-lm", "--strategy", "per_persona",
                 "--on-top-of", "unified", "--set", "min_train_rows=2", "--reuse", str(runs["unified"]),
                 "--out", str(runs["per_persona"]), *FAST]) == 0
    for run in runs.values():
        assert main(["evaluate", str(run), *SHORT]) == 0
    return runs


def test_evaluate_writes_generation_metrics_and_texts(trained, capsys):
    metrics = json.loads((trained["per_persona"] / "eval" / "test" / "metrics.json").read_text())
    assert metrics["headline"] == "rougeL" and metrics["n"] == 3
    for name in ("rouge1", "rouge2", "rougeL", "bleu", "exact_match", "length", "sentence_bleu"):
        assert 0 <= metrics[name] <= (100 if name in ("bleu", "length") else 1)
    assert set(metrics["per_persona"]) == set(STYLES)
    assert metrics["own_vs_other"]["rows"] == 3 and metrics["own_vs_other"]["pairs"] == 6
    assert metrics["generation"]["max_new_tokens"] == 4
    lines = [json.loads(line) for line in (trained["per_persona"] / "eval" / "test" / "predictions.jsonl").open()]
    assert {line["persona_id"] for line in lines} == set(STYLES)
    assert all(isinstance(line["predicted"], str) and "rougeL" in line["metrics"] for line in lines)
    assert lines[0]["route"] == {f"persona/{lines[0]['persona_id']}": 1.0, "unified": 1.0}
    assert main(["evaluate", str(trained["unified"]), *SHORT]) == 0
    printed = capsys.readouterr().out
    assert "ROUGE-L" in printed and "BLEU" in printed and "own vs other" in printed


def predicted(run: Path, split: str = "test") -> list[str]:
    return [json.loads(line)["predicted"] for line in (run / "eval" / split / "predictions.jsonl").open()]


def test_an_ensemble_tunes_its_weight_by_validation_rouge_and_mixes_per_step(trained, gen_data, tmp_path):
    """unified + persona_token (whose rows carry an identifier: the members' prompts differ),
    its weight chosen on the validation rows by the ROUGE-L of answers generated under each."""
    out = tmp_path / "ensemble"
    assert main(["train", "--data", str(gen_data), "--model", "tiny-causal-lm", "--strategy", "ensemble",
                 "--set", "second=persona_token", "--reuse", str(trained["unified"]), "--out", str(out), *FAST]) == 0
    record = json.loads((out / "training.json").read_text())["ensemble"]
    assert len(record["val_rougeL_by_weight"]) == 11 and record["weight"] in [float(w) for w in record["val_rougeL_by_weight"]]
    assert main(["evaluate", str(out), *SHORT]) == 0
    route = json.loads((out / "eval" / "test" / "predictions.jsonl").open().readline())["route"]
    assert [m["route"] for m in route["ensemble"]] == [{"unified": 1.0}, {"unified_token": 1.0}]


def test_an_ensemble_of_weight_one_generates_what_its_first_member_does(trained, gen_data, tmp_path):
    out = tmp_path / "ensemble-1"
    assert main(["train", "--data", str(gen_data), "--model", "tiny-causal-lm", "--strategy", "ensemble",
                 "--set", "second=persona_token", "--set", "weight=1.0", "--reuse", str(trained["unified"]),
                 "--out", str(out), *FAST]) == 0
    assert main(["evaluate", str(out), *SHORT]) == 0 and main(["evaluate", str(trained["unified"]), *SHORT]) == 0
    assert predicted(out) == predicted(trained["unified"])


def test_predict_generates_what_evaluate_generated(trained, gen_data, capsys):
    line = json.loads((trained["per_persona"] / "eval" / "test" / "predictions.jsonl").open().readline())
    assert main(["predict", str(trained["per_persona"]), "--persona", line["persona_id"], *SHORT[:2],
                 line["input"]]) == 0
    out = capsys.readouterr().out
    assert f"-> {line['predicted']!r}" in out and "persona/" in out


def test_export_of_a_generation_ensemble_says_it_needs_a_client_that_mixes(trained, gen_data, tmp_path, capsys):
    run = tmp_path / "ensemble"
    assert main(["train", "--data", str(gen_data), "--model", "tiny-causal-lm", "--strategy", "ensemble",
                 "--set", "second=per_persona", "--set", "weight=0.6", "--reuse", str(trained["per_persona"]),
                 "--out", str(run), *FAST]) == 0
    assert main(["export", str(run), "--out", str(tmp_path / "served")]) == 0
    routing = json.loads((tmp_path / "served" / "routing.json").read_text())
    assert routing["task"] == "generation" and "next-token distributions" in routing["note"]
    assert "NOT servable by a single-adapter server" in capsys.readouterr().out


def test_sampling_is_reproducible_from_the_command_line(trained):
    def sampled(seed: int) -> list[str]:
        assert main(["evaluate", str(trained["unified"]), "--split", "val", "--sample", "--temperature", "3",
                     "--seed", str(seed), "--max-new-tokens", "6", "--quiet"]) == 0
        return predicted(trained["unified"], "val")

    assert sampled(1) == sampled(1) != sampled(2)


def test_a_generation_dataset_with_the_encoder_classifier_is_refused(gen_data, tmp_path, capsys):
    assert main(["train", "--data", str(gen_data), "--model", "tiny-classifier", "--out", str(tmp_path / "r"), *FAST]) == 2
    assert "generation task" in capsys.readouterr().err


def test_strategies_that_score_a_label_set_are_refused(trained, gen_data, tmp_path, capsys):
    code = main(["train", "--data", str(gen_data), "--model", "tiny-causal-lm", "--strategy", "weighted_merge",
                 "--on-top-of", "unified", "--reuse", str(trained["per_persona"]), "--out", str(tmp_path / "m"), *FAST])
    assert code == 2 and "generation dataset has none" in capsys.readouterr().err


def test_nonsense_generation_settings_are_refused(trained, capsys):
    assert main(["evaluate", str(trained["unified"]), "--sample", "--temperature", "0", "--quiet"]) == 2
    assert "temperature" in capsys.readouterr().err
