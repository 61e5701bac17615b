"""The split rule: stable, exactly BENCHMARK.md's hash for seed 0, and ~60/20/20."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from personalab.data.splits import assign_split, split_hash, split_key
from personalab.errors import PersonalabError

KEYS = [(f"persona{i % 97}", f"item {i}") for i in range(20_000)]


def test_known_values_for_fixed_strings():
    # sha256("0:530") starts with d4148e7c; POPQUORN user 0, instance 530 is a test row.
    assert split_hash("0", "530") == 0xD4148E7C / 2**32
    assert assign_split("0", "530") == "test"
    assert split_hash("7", "1280") == 0xCC335C69 / 2**32
    assert assign_split("7", "1280") == "val"
    assert split_hash("0", "530", seed=3) == 0x35E11DFB / 2**32  # sha256("3:0:530")
    assert assign_split("0", "530", seed=3) == "train"


def test_seed_zero_is_the_published_rule():
    for persona, key in KEYS[:500]:
        digest = hashlib.sha256(f"{persona}:{key}".encode()).hexdigest()
        h = int(digest[:8], 16) / 2**32
        expected = "train" if h < 0.6 else "val" if h < 0.8 else "test"
        assert assign_split(persona, key) == expected


def test_same_result_every_time():
    first = [assign_split(p, k) for p, k in KEYS[:2000]]
    second = [assign_split(p, k) for p, k in KEYS[:2000]]
    assert first == second


@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_proportions_are_about_60_20_20(seed):
    counts = Counter(assign_split(p, k, seed=seed) for p, k in KEYS)
    share = {split: n / len(KEYS) for split, n in counts.items()}
    assert share["train"] == pytest.approx(0.6, abs=0.015)
    assert share["val"] == pytest.approx(0.2, abs=0.015)
    assert share["test"] == pytest.approx(0.2, abs=0.015)


def test_other_seeds_give_other_assignments():
    seed0 = [assign_split(p, k) for p, k in KEYS[:1000]]
    seed1 = [assign_split(p, k, seed=1) for p, k in KEYS[:1000]]
    changed = sum(a != b for a, b in zip(seed0, seed1))
    assert 400 < changed < 700  # independent draws differ about 56% of the time


def test_custom_fractions():
    counts = Counter(assign_split(p, k, val=0.1, test=0.3) for p, k in KEYS)
    assert counts["train"] / len(KEYS) == pytest.approx(0.6, abs=0.015)
    assert counts["val"] / len(KEYS) == pytest.approx(0.1, abs=0.015)
    assert counts["test"] / len(KEYS) == pytest.approx(0.3, abs=0.015)
    assert {assign_split(p, k, val=0.0, test=0.0) for p, k in KEYS[:200]} == {"train"}


@pytest.mark.parametrize("val,test", [(-0.1, 0.2), (0.6, 0.5)])
def test_impossible_fractions_are_refused(val, test):
    with pytest.raises(PersonalabError, match="split fractions"):
        assign_split("a", "b", val=val, test=test)


def test_the_key_is_the_example_id_when_there_is_one():
    assert split_key("530", "some comment") == "530"
    assert split_key(None, "some comment") == "some comment"
