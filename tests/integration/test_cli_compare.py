"""``personalab compare`` through the real entry point, on two fake evaluated run folders (no
model is trained): the table, the JSON, the help, and exit code 2 for runs that cannot be paired."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from personalab.evaluate.compare import compare_runs
from personalab.evaluate.harm import persona_outcomes
from personalab.evaluate.stats import paired_comparison


@pytest.fixture
def run(cli_runner):
    """``run(*argv) -> (exit code, stdout, stderr)``, with only the compare subcommand."""
    return cli_runner(("compare",))


def make_rows(accuracy, seed, personas=8, per_persona=12):
    rng = random.Random(seed)
    rows = []
    for p in range(personas):
        for i in range(per_persona):
            output = "yes" if (p + i) % 3 else "no"
            right = rng.random() < accuracy
            predicted = output if right else ("no" if output == "yes" else "yes")
            rows.append({"persona_id": f"p{p}", "example_id": f"e{p}-{i}", "input": f"text {i}",
                         "output": output, "predicted": predicted, "correct": right,
                         "route": {"unified": 1.0}, "scores": {"no": 0.0, "yes": 0.0}})
    return rows


def write_run(root, rows, strategy, split="test"):
    folder = root / "eval" / split
    folder.mkdir(parents=True)
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "metrics.json").write_text(json.dumps({"strategy": strategy, "model": "tiny", "split": split}))
    return root


@pytest.fixture
def runs(tmp_path):
    a = write_run(tmp_path / "unified", make_rows(0.55, seed=1), "unified")
    b = write_run(tmp_path / "persona", make_rows(0.8, seed=2), "per_persona")
    return a, b


def test_prints_the_table(run, runs):
    a, b = runs
    code, out, err = run("compare", a, b, "--resamples", 999)
    assert code == 0, err
    result = compare_runs(a, b, n_resamples=999)
    overall = result["overall"]
    assert out.startswith(f"B = per_persona ({b})  vs  A = unified ({a})")
    assert "test split: 96 paired rows, 8 personas" in out
    assert f"{overall['score_a']:.2%}" in out and f"{overall['score_b']:.2%}" in out
    assert f"{overall['ci_low'] * 100:+.2f} to {overall['ci_high'] * 100:+.2f} pts" in out
    assert f"{overall['difference'] * 100:+.2f} pts" in out
    assert f"p (persona level)" in out and "sign-flip permutation test" in out and "McNemar p" in out
    assert "harm check: not run" in out  # no val evaluations to flag personas on
    personas = result["per_persona"]
    assert f"{personas['improved']} better, {personas['equal']} equal, {personas['worse']} worse" in out


def test_result_matches_the_statistics_on_the_aligned_rows(runs):
    a, b = runs
    rows_a = make_rows(0.55, seed=1)
    rows_b = make_rows(0.8, seed=2)
    correct_a = np.array([r["correct"] for r in rows_a])
    correct_b = np.array([r["correct"] for r in rows_b])
    result = compare_runs(a, b, n_resamples=499, seed=4)
    ids = [r["persona_id"] for r in rows_a]
    assert result["overall"] == paired_comparison(ids, correct_a, correct_b, n_resamples=499, seed=4).to_dict()
    assert result["per_persona"] == persona_outcomes(ids, correct_a, correct_b).to_dict()
    assert result["harm"] is None
    assert result["a"]["strategy"] == "unified" and result["b"]["strategy"] == "per_persona"


def test_rows_are_paired_by_key_not_by_file_order(tmp_path, runs):
    a, b = runs
    shuffled = make_rows(0.8, seed=2)
    random.Random(0).shuffle(shuffled)
    c = write_run(tmp_path / "shuffled", shuffled, "per_persona")
    assert compare_runs(a, c, n_resamples=199)["overall"] == compare_runs(a, b, n_resamples=199)["overall"]


def test_rows_without_example_id_pair_by_input(tmp_path):
    rows_a, rows_b = make_rows(0.5, seed=1), make_rows(0.7, seed=2)
    for rows in (rows_a, rows_b):
        for i, row in enumerate(rows):
            row["example_id"], row["input"] = None, f"text {i}"
    rows_b.reverse()
    a = write_run(tmp_path / "a", rows_a, "unified")
    b = write_run(tmp_path / "b", rows_b, "per_persona")
    result = compare_runs(a, b, n_resamples=99)
    expected = paired_comparison([r["persona_id"] for r in rows_a], [r["correct"] for r in rows_a],
                                 [r["correct"] for r in reversed(rows_b)], n_resamples=99)
    assert result["overall"] == expected.to_dict()


def test_writes_json(run, runs, tmp_path):
    a, b = runs
    out_file = tmp_path / "cmp.json"
    code, out, err = run("compare", a, b, "--resamples", 299, "--seed", 3, "--json", out_file)
    assert code == 0, err
    assert f"wrote {out_file}" in out
    data = json.loads(out_file.read_text())
    assert data == json.loads(json.dumps(compare_runs(a, b, n_resamples=299, seed=3)))
    assert len(data["per_persona"]["personas"]) == 8


def test_the_harm_check_flags_on_val_when_both_runs_were_evaluated_there(run, runs, tmp_path):
    a, b = runs
    write_run(a, make_rows(0.55, seed=5), "unified", split="val")
    write_run(b, make_rows(0.8, seed=6), "per_persona", split="val")
    code, out, err = run("compare", a, b, "--resamples", 299)
    assert code == 0, err
    result = compare_runs(a, b, n_resamples=299, flag_split="val")
    harm = result["harm"]
    assert harm["flag_split"] == "val" and harm["n_flagged"] == persona_outcomes(
        *_val_columns(a, b)).worse
    assert "harm check:" in out and "not run" not in out.split("harm check:")[1].splitlines()[0]
    code, out, err = run("compare", a, b, "--resamples", 299, "--flag-split", "test")
    assert code == 0 and "harm check: not run" in out  # flagging on the rows it tests is no check


def _val_columns(a, b):
    rows_a = [json.loads(line) for line in (a / "eval" / "val" / "predictions.jsonl").read_text().splitlines()]
    rows_b = [json.loads(line) for line in (b / "eval" / "val" / "predictions.jsonl").read_text().splitlines()]
    return ([r["persona_id"] for r in rows_a], np.array([r["correct"] for r in rows_a]),
            np.array([r["correct"] for r in rows_b]))


def test_same_run_twice_is_no_difference(run, runs):
    a, _ = runs
    code, out, err = run("compare", a, a)
    assert code == 0, err
    assert "+0.00 to +0.00 pts" in out and "1.0000" in out and "exact" in out
    assert "0 better, 8 equal, 0 worse" in out


def test_help_teaches_what_the_numbers_mean(run):
    code, out, _ = run("compare", "--help")
    assert code == 0
    assert "paired" in out and "same rows" in out.replace("\n", " ")
    assert "persona" in out and "sign-flip" in out and "B - A" in out and "bootstrap" in out
    assert "harm check" in out and "--flag-split" in out and "McNemar" in out


def test_mismatched_rows_exit_2_with_counts(run, runs, tmp_path):
    a, _ = runs
    fewer = write_run(tmp_path / "fewer", make_rows(0.8, seed=2)[:-5], "per_persona")
    code, out, err = run("compare", a, fewer)
    assert code == 2 and out == ""
    assert "not evaluated on the same test rows" in err
    assert "has 96" in err and "has 91" in err and "91 in both" in err and "5 only in" in err
    assert "Traceback" not in err


def test_different_gold_labels_exit_2(run, runs, tmp_path):
    a, _ = runs
    rows = make_rows(0.8, seed=2)
    rows[3]["output"] = "maybe"
    other = write_run(tmp_path / "other", rows, "per_persona")
    code, _, err = run("compare", a, other)
    assert code == 2 and "evaluated on different data" in err


def test_missing_evaluation_exit_2(run, runs, tmp_path):
    a, _ = runs
    (tmp_path / "trained").mkdir()
    code, _, err = run("compare", a, tmp_path / "trained")
    assert code == 2
    assert "has not been evaluated on the test split" in err and f"personalab evaluate {tmp_path / 'trained'}" in err
    code, _, err = run("compare", a, a, "--split", "val")
    assert code == 2 and "--split val" in err
    code, _, err = run("compare", a, tmp_path / "nowhere")
    assert code == 2 and "no such run directory" in err


def test_broken_predictions_exit_2(run, runs, tmp_path):
    a, _ = runs
    broken = write_run(tmp_path / "broken", make_rows(0.8, seed=2), "per_persona")
    with open(broken / "eval" / "test" / "predictions.jsonl", "a") as handle:
        handle.write("{not json\n")
    code, _, err = run("compare", a, broken)
    assert code == 2 and "invalid JSON" in err and ":97:" in err


# --- generation runs: a continuous per-row score --------------------------------------------

def make_generated(quality, seed, personas=8, per_persona=6):
    """Rows as a generation run's evaluation writes them: text, and per-row metrics in [0, 1]."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(personas):
        for i in range(per_persona):
            scores = {name: float(np.clip(quality + rng.normal(0, 0.1), 0, 1))
                      for name in ("rouge1", "rouge2", "rougeL", "sentence_bleu")}
            rows.append({"persona_id": f"p{p}", "example_id": f"e{p}-{i}", "input": f"email {i}",
                         "output": f"rewrite {p} {i}", "predicted": "some text", "route": {"unified": 1.0},
                         "metrics": {**scores, "exact_match": 0.0}})
    return rows


@pytest.fixture
def generated(tmp_path):
    a = write_run(tmp_path / "gen-unified", make_generated(0.3, seed=1), "unified")
    b = write_run(tmp_path / "gen-persona", make_generated(0.4, seed=2), "per_persona")
    for folder in (a, b):  # evaluate names a generation run's headline metric
        path = folder / "eval" / "test" / "metrics.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "headline": "rougeL"}))
    return a, b


def test_generation_runs_are_compared_by_rouge_l_at_the_persona_level(run, generated):
    code, out, err = run("compare", *generated, "--resamples", "199")
    assert code == 0, err
    result = compare_runs(*generated, n_resamples=199)
    overall = result["overall"]
    assert overall["metric"] == "rougeL" and overall["mcnemar_p"] is None and overall["table"] is None
    a, b = ([r["metrics"]["rougeL"] for r in make_generated(q, seed=s)] for q, s in ((0.3, 1), (0.4, 2)))
    ids = [r["persona_id"] for r in make_generated(0.3, seed=1)]
    assert overall["p_value"] == paired_comparison(ids, a, b, n_resamples=199).p_value
    assert out.split("ROUGE-L A")[1].split()[0] == f"{overall['score_a']:.2%}"
    assert "ROUGE-L B" in out and "McNemar" not in out and "rows B scored higher on" in out


def test_another_generation_metric_can_be_asked_for(run, generated):
    code, out, _ = run("compare", *generated, "--metric", "rouge1", "--resamples", "99")
    assert code == 0 and "ROUGE-1 A" in out
    assert compare_runs(*generated, n_resamples=99, metric="rouge1")["overall"]["metric"] == "rouge1"


def test_a_generation_run_asked_for_accuracy_exits_2(run, generated):
    code, _, err = run("compare", *generated, "--metric", "accuracy")
    assert code == 2 and "generation run" in err and "--metric rougeL" in err


def test_a_classification_run_asked_for_rouge_exits_2(run, runs):
    code, _, err = run("compare", *runs, "--metric", "rougeL")
    assert code == 2 and "classification run" in err and "--metric accuracy" in err
