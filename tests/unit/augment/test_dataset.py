"""augment_dataset: train rows only, val/test untouched and never leaked, deduplicated,
deterministic, and counted exactly in the report."""

from __future__ import annotations

import json
import random

import pytest

from personalab.augment import (
    AUGMENTERS,
    ContextNoiseAugmenter,
    DeleteAugmenter,
    SwapAugmenter,
    augment_dataset,
    build_augmenters,
    normalize,
)
from personalab.data.schema import Dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.errors import PersonalabError

EVAL = ("val", "test")


def synthetic_dataset() -> Dataset:
    spec, personas, examples = synthesize(SynthConfig(n_personas=6, examples_per_persona=20))
    return Dataset(spec, {p.persona_id: p for p in personas}, examples)


def added_rows(before: Dataset, after: Dataset):
    assert after.examples[: len(before.examples)] == before.examples  # originals untouched
    return after.examples[len(before.examples) :]


def check_counts(before: Dataset, after: Dataset, report) -> None:
    for stats in report.augmenters.values():
        assert stats.produced == stats.kept + stats.dropped
    assert len(added_rows(before, after)) == report.added == sum(
        s.kept for s in report.augmenters.values()
    )
    assert len(after.examples) == report.rows_after == report.rows_before + report.added
    assert after.split_counts()["train"] == before.split_counts()["train"] + report.added


def test_an_augmented_row_equal_to_a_val_input_is_dropped_and_counted(dataset_of):
    # Swapping the two words of "alpha beta" can only give "beta alpha": another persona's
    # val input (spelled differently: the comparison ignores case and spacing).
    dataset = dataset_of([("a", "alpha beta", "yes", "train"), ("b", "Beta   ALPHA", "no", "val")])
    augmented, report = augment_dataset(dataset, [SwapAugmenter()], copies=1)
    assert report.augmenters["swap"].produced == 1
    assert report.augmenters["swap"].leaks == 1
    assert report.augmenters["swap"].kept == 0
    assert augmented.examples == dataset.examples


def test_the_same_swap_is_kept_when_it_leaks_nothing(dataset_of):
    # The control for the test above: without the val row the swapped row is kept.
    dataset = dataset_of([("a", "alpha beta", "yes", "train"), ("b", "gamma", "no", "val")])
    augmented, report = augment_dataset(dataset, [SwapAugmenter()], copies=1)
    assert [e.input for e in added_rows(dataset, augmented)] == ["beta alpha"]
    assert report.augmenters["swap"].leaks == 0


def test_augmentation_never_touches_or_leaks_into_val_and_test():
    dataset = synthetic_dataset()
    augmenters = [SwapAugmenter(), DeleteAugmenter(), ContextNoiseAugmenter()]
    augmented, report = augment_dataset(dataset, augmenters, copies=2, seed=3)
    assert [e for e in augmented.examples if e.split in EVAL] == [
        e for e in dataset.examples if e.split in EVAL
    ]
    eval_inputs = {normalize(e.input) for e in dataset.examples if e.split in EVAL}
    new = added_rows(dataset, augmented)
    assert new and all(e.split == "train" for e in new)
    assert not [e for e in new if normalize(e.input) in eval_inputs]
    check_counts(dataset, augmented, report)


def test_duplicates_of_train_inputs_and_of_other_augmented_rows_are_dropped(dataset_of, fakes):
    rows = [("a", "first", "yes", "train"), ("a", "second", "no", "train"),
            ("a", "made up", "no", "train"), ("b", "first", "no", "train")]
    dataset = dataset_of(rows)
    augmented, report = augment_dataset(dataset, [fakes.Constant("Made  UP")], copies=1)
    # persona a: equal to its own train row "made up" (x2) or unchanged (the row itself);
    # persona b: new to b, so kept once.
    stats = report.augmenters["constant"]
    assert (stats.produced, stats.kept, stats.duplicates, stats.unchanged) == (4, 1, 2, 1)
    assert [(e.persona_id, e.input) for e in added_rows(dataset, augmented)] == [("b", "Made  UP")]

    dataset = dataset_of([("a", "one", "yes", "train"), ("a", "two", "no", "train")])
    _, report = augment_dataset(dataset, [fakes.Constant("three")], copies=2)
    assert (report.augmenters["constant"].kept, report.augmenters["constant"].duplicates) == (1, 3)


def test_copies_two_triples_the_train_split_and_keeps_persona_output_and_choices(dataset_of, fakes):
    dataset = dataset_of(
        [
            ("a", "x one", "yes", "train"),
            ("b", "x two", "no", "train"),
            ("a", "x three", "no", "test"),
        ]
    )
    augmented, report = augment_dataset(dataset, [fakes.Suffix()], copies=2)
    assert augmented.split_counts() == {"train": 6, "val": 0, "test": 1}
    for new in added_rows(dataset, augmented):
        original = next(e for e in dataset.examples if new.input.startswith(e.input + " #"))
        assert (new.persona_id, new.output, new.choices, new.split) == (
            original.persona_id, original.output, original.choices, "train"
        )
        assert new.example_id.startswith(f"{original.input}~aug:suffix:")
    ids = [e.example_id for e in added_rows(dataset, augmented)]
    assert len(set(ids)) == len(ids)
    assert augmented.personas is dataset.personas and augmented.spec is dataset.spec
    check_counts(dataset, augmented, report)


def test_copies_are_shared_between_augmenters(fakes):
    dataset = synthetic_dataset()
    one, two = fakes.Suffix("one"), fakes.Suffix("two")
    _, report = augment_dataset(dataset, [one, two], copies=2)
    train = dataset.split_counts()["train"]
    # two copies, two augmenters: each row gets one copy from each
    assert report.augmenters["one"].produced == report.augmenters["two"].produced == train
    assert one.calls == two.calls == 1  # one batched call per augmenter


def test_a_skipped_augmenter_leaves_its_share_to_the_others(fakes):
    dataset = synthetic_dataset()
    augmenters = [fakes.Suffix("on"), fakes.Suffix("off", available=False)]
    augmented, report = augment_dataset(dataset, augmenters)
    assert report.skipped == {"off": "turned off for the test"}
    assert report.augmenters["on"].kept == 2 * dataset.split_counts()["train"]
    assert report.augmenters["off"].produced == 0
    check_counts(dataset, augmented, report)


def test_result_does_not_depend_on_row_order_and_follows_the_seed():
    dataset = synthetic_dataset()
    names = ["swap", "delete", "context_noise"]
    first, _ = augment_dataset(dataset, names, seed=0)
    shuffled = list(dataset.examples)
    random.Random(1).shuffle(shuffled)
    reordered, _ = augment_dataset(Dataset(dataset.spec, dataset.personas, shuffled), names, seed=0)
    assert set(added_rows(dataset, first)) == set(reordered.examples[len(shuffled) :])
    again, _ = augment_dataset(dataset, names, seed=0)
    other, _ = augment_dataset(dataset, names, seed=1)
    assert again.examples == first.examples
    assert set(added_rows(dataset, other)) != set(added_rows(dataset, first))


def test_a_row_is_augmented_the_same_whatever_the_other_rows(dataset_of):
    rows = [
        ("a", "the quick brown fox jumps", "yes", "train"),
        ("b", "a lazy dog sleeps", "no", "train"),
    ]
    both, _ = augment_dataset(dataset_of(rows), ["swap", "delete"], seed=5)
    alone, _ = augment_dataset(dataset_of(rows[:1]), ["swap", "delete"], seed=5)
    assert set(alone.examples[1:]) <= set(both.examples[2:])


def test_report_is_plain_data_and_says_what_happened():
    dataset = synthetic_dataset()
    _, report = augment_dataset(dataset, ["swap", "paraphrase"], copies=2, seed=0)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["train_rows"] == dataset.split_counts()["train"]
    assert data["augmenters"]["swap"]["produced"] == 2 * data["train_rows"]
    assert data["rows_after"] == data["rows_before"] + data["added"]
    assert "paraphrase model" in data["augmenters"]["paraphrase"]["skipped"]
    assert "skipped" in report.summary() and "swap: produced" in report.summary()


def test_zero_copies_changes_nothing(fakes):
    dataset = synthetic_dataset()
    augmented, report = augment_dataset(dataset, [fakes.Suffix()], copies=0)
    assert augmented.examples == dataset.examples and report.added == 0


def test_bad_arguments_are_user_errors(fakes):
    dataset = synthetic_dataset()
    with pytest.raises(PersonalabError, match="copies"):
        augment_dataset(dataset, ["swap"], copies=-1)
    with pytest.raises(PersonalabError, match="did you mean 'synonyms'"):
        augment_dataset(dataset, ["synonym"])
    with pytest.raises(PersonalabError, match="unique"):
        augment_dataset(dataset, ["swap", {"name": "swap", "rate": 0.3}])
    with pytest.raises(PersonalabError, match="rate"):
        build_augmenters([{"name": "delete", "rate": 2}])
    with pytest.raises(PersonalabError, match="unexpected keyword"):
        build_augmenters([{"name": "delete", "colour": "red"}])


def test_every_registered_augmenter_builds_by_name():
    built = build_augmenters(list(AUGMENTERS))
    assert [a.name for a in built] == list(AUGMENTERS)
