"""The POPQUORN email-rewriting importer: its counts on the real file (BENCHMARK.md section 6,
SOURCE.md), and on small hand-made files the dropped rows, persona ids, profiles and splits."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from personalab.data import assign_split, load_dataset
from personalab.data.importers.popquorn_rewrite import import_popquorn_rewrite
from personalab.errors import DataError

REPO_ROOT = Path(__file__).resolve().parents[3]
REWRITE_CSV = REPO_ROOT / ".." / "shared" / "data" / "popquorn" / "email_rewriting.csv"
HEADER = ["instance_id", "user_id", "original email", "revised email", "gender", "race", "age", "occupation",
          "education"]
WOMAN = ["Woman", "White", "", "Student", "College degree"]


def write_csv(path: Path, rows: list[list]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


@pytest.mark.skipif(not REWRITE_CSV.is_file(), reason=f"POPQUORN data not found at {REWRITE_CSV}")
def test_counts_on_the_real_file(tmp_path):
    summary = import_popquorn_rewrite(REWRITE_CSV, tmp_path / "out")
    dataset = load_dataset(tmp_path / "out")
    assert dataset.spec.task == "generation" and not dataset.spec.choices
    assert summary.n_personas == len(dataset.personas) == 227
    assert summary.n_examples == len(dataset.examples) == 2266
    assert "80 rows without a user_id dropped" in summary.notes[-1]
    assert sum(dataset.split_counts().values()) == 2266 and summary.split_counts == dataset.split_counts()
    rewriters = defaultdict(set)
    for example in dataset.examples:
        rewriters[example.input].add(example.persona_id)
    assert len(rewriters) == 1411 and sum(len(p) == 2 for p in rewriters.values()) == 855


def test_rows_personas_profiles_and_splits(tmp_path):
    rows = [[7, "0.0", "send it", "Could you send it?", *WOMAN],
            [7, "12.0", "send it", "Please send it, thanks.", "Man", "Asian", "", "Nurse", "PhD"],
            [8, "0.0", "call me", "Please call me.", *WOMAN],
            [9, "", "no one", "Nobody's rewrite", "", "", "", "", ""]]
    summary = import_popquorn_rewrite(write_csv(tmp_path / "r.csv", rows), tmp_path / "out")
    dataset = load_dataset(tmp_path / "out")
    assert sorted(dataset.personas) == ["0", "12"] and summary.n_examples == 3
    assert "1 row without a user_id dropped" in summary.notes[-1]
    assert dataset.personas["0"].profile == "gender: Woman, race: White, occupation: Student, education: College degree"
    first = dataset.examples[0]
    assert (first.input, first.output, first.example_id) == ("send it", "Could you send it?", "7")
    assert first.split == assign_split("0", "7")
    import_popquorn_rewrite(tmp_path / "r.csv", tmp_path / "items", split_by="item")
    by_item = load_dataset(tmp_path / "items")
    assert len({e.split for e in by_item.examples if e.example_id == "7"}) == 1  # a whole email held out


def test_an_annotator_with_two_profiles_is_an_error_naming_the_line(tmp_path):
    rows = [[1, "3.0", "a", "A.", *WOMAN], [2, "3.0", "b", "B.", "Man", *WOMAN[1:]]]
    with pytest.raises(DataError) as caught:
        import_popquorn_rewrite(write_csv(tmp_path / "r.csv", rows), tmp_path / "out")
    assert [p.line for p in caught.value.problems] == [3] and "annotator 3" in str(caught.value)
