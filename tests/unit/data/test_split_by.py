"""The split setting ``split_by`` (row / item / persona): the rule, dataset.yaml, validation
and the importers. ``row`` must stay exactly the rule it was before the setting existed."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from personalab.data import assign_split, load_dataset, validate_dataset
from personalab.data.importers.csv_import import CsvMapping, import_csv
from personalab.data.importers.popquorn import import_popquorn
from personalab.data.splits import SPLIT_BY, check_split_by, split_hash, split_key
from personalab.errors import DataError, PersonalabError

REPO_ROOT = Path(__file__).resolve().parents[3]
POPQUORN_CSV = REPO_ROOT / ".." / "shared" / "data" / "popquorn" / "offensiveness.csv"
needs_popquorn = pytest.mark.skipif(
    not POPQUORN_CSV.is_file(), reason=f"POPQUORN data not found at {POPQUORN_CSV}"
)
POPQUORN_HEADER = ["instance_id", "user_id", "text", "offensiveness",
                   "gender", "race", "age", "occupation", "education"]
DEMOGRAPHICS = ["Woman", "Asian", "25-29", "Student", "College degree"]
KEYS = [(f"persona{i % 97}", f"item {i}") for i in range(5000)]


def published_split(persona_id: str, key: str) -> str:
    """BENCHMARK.md section 1, written out independently of the library."""
    h = int(hashlib.sha256(f"{persona_id}:{key}".encode()).hexdigest()[:8], 16) / 2**32
    return "train" if h < 0.6 else "val" if h < 0.8 else "test"


def shares(splits) -> dict[str, float]:
    counts = Counter(splits)
    return {name: counts[name] / sum(counts.values()) for name in ("train", "val", "test")}


# --- the rule --------------------------------------------------------------------------------


def test_row_is_the_rule_it_always_was():
    for persona, key in KEYS[:1000]:
        expected = published_split(persona, key)
        assert assign_split(persona, key) == expected
        assert assign_split(persona, key, split_by="row") == expected
    for seed in (1, 7):  # other seeds: what the default gave before the setting existed
        row = [assign_split(p, k, seed=seed, split_by="row") for p, k in KEYS[:500]]
        assert row == [assign_split(p, k, seed=seed) for p, k in KEYS[:500]]
    assert assign_split("0", "530", split_by="row") == "test"  # sha256("0:530") -> 0.828


def test_item_ignores_the_persona_and_persona_ignores_the_key():
    for _, key in KEYS[:300]:
        assert len({assign_split(f"p{i}", key, split_by="item") for i in range(12)}) == 1
    for persona, _ in KEYS[:97]:
        assert len({assign_split(persona, f"k{i}", split_by="persona") for i in range(12)}) == 1
    # One hashing implementation: item and persona hash "item:<key>" and "persona:<id>".
    digest = hashlib.sha256(b"item:530").hexdigest()
    assert split_hash("item", "530") == int(digest[:8], 16) / 2**32
    assert assign_split("u", "530", split_by="item") == assign_split("item", "530")
    by_persona = assign_split("7", "x", split_by="persona", seed=3)
    assert by_persona == assign_split("persona", "7", seed=3)


@pytest.mark.parametrize("split_by", SPLIT_BY)
def test_fractions_hold_for_every_setting(split_by):
    # Distinct units: for "persona" the persona ids must vary, for "item" the keys.
    units = [(f"persona {i}", f"item {i}") for i in range(4000)]
    share = shares(assign_split(p, k, split_by=split_by) for p, k in units)
    assert share == pytest.approx({"train": 0.6, "val": 0.2, "test": 0.2}, abs=0.025)
    custom = shares(assign_split(p, k, val=0.1, test=0.3, split_by=split_by) for p, k in units)
    assert custom == pytest.approx({"train": 0.6, "val": 0.1, "test": 0.3}, abs=0.025)


@pytest.mark.parametrize("bad", ["rows", "Item", "", 3, None])
def test_bad_setting_is_a_clear_error(bad):
    with pytest.raises(PersonalabError, match="split_by must be one of row, item, persona"):
        assign_split("a", "b", split_by=bad)
    with pytest.raises(PersonalabError, match="split_by must be one of row, item, persona"):
        check_split_by(bad)


def test_bad_setting_suggests_the_close_one():
    with pytest.raises(PersonalabError, match="got 'rows'; did you mean 'row'"):
        check_split_by("rows")


# --- dataset.yaml and validation ---------------------------------------------------------------


def rated_by_many(n_personas: int = 6, n_inputs: int = 30, split=None) -> list[dict]:
    """Every persona rates every input: the case where row splits leak inputs."""
    rows = []
    for i in range(n_inputs):
        for p in range(n_personas):
            row = {"persona_id": f"p{p}", "input": f"text {i}", "output": "good" if (i + p) % 2
                   else "bad"}
            rows.append(row if split is None else dict(row, split=split(p, i)))
    return rows


def personas_for(n_personas: int = 6) -> list[dict]:
    return [{"persona_id": f"p{p}", "profile": f"reader {p}"} for p in range(n_personas)]


def spec_with(split_by: str | None) -> str:
    line = f"split_by: {split_by}\n" if split_by is not None else ""
    return "name: many\nchoices: [bad, good]\n" + line


def test_no_key_means_row(make_dataset):
    dataset = load_dataset(make_dataset())
    assert dataset.split_by == "row" and dataset.spec.split_by == "row"
    assert dataset.examples[3].split == published_split("b", "x3")


def test_item_setting_assigns_missing_splits_by_item(make_dataset):
    dataset = load_dataset(make_dataset(spec=spec_with("item"), personas=personas_for(),
                                        examples=rated_by_many()))
    assert dataset.split_by == "item"
    by_input = defaultdict(set)
    for example in dataset.examples:
        by_input[example.input].add(example.split)
        assert example.split == assign_split("anyone", example.input, split_by="item")
    assert all(len(splits) == 1 for splits in by_input.values())
    train_inputs = {e.input for e in dataset.split("train")}
    assert train_inputs and not train_inputs & {e.input for e in dataset.split("test")}
    assert not train_inputs & {e.input for e in dataset.split("val")}


def test_persona_setting_accepts_personas_without_train_rows(make_dataset):
    root = make_dataset(spec=spec_with("persona"), personas=personas_for(12),
                        examples=rated_by_many(12, 5))
    dataset, problems = validate_dataset(root)
    assert problems == [] and dataset.split_by == "persona"
    by_persona = defaultdict(set)
    for example in dataset.examples:
        by_persona[example.persona_id].add(example.split)
    assert all(len(splits) == 1 for splits in by_persona.values())
    assert {s for splits in by_persona.values() for s in splits} > {"train"}  # some cold ones


@pytest.mark.parametrize("split_by", [None, "row", "item"])
def test_other_settings_still_reject_personas_without_train_rows(make_dataset, split_by):
    examples = rated_by_many(2, 4, split=lambda p, i: "train" if p == 0 else "test")
    dataset, problems = validate_dataset(make_dataset(spec=spec_with(split_by),
                                                      personas=personas_for(2), examples=examples))
    assert dataset is None
    assert any("persona 'p1' has no train rows" in str(p) for p in problems)


def test_item_setting_rejects_an_input_in_two_splits(make_dataset):
    examples = rated_by_many(2, 4, split=lambda p, i: "train" if p == 0 or i == 0 else "test")
    dataset, problems = validate_dataset(make_dataset(spec=spec_with("item"),
                                                      personas=personas_for(2), examples=examples))
    assert dataset is None
    leaks = [p for p in problems if "with split_by item an input is in one split" in p.message]
    assert [p.line for p in leaks] == [4, 6, 8]  # once per input, at its first row elsewhere
    assert "in split 'test' here but in split 'train' at line 3" in leaks[0].message


def test_persona_setting_rejects_a_persona_in_two_splits(make_dataset):
    examples = rated_by_many(2, 4, split=lambda p, i: "train" if p == 0 or i == 0 else "test")
    dataset, problems = validate_dataset(make_dataset(spec=spec_with("persona"),
                                                      personas=personas_for(2), examples=examples))
    assert dataset is None
    assert [str(p).split("examples.jsonl")[1] for p in problems] == [
        ":4: persona 'p1' has rows in split 'test' here and in split 'train' at line 2: "
        "with split_by persona all rows of a persona are in one split"]


def test_persona_setting_with_no_train_rows_at_all(make_dataset):
    examples = rated_by_many(2, 3, split=lambda p, i: "test")
    _, problems = validate_dataset(make_dataset(spec=spec_with("persona"),
                                                personas=personas_for(2), examples=examples))
    assert any("no train rows at all" in p.message for p in problems)


def test_bad_setting_in_dataset_yaml_names_file_key_and_values(make_dataset):
    dataset, problems = validate_dataset(make_dataset(spec=spec_with("comment")))
    assert dataset is None
    assert [str(p).split("dataset.yaml")[1] for p in problems] == [
        ":3: split_by must be one of row, item, persona, got 'comment'"]


# --- importers -------------------------------------------------------------------------------


def popquorn_like(tmp_path: Path) -> Path:
    """20 comments, each rated by 5 of 8 annotators."""
    path = tmp_path / "p.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(POPQUORN_HEADER)
        for item in range(20):
            for user in range(5):
                who = (item + user) % 8
                writer.writerow([100 + item, f"u{who}", f"comment {item}", f"{1 + who % 5}.0",
                                 *DEMOGRAPHICS])
    return path


def assert_items_held_out(dataset) -> None:
    splits_of = defaultdict(set)
    for example in dataset.examples:
        splits_of[example.example_id or example.input].add(example.split)
    assert all(len(splits) == 1 for splits in splits_of.values())
    train_inputs = {e.input for e in dataset.split("train")}
    assert not train_inputs & {e.input for e in dataset.examples if e.split != "train"}


def test_popquorn_default_writes_what_it_always_wrote(tmp_path):
    import_popquorn(popquorn_like(tmp_path), "binary", tmp_path / "d")
    assert (tmp_path / "d" / "dataset.yaml").read_text() == (
        "name: popquorn-offensiveness-binary\ntask: classification\nchoices:\n"
        "- not offensive\n- offensive\nsplit_seed: 0\n")
    dataset = load_dataset(tmp_path / "d")
    assert dataset.split_by == "row"
    assert all(e.split == published_split(e.persona_id, e.example_id) for e in dataset.examples)


def test_popquorn_by_item(tmp_path):
    summary = import_popquorn(popquorn_like(tmp_path), "binary", tmp_path / "d", split_by="item")
    assert "split_by: item\n" in (tmp_path / "d" / "dataset.yaml").read_text()
    dataset = load_dataset(tmp_path / "d")
    assert dataset.split_by == summary.split_by == "item"
    assert_items_held_out(dataset)
    assert summary.notes and summary.notes[0].startswith("split_by item: 20 distinct inputs")


def test_popquorn_by_persona(tmp_path):
    summary = import_popquorn(popquorn_like(tmp_path), "5way", tmp_path / "d",
                              split_by="persona")
    dataset = load_dataset(tmp_path / "d")
    assert dataset.split_by == "persona"
    assert all(e.split == assign_split(e.persona_id, "", split_by="persona")
               for e in dataset.examples)
    assert "personas have no train rows (cold start" in summary.notes[0]


def test_popquorn_bad_setting_writes_nothing(tmp_path):
    with pytest.raises(PersonalabError, match="split_by must be one of row, item, persona"):
        import_popquorn(popquorn_like(tmp_path), "binary", tmp_path / "d", split_by="comment")
    assert not (tmp_path / "d").exists()


@needs_popquorn
def test_real_popquorn_by_item_holds_out_whole_comments(tmp_path):
    summary = import_popquorn(POPQUORN_CSV, "binary", tmp_path / "d", split_by="item")
    dataset = load_dataset(tmp_path / "d")
    assert (summary.n_personas, summary.n_examples) == (262, 13036)
    assert_items_held_out(dataset)
    assert dataset.split_counts() == {"train": 7811, "val": 2233, "test": 2992}


def ratings_csv(tmp_path: Path) -> Path:
    """Six personas rate the same ten texts; no id column, so the text is the item."""
    path = tmp_path / "r.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["who", "text", "label"])
        for i in range(10):
            writer.writerows([f"w{p}", f"text {i}", "yes" if (i * p) % 3 else "no"]
                             for p in range(6))
    return path


def test_csv_default_writes_no_split_by_key(tmp_path):
    import_csv(ratings_csv(tmp_path), CsvMapping("who", "text", "label"), tmp_path / "d")
    assert "split_by" not in (tmp_path / "d" / "dataset.yaml").read_text()
    dataset = load_dataset(tmp_path / "d")
    assert all(e.split == published_split(e.persona_id, split_key(None, e.input))
               for e in dataset.examples)


def test_csv_by_item_uses_the_text_without_an_id_column(tmp_path):
    import_csv(ratings_csv(tmp_path), CsvMapping("who", "text", "label"), tmp_path / "d",
               split_by="item", split_seed=2)
    dataset = load_dataset(tmp_path / "d")
    assert (dataset.split_by, dataset.spec.split_seed) == ("item", 2)
    assert_items_held_out(dataset)
    assert {e.split for e in dataset.examples} == {"train", "val", "test"}


def test_csv_explicit_splits_that_break_the_setting_are_refused(tmp_path):
    source = tmp_path / "s.csv"
    source.write_text("who,text,label,part\na,hi,yes,train\nb,hi,no,test\nb,yo,no,train\n")
    mapping = CsvMapping("who", "text", "label", split_col="part")
    with pytest.raises(DataError, match="with split_by item an input is in one split"):
        import_csv(source, mapping, tmp_path / "d", split_by="item")


def test_csv_bad_setting_writes_nothing(tmp_path):
    with pytest.raises(PersonalabError, match="got 'items'; did you mean 'item'"):
        import_csv(ratings_csv(tmp_path), CsvMapping("who", "text", "label"), tmp_path / "d",
                   split_by="items")
    assert not (tmp_path / "d").exists()
