"""The data subcommands through the real entry point: exit codes, messages, no tracebacks."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from personalab.cli import main as cli_main
from personalab.data import load_dataset

DATA_SUBCOMMANDS = ("synth", "import_", "validate")


@pytest.fixture
def run(cli_runner):
    # Only the data subcommands: these tests are about the data commands and main()'s error
    # handling, not about the other parsers.
    return cli_runner(DATA_SUBCOMMANDS)


def test_validate_a_good_dataset(run, make_dataset):
    code, out, err = run("validate", make_dataset())
    assert code == 0, err
    assert out.startswith("OK: 2 personas, 4 examples (train ")
    assert "classification, labels: bad, good" in out


def test_validate_prints_every_problem_and_exits_2(run, make_dataset):
    rows = [*make_dataset.examples] + ["{broken"] * 60  # more than DataError's default limit
    code, out, err = run("validate", make_dataset(examples=rows))
    assert code == 2 and out == ""
    assert err.startswith("error: 60 problems found:")
    assert "examples.jsonl:5: invalid JSON" in err and "examples.jsonl:64: invalid JSON" in err
    assert "more problems" not in err and "Traceback" not in err


def test_validate_missing_folder(run, tmp_path):
    code, _, err = run("validate", tmp_path / "absent")
    assert code == 2
    assert "absent: dataset folder not found" in err


def test_synth_then_validate(run, tmp_path):
    code, out, err = run("synth", "--out", tmp_path / "s", "--personas", 6, "--groups", 2,
                         "--examples-per-persona", 10, "--separation", 0.5, "--seed", 7)
    assert code == 0, err
    assert "6 personas, 60 examples" in out and "2 latent groups, separation 0.5" in out
    dataset = load_dataset(tmp_path / "s")
    assert {p.attributes["latent_group"] for p in dataset.personas.values()} == {0, 1}
    code, out, _ = run("validate", tmp_path / "s")
    assert code == 0 and out.startswith("OK: 6 personas, 60 examples")


def test_synth_bad_value_is_a_clear_error(run, tmp_path):
    code, _, err = run("synth", "--out", tmp_path / "s", "--separation", 2)
    assert code == 2
    assert err.strip() == "error: separation must be in [0, 1]: 2.0"
    assert not (tmp_path / "s").exists()


def write_popquorn_like(path: Path) -> Path:
    header = ["instance_id", "user_id", "text", "offensiveness",
              "gender", "race", "age", "occupation", "education"]
    demographics = ["Man", "Black", "40-44", "Teacher", "Graduate degree"]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for i in range(12):
            writer.writerow([i, "u1", f"comment {i}", f"{1 + i % 5}.0", *demographics])
    return path


def test_import_popquorn(run, tmp_path):
    source = write_popquorn_like(tmp_path / "p.csv")
    code, out, err = run("import", "popquorn", source, "--task", "5way", "--out", tmp_path / "d")
    assert code == 0, err
    assert "Imported popquorn-offensiveness-5way" in out and "1 personas, 12 examples" in out
    assert "labels: 1 3, 2 3, 3 2, 4 2, 5 2" in out


def test_import_popquorn_missing_file(run, tmp_path):
    code, _, err = run("import", "popquorn", tmp_path / "nope.csv", "--out", tmp_path / "d")
    assert code == 2 and "nope.csv: CSV file not found" in err and "Traceback" not in err


def test_import_csv(run, tmp_path):
    source = tmp_path / "r.csv"
    source.write_text("user,age,text,label,part\n"
                      "a,30,hello,yes,train\na,30,bye,no,test\nb,41,hello,no,train\n")
    code, out, err = run("import", "csv", source, "--out", tmp_path / "d", "--persona-col",
                         "user", "--input-col", "text", "--output-col", "label",
                         "--split-col", "part", "--attribute-cols", "age", "--choices", "no,yes")
    assert code == 0, err
    assert "2 personas, 3 examples (train 2 / val 0 / test 1)" in out
    assert load_dataset(tmp_path / "d").personas["b"].profile == "age: 41"


def test_import_csv_missing_column(run, tmp_path):
    source = tmp_path / "r.csv"
    source.write_text("user,text,label\na,hello,yes\n")
    code, _, err = run("import", "csv", source, "--out", tmp_path / "d", "--persona-col",
                       "person", "--input-col", "text", "--output-col", "label")
    assert code == 2
    assert "missing column 'person'; available columns: 'user', 'text', 'label'" in err


def test_import_popquorn_split_by_item(run, tmp_path):
    source = write_popquorn_like(tmp_path / "p.csv")
    code, out, err = run("import", "popquorn", source, "--split-by", "item",
                         "--out", tmp_path / "d")
    assert code == 0, err
    assert "split_by item: 12 distinct inputs, each in one split for every persona" in out
    assert "split_by: item" in (tmp_path / "d" / "dataset.yaml").read_text()
    assert load_dataset(tmp_path / "d").split_by == "item"
    code, out, _ = run("validate", tmp_path / "d")
    assert code == 0 and "split_by item: 12 distinct inputs" in out


def test_import_default_split_is_row_and_not_written(run, tmp_path):
    source = write_popquorn_like(tmp_path / "p.csv")
    code, out, err = run("import", "popquorn", source, "--out", tmp_path / "d")
    assert code == 0, err
    assert "split_by" not in out
    assert "split_by" not in (tmp_path / "d" / "dataset.yaml").read_text()


def test_import_csv_split_by_persona(run, tmp_path):
    source = tmp_path / "r.csv"
    rows = [f"u{p},text {i},{'yes' if (p + i) % 2 else 'no'}" for p in range(12) for i in range(3)]
    source.write_text("\n".join(["user,text,label", *rows]) + "\n")
    code, out, err = run("import", "csv", source, "--out", tmp_path / "d", "--persona-col",
                         "user", "--input-col", "text", "--output-col", "label",
                         "--split-by", "persona")
    assert code == 0, err
    assert "personas have no train rows (cold start, by design" in out


@pytest.mark.parametrize("source", ["popquorn", "csv"])
def test_import_bad_split_by_exits_2(run, tmp_path, source):
    code, out, err = run("import", source, tmp_path / "p.csv", "--out", tmp_path / "d",
                         "--split-by", "comment")
    assert code == 2 and out == ""
    assert "argument --split-by: invalid choice: 'comment'" in err
    assert "'row', 'item', 'persona'" in err and "Traceback" not in err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("source", ["popquorn", "csv"])
def test_import_help_teaches_split_by(run, source):
    code, out, _ = run("import", source, "--help")
    assert code == 0
    text = " ".join(out.split())  # argparse wraps the help text
    assert "--split-by {row,item,persona}" in text
    assert "row (default): each (persona, row) on its own" in text
    assert "so no test input is ever seen in training" in text
    assert "test personas have no train rows (cold start)" in text


@pytest.mark.parametrize("argv", [["validate"], ["synth"], ["import", "popquorn"],
                                  ["import", "csv"]])
def test_help_shows_an_example(run, argv):
    code, out, _ = run(*argv, "--help")
    assert code == 0
    assert "example" in out and "personalab " + argv[0] in out


def test_subprocess_validate_bad_dir_has_no_traceback(make_dataset):
    bad = make_dataset(examples=[json.dumps({"persona_id": "a", "input": "x"})])
    env = dict(os.environ, PYTHONPATH=str(Path(cli_main.__file__).resolve().parents[2]))
    result = subprocess.run([sys.executable, "-m", "personalab.cli.main", "validate", str(bad)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert "examples.jsonl:1: missing required field 'output'" in result.stderr
    assert "Traceback" not in result.stderr
