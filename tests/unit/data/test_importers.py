"""Importers: POPQUORN by the benchmark protocol, and generic CSV with a column mapping."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from personalab.data import assign_split, load_dataset
from personalab.data.importers.csv_import import CsvMapping, import_csv
from personalab.data.importers.popquorn import import_popquorn
from personalab.errors import DataError, PersonalabError

# The folder `shared` beside the repository root (never copied into the repository).
REPO_ROOT = Path(__file__).resolve().parents[3]
POPQUORN_CSV = REPO_ROOT / ".." / "shared" / "data" / "popquorn" / "offensiveness.csv"
needs_popquorn = pytest.mark.skipif(
    not POPQUORN_CSV.is_file(), reason=f"POPQUORN data not found at {POPQUORN_CSV}"
)
POPQUORN_HEADER = [
    "instance_id", "user_id", "text", "offensiveness",
    "gender", "race", "age", "occupation", "education",
]
DEMOGRAPHICS = ["Woman", "Asian", "25-29", "Student", "College degree"]


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# --- POPQUORN, the real file -----------------------------------------------------------------


@pytest.fixture(scope="module", params=["binary", "5way"])
def popquorn(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"popquorn-{request.param}")
    summary = import_popquorn(POPQUORN_CSV, request.param, out)
    return request.param, summary, load_dataset(out)


@needs_popquorn
def test_popquorn_counts_match_the_protocol(popquorn):
    task, summary, dataset = popquorn
    assert summary.n_personas == len(dataset.personas) == 262
    assert summary.n_examples == len(dataset.examples) == 13036
    assert dataset.split_counts() == {"train": 7751, "val": 2655, "test": 2630}
    assert summary.split_counts == dataset.split_counts()
    assert dataset.spec.name == f"popquorn-offensiveness-{task}"


@needs_popquorn
def test_popquorn_labels_match_source_counts(popquorn):
    task, summary, dataset = popquorn
    labels = Counter(e.output for e in dataset.examples)
    if task == "5way":  # SOURCE.md: 1: 7516, 2: 2190, 3: 1590, 4: 1039, 5: 701
        assert labels == {"1": 7516, "2": 2190, "3": 1590, "4": 1039, "5": 701}
        assert dataset.spec.choices == ("1", "2", "3", "4", "5")
    else:  # offensive = rating >= 2
        assert labels == {"not offensive": 7516, "offensive": 2190 + 1590 + 1039 + 701}
        assert dataset.spec.choices == ("not offensive", "offensive")
    assert summary.label_counts == dict(labels)


@needs_popquorn
def test_popquorn_personas_and_examples(popquorn):
    _, _, dataset = popquorn
    persona = dataset.personas["0"]
    assert persona.attributes == {
        "gender": "Man", "race": "White", "age": "35-39", "occupation": "Unemployed",
        "education": "High school diploma or equivalent",
    }
    assert persona.profile == (
        "gender: Man, race: White, age: 35-39, occupation: Unemployed, "
        "education: High school diploma or equivalent"
    )
    first = dataset.examples[0]  # file order is kept
    assert (first.persona_id, first.example_id) == ("0", "530")
    assert first.input.startswith("I think a lot of Dethklok songs")
    assert first.split == "test"  # sha256("0:530") -> 0.828
    assert all(e.split == assign_split(e.persona_id, e.example_id) for e in dataset.examples)


# --- POPQUORN, small hand-made files ---------------------------------------------------------


def test_popquorn_rule_on_a_small_file(tmp_path):
    rows = [[10, "u1", "fine", "1.0", *DEMOGRAPHICS], [11, "u1", "rude", "2.0", *DEMOGRAPHICS],
            [10, "u2", "fine", "5.0", *DEMOGRAPHICS]]
    rows += [[100 + i, user, f"filler {i}", "1.0", *DEMOGRAPHICS]
             for i in range(8) for user in ("u1", "u2")]
    source = write_csv(tmp_path / "p.csv", POPQUORN_HEADER, rows)
    import_popquorn(source, "binary", tmp_path / "binary")
    binary = load_dataset(tmp_path / "binary")
    assert [e.output for e in binary.examples[:3]] == ["not offensive", "offensive", "offensive"]
    import_popquorn(source, "5way", tmp_path / "5way")
    assert [e.output for e in load_dataset(tmp_path / "5way").examples[:3]] == ["1", "2", "5"]
    assert binary.examples[2].split == assign_split("u2", "10")


def test_popquorn_missing_file(tmp_path):
    with pytest.raises(PersonalabError, match="CSV file not found"):
        import_popquorn(tmp_path / "absent.csv", "binary", tmp_path / "out")


def test_popquorn_missing_column(tmp_path):
    header = [c for c in POPQUORN_HEADER if c != "offensiveness"]
    source = write_csv(tmp_path / "p.csv", header, [[1, "u", "t", *DEMOGRAPHICS]])
    with pytest.raises(PersonalabError) as caught:
        import_popquorn(source, "binary", tmp_path / "out")
    message = str(caught.value)
    assert "missing column 'offensiveness'" in message
    assert "available columns: 'instance_id', 'user_id', 'text'" in message


def test_popquorn_unparsable_rating_names_the_csv_line(tmp_path):
    rows = [[1, "u", "a comment\nover two lines", "1.0", *DEMOGRAPHICS],  # lines 2-3
            [2, "u", "b", "very", *DEMOGRAPHICS],  # line 4
            [3, "u", "c", "7", *DEMOGRAPHICS]]  # line 5: out of range
    source = write_csv(tmp_path / "p.csv", POPQUORN_HEADER, rows)
    with pytest.raises(DataError) as caught:
        import_popquorn(source, "5way", tmp_path / "out")
    assert [p.line for p in caught.value.problems] == [4, 5]
    assert "p.csv:4: cannot read rating 'very' in column 'offensiveness'" in str(caught.value)


def test_popquorn_unknown_task(tmp_path):
    with pytest.raises(PersonalabError, match="unknown POPQUORN task '3way'"):
        import_popquorn(tmp_path / "p.csv", "3way", tmp_path / "out")


# --- generic CSV -----------------------------------------------------------------------------

CSV_HEADER = ["who", "age", "city", "bio", "item", "text", "answer", "part"]


def ratings_csv(tmp_path: Path, extra_rows: list[list] = ()) -> Path:
    rows = [
        ["ann", "31", "Oslo", "Ann likes maps.", "i1", "first text", "good", "train"],
        ["ann", "31", "Oslo", "Ann likes maps.", "i2", "second text", "bad", ""],
        ["bob", "54", "Rome", "Bob bakes.", "i1", "first text", "bad", "train"],
        ["bob", "54", "Rome", "Bob bakes.", "i3", "third text", "meh", "test"],
        *extra_rows,
    ]
    return write_csv(tmp_path / "ratings.csv", CSV_HEADER, rows)


def test_csv_import_with_a_mapping(tmp_path):
    mapping = CsvMapping("who", "text", "answer", split_col="part", id_col="item",
                         attribute_cols=("age", "city"))
    summary = import_csv(ratings_csv(tmp_path), mapping, tmp_path / "out")
    dataset = load_dataset(tmp_path / "out")
    assert (summary.name, summary.n_personas, summary.n_examples) == ("ratings", 2, 4)
    assert dataset.spec.choices == ("bad", "good", "meh")  # sorted distinct outputs
    assert dataset.personas["bob"].attributes == {"age": "54", "city": "Rome"}
    assert dataset.personas["bob"].profile == "age: 54, city: Rome"
    assert [e.split for e in dataset.examples] == [
        "train", assign_split("ann", "i2"), "train", "test"]  # empty cell: hash of the id
    assert [e.example_id for e in dataset.examples] == ["i1", "i2", "i1", "i3"]


def test_csv_import_profile_column_choices_and_name(tmp_path):
    mapping = CsvMapping("who", "text", "answer", profile_col="bio")
    import_csv(ratings_csv(tmp_path), mapping, tmp_path / "out",
               choices=["meh", "bad", "good"], name="my ratings", split_seed=4)
    dataset = load_dataset(tmp_path / "out")
    assert dataset.personas["ann"].profile == "Ann likes maps."
    assert dataset.spec.choices == ("meh", "bad", "good")
    assert dataset.spec.name == "my ratings"
    assert dataset.examples[1].split == assign_split("ann", "second text", seed=4)


def test_csv_import_generation_task_has_no_label_set(tmp_path):
    mapping = CsvMapping("who", "text", "answer", split_col="part")
    import_csv(ratings_csv(tmp_path), mapping, tmp_path / "out", task="generation")
    assert load_dataset(tmp_path / "out").spec.choices is None


def test_csv_import_names_the_missing_column_and_lists_the_others(tmp_path):
    mapping = CsvMapping("user", "text", "label")
    with pytest.raises(PersonalabError) as caught:
        import_csv(ratings_csv(tmp_path), mapping, tmp_path / "out")
    message = str(caught.value)
    assert "missing columns 'user', 'label'" in message
    available = "'who', 'age', 'city', 'bio', 'item', 'text', 'answer', 'part'"
    assert f"available columns: {available}" in message
    assert not (tmp_path / "out").exists()  # nothing written


def test_csv_import_conflicting_persona_attributes(tmp_path):
    extra = [["ann", "32", "Oslo", "", "i9", "ninth text", "good", "train"]]  # line 6
    mapping = CsvMapping("who", "text", "answer", attribute_cols=("age",))
    with pytest.raises(DataError) as caught:
        import_csv(ratings_csv(tmp_path, extra), mapping, tmp_path / "out")
    assert "ratings.csv:6: persona 'ann' has a different profile or attributes than at line 2" in (
        str(caught.value))


def test_csv_import_of_data_that_breaks_a_rule_is_reported(tmp_path):
    extra = [["bob", "54", "Rome", "", "i3", "third text", "meh", "val"]]  # same input, 2 splits
    mapping = CsvMapping("who", "text", "answer", split_col="part")
    with pytest.raises(DataError, match="examples.jsonl:5: .*a row may be in one split only"):
        import_csv(ratings_csv(tmp_path, extra), mapping, tmp_path / "out")
