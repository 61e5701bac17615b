"""Validation: every kind of bad input is reported with its file, line and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from personalab.data import assign_split, load_dataset, validate_dataset, write_dataset
from personalab.data.atomic import atomic_write_jsonl, atomic_write_text
from personalab.data.schema import DatasetSpec, Example, Persona
from personalab.errors import DataError, Problem

A_TRAIN = {"persona_id": "a", "input": "x1", "output": "good", "split": "train"}
B_TRAIN = {"persona_id": "b", "input": "x1", "output": "bad", "split": "train"}


def problems_of(root: Path) -> list[Problem]:
    dataset, problems = validate_dataset(root)
    assert dataset is None, "a dataset with problems must not be returned"
    assert problems, "expected at least one problem"
    return problems


def assert_problem(problems: list[Problem], file: str, line: int | None, reason: str) -> None:
    """Some problem is in ``file`` at ``line`` and its text (as printed) contains ``reason``."""
    for problem in problems:
        text = str(problem)
        if Path(problem.file).name == file and problem.line == line and reason in text:
            assert (f"{file}:{line}" if line is not None else file) in text
            return
    listing = "\n".join(map(str, problems))
    raise AssertionError(f"no problem {file}:{line} with {reason!r} in:\n{listing}")


def test_the_tiny_dataset_is_valid(make_dataset):
    dataset, problems = validate_dataset(make_dataset())
    assert problems == []
    assert dataset.spec == DatasetSpec(name="tiny", choices=("bad", "good"))
    assert [e.input for e in dataset.examples] == ["x1", "x2", "x1", "x3"]  # file order
    assert dataset.examples[3].split == assign_split("b", "x3")  # absent split: hash rule
    assert dataset.personas["a"].profile == "A careful reader."
    assert dataset.personas["b"].profile == "age: 30, city: Lyon"  # rendered by default


# --- folder and dataset.yaml -----------------------------------------------------------------


def test_missing_folder(tmp_path):
    problems = problems_of(tmp_path / "nowhere")
    assert_problem(problems, "nowhere", None, "dataset folder not found")


def test_missing_file_is_reported_and_other_files_still_checked(make_dataset):
    root = make_dataset(examples=None, personas=[{"persona_id": ""}])
    problems = problems_of(root)
    assert_problem(problems, "examples.jsonl", None, "file not found")
    assert_problem(problems, "personas.jsonl", 1, "field 'persona_id' is empty")


def test_invalid_yaml(make_dataset):
    problems = problems_of(make_dataset(spec="name: tiny\nchoices: [bad, good\n"))
    assert any(p.line is not None for p in problems)
    assert_problem(problems, "dataset.yaml", 3, "invalid YAML")


def test_unknown_key_points_at_its_line(make_dataset):
    spec = "name: tiny\nchoices: [bad, good]\nlabels: [x]\n"
    assert_problem(problems_of(make_dataset(spec=spec)), "dataset.yaml", 3, "unknown key 'labels'")


def test_unknown_task(make_dataset):
    spec = "name: tiny\ntask: ranking\nchoices: [bad, good]\n"
    assert_problem(problems_of(make_dataset(spec=spec)), "dataset.yaml", 2, "task must be one of")


def test_classification_without_any_label_set(make_dataset):
    problems = problems_of(make_dataset(spec="name: tiny\n"))
    assert_problem(problems, "dataset.yaml", None, "needs a label set")
    assert_problem(problems, "dataset.yaml", None, "4 rows have none")


def test_row_choices_are_a_label_set_when_every_row_has_them(make_dataset):
    examples = [dict(e, choices=["bad", "good"]) for e in make_dataset.examples]
    dataset, problems = validate_dataset(make_dataset(spec="name: tiny\n", examples=examples))
    assert problems == []
    assert dataset.choices_for(dataset.examples[0]) == ("bad", "good")


def test_duplicate_choices(make_dataset):
    spec = "name: tiny\nchoices: [bad, good, bad]\n"
    assert_problem(problems_of(make_dataset(spec=spec)), "dataset.yaml", 2, "duplicate choices")


def test_empty_choice(make_dataset):
    spec = "name: tiny\nchoices: [bad, '']\n"
    assert_problem(problems_of(make_dataset(spec=spec)), "dataset.yaml", 2, "empty label")


def test_profile_template_naming_a_missing_attribute(make_dataset):
    spec = "name: tiny\nchoices: [bad, good]\nprofile_template: 'A {age} year old {job}'\n"
    problems = problems_of(make_dataset(spec=spec))
    assert_problem(problems, "personas.jsonl", 2, "names attribute 'job'")
    assert len(problems) == 1  # persona a has its own profile: the template is not used


def test_profile_template_renders_attributes(make_dataset):
    spec = "name: tiny\nchoices: [bad, good]\nprofile_template: 'Lives in {city}, {age}.'\n"
    dataset, problems = validate_dataset(make_dataset(spec=spec))
    assert problems == []
    assert dataset.personas["b"].profile == "Lives in Lyon, 30."


# --- row formats -----------------------------------------------------------------------------


def test_invalid_utf8_reports_the_line(make_dataset):
    examples = [A_TRAIN, B_TRAIN, b'{"persona_id": "a", "input": "caf\xe9", "output": "bad"}']
    assert_problem(problems_of(make_dataset(examples=examples)), "examples.jsonl", 3, "UTF-8")


def test_invalid_json(make_dataset):
    examples = [A_TRAIN, '{"persona_id": "b", "input": "x1",', B_TRAIN]
    problems = problems_of(make_dataset(examples=examples))
    assert_problem(problems, "examples.jsonl", 2, "invalid JSON")
    assert len(problems) == 1


def test_line_that_is_not_an_object(make_dataset):
    personas = [*make_dataset.personas, '["c", "a profile"]']
    problems = problems_of(make_dataset(personas=personas))
    assert_problem(problems, "personas.jsonl", 3, "expected a JSON object, got an array")


def test_blank_lines_are_skipped_and_line_numbers_stay_true(make_dataset):
    examples = ["", A_TRAIN, "   ", B_TRAIN, "", {"persona_id": "a", "input": "x9"}]
    problems = problems_of(make_dataset(examples=examples))
    assert problems == [Problem(problems[0].file, 6, "missing required field 'output'")]


@pytest.mark.parametrize("field", ["persona_id", "input", "output"])
def test_missing_required_example_field(make_dataset, field):
    row = {k: v for k, v in A_TRAIN.items() if k != field}
    problems = problems_of(make_dataset(examples=[A_TRAIN, B_TRAIN, row]))
    assert_problem(problems, "examples.jsonl", 3, f"missing required field '{field}'")


def test_missing_persona_id_in_personas(make_dataset):
    personas = [*make_dataset.personas, {"profile": "no id"}]
    problems = problems_of(make_dataset(personas=personas))
    assert_problem(problems, "personas.jsonl", 3, "missing required field 'persona_id'")


def test_empty_required_field(make_dataset):
    examples = [A_TRAIN, B_TRAIN, dict(A_TRAIN, input="  ")]
    problems = problems_of(make_dataset(examples=examples))
    assert_problem(problems, "examples.jsonl", 3, "'input' is empty")


def test_wrong_type(make_dataset):
    examples = [A_TRAIN, B_TRAIN, dict(A_TRAIN, input="x5", output=1)]
    problems = problems_of(make_dataset(examples=examples))
    assert_problem(problems, "examples.jsonl", 3, "'output' must be a string, got a number")


def test_wrong_type_of_attributes(make_dataset):
    personas = [*make_dataset.personas, {"persona_id": "c", "attributes": ["old"]}]
    problems = problems_of(make_dataset(personas=personas))
    assert_problem(problems, "personas.jsonl", 3, "'attributes' must be an object")


def test_integer_persona_ids_are_read_as_strings(make_dataset):
    personas = [{"persona_id": 7, "profile": "p"}]
    examples = [{"persona_id": 7, "input": "x", "output": "good", "split": "train"}]
    dataset, problems = validate_dataset(make_dataset(personas=personas, examples=examples))
    assert problems == []
    assert list(dataset.personas) == ["7"] and dataset.examples[0].persona_id == "7"


def test_boolean_persona_id_is_not_an_id(make_dataset):
    personas = [*make_dataset.personas, {"persona_id": True}]
    problems = problems_of(make_dataset(personas=personas))
    assert_problem(problems, "personas.jsonl", 3, "'persona_id' must be a string")


# --- rules across rows -----------------------------------------------------------------------


def test_duplicate_persona_ids(make_dataset):
    personas = [*make_dataset.personas, {"persona_id": "a", "profile": "again"}]
    problems = problems_of(make_dataset(personas=personas))
    assert_problem(problems, "personas.jsonl", 3, "duplicate persona_id 'a' (first at line 1)")


def test_unknown_persona_id_in_examples(make_dataset):
    examples = [A_TRAIN, B_TRAIN, dict(A_TRAIN, persona_id="zed")]
    problems = problems_of(make_dataset(examples=examples))
    assert_problem(problems, "examples.jsonl", 3, "unknown persona_id 'zed'")


def test_split_outside_train_val_test(make_dataset):
    examples = [A_TRAIN, B_TRAIN, dict(A_TRAIN, input="x7", split="dev")]
    problems = problems_of(make_dataset(examples=examples))
    assert_problem(problems, "examples.jsonl", 3, "split 'dev' is not one of train, val, test")


def test_label_outside_the_dataset_label_set(make_dataset):
    examples = [A_TRAIN, B_TRAIN, dict(A_TRAIN, input="x7", output="great")]
    problems = problems_of(make_dataset(examples=examples))
    assert_problem(problems, "examples.jsonl", 3, "output 'great' is not in the label set")


def test_row_choices_replace_the_dataset_label_set(make_dataset):
    ok = dict(A_TRAIN, input="x7", output="great", choices=["meh", "great"])
    bad = dict(A_TRAIN, input="x8", output="good", choices=["meh", "great"])
    problems = problems_of(make_dataset(examples=[A_TRAIN, B_TRAIN, ok, bad]))
    assert problems == [Problem(problems[0].file, 4, problems[0].message)]
    assert "output 'good' is not in the label set ['meh', 'great']" in problems[0].message


def test_generation_tasks_have_no_label_set(make_dataset):
    examples = [A_TRAIN, dict(B_TRAIN, output="any free text")]
    dataset, problems = validate_dataset(
        make_dataset(spec="name: gen\ntask: generation\n", examples=examples)
    )
    assert problems == []
    assert dataset.examples[1].output == "any free text"


def test_exact_duplicate_rows(make_dataset):
    problems = problems_of(make_dataset(examples=[A_TRAIN, B_TRAIN, A_TRAIN]))
    assert_problem(problems, "examples.jsonl", 3, "duplicate row (same as line 1)")
    assert len(problems) == 1


def test_same_persona_and_input_in_two_splits(make_dataset):
    examples = [A_TRAIN, B_TRAIN, dict(A_TRAIN, output="bad", split="test")]
    problems = problems_of(make_dataset(examples=examples))
    assert_problem(problems, "examples.jsonl", 3, "in split 'test' and in split 'train' (line 1)")


def test_leak_through_hash_assigned_splits(make_dataset):
    # Two rows of one (persona, input) with different example ids may hash to two splits.
    rows = [dict(persona_id="a", input="same", output="good", example_id=str(i)) for i in range(9)]
    splits = {assign_split("a", str(i)) for i in range(9)}
    assert len(splits) > 1
    problems = problems_of(make_dataset(examples=[A_TRAIN, B_TRAIN, *rows]))
    assert any("a row may be in one split only" in p.message for p in problems)


def test_persona_with_no_train_rows(make_dataset):
    personas = [*make_dataset.personas, {"persona_id": "c", "profile": "new"}]
    only_val = {"persona_id": "c", "input": "x1", "output": "bad", "split": "val"}
    examples = [*make_dataset.examples, only_val]
    problems = problems_of(make_dataset(personas=personas, examples=examples))
    assert_problem(problems, "personas.jsonl", 3, "persona 'c' has no train rows")


def test_empty_dataset(make_dataset):
    problems = problems_of(make_dataset(personas=[], examples=[]))
    assert_problem(problems, "personas.jsonl", None, "no personas")
    assert_problem(problems, "examples.jsonl", None, "no examples")


def test_every_problem_is_collected_in_file_order(make_dataset):
    examples = [A_TRAIN, B_TRAIN, "not json", dict(A_TRAIN, persona_id="zed"), A_TRAIN]
    spec = "name: tiny\nchoices: [bad, good]\ncolour: blue\n"
    problems = problems_of(make_dataset(spec=spec, examples=examples))
    assert [(Path(p.file).name, p.line) for p in problems] == [
        ("dataset.yaml", 3), ("examples.jsonl", 3), ("examples.jsonl", 4), ("examples.jsonl", 5),
    ]


def test_load_dataset_raises_with_every_problem(make_dataset):
    with pytest.raises(DataError) as caught:
        load_dataset(make_dataset(examples=[A_TRAIN, B_TRAIN, A_TRAIN, "{"]))
    assert len(caught.value.problems) == 2
    assert "examples.jsonl:3: duplicate row" in str(caught.value)
    assert "examples.jsonl:4: invalid JSON" in str(caught.value)


def test_split_seed_changes_hash_assigned_splits(make_dataset):
    examples = [A_TRAIN, B_TRAIN, *({"persona_id": "a", "input": f"q{i}", "output": "bad"}
                                    for i in range(40))]
    seed0 = load_dataset(make_dataset(examples=examples))
    seed5 = load_dataset(make_dataset(spec="name: t\nchoices: [bad, good]\nsplit_seed: 5\n",
                                      examples=examples))
    assert [e.split for e in seed0.examples][2:] == [assign_split("a", f"q{i}") for i in range(40)]
    assert [e.split for e in seed5.examples] != [e.split for e in seed0.examples]


# --- write -> load ---------------------------------------------------------------------------


def test_write_then_load_round_trip(tmp_path):
    spec = DatasetSpec(name="round trip", choices=("non", "oui"), split_seed=3)
    personas = [Persona("p1", "Zoë from Zürich", {"age": 41, "city": "Zürich"}),
                Persona("p2", "Ana", {})]
    examples = [
        Example("p1", "Ça va ?", "oui", "train", example_id="e1"),
        Example("p2", "line\nbreak", "maybe", "train", choices=("maybe", "never")),
        Example("p2", "x", "non", "test"),
    ]
    root = write_dataset(tmp_path / "out", spec, personas, examples)
    assert sorted(p.name for p in root.iterdir()) == [
        "dataset.yaml", "examples.jsonl", "personas.jsonl"]  # no temp files left behind
    dataset = load_dataset(root)
    assert dataset.spec == spec
    assert list(dataset.personas.values()) == personas
    assert dataset.examples == examples
    assert dataset.root == str(root)


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "rows.jsonl"
    atomic_write_jsonl(target, [{"n": 1}])

    def rows_then_crash():
        yield {"n": 2}
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write_jsonl(target, rows_then_crash())
    assert target.read_text(encoding="utf-8") == '{"n": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]
    atomic_write_text(target, "replaced\n")
    assert target.read_text(encoding="utf-8") == "replaced\n"
