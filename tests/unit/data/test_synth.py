"""The synthetic generator: deterministic, valid, and with the latent structure it promises."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import pytest

from personalab.data import load_dataset, write_dataset
from personalab.data.synth import ATTRIBUTE_POOLS, CHOICES, ITEMS, SynthConfig, synthesize
from personalab.errors import PersonalabError

SEPARATED = SynthConfig(n_personas=32, separation=1.0, deviation=0.1, seed=3)
UNSEPARATED = SynthConfig(n_personas=32, separation=0.0, deviation=0.1, seed=3)


def agreement(config: SynthConfig) -> tuple[float, float]:
    """How often two personas give the same label to a shared input: (same group, across)."""
    _, personas, examples = synthesize(config)
    group = {p.persona_id: p.attributes["latent_group"] for p in personas}
    labels: dict[str, dict[str, str]] = defaultdict(dict)
    for example in examples:
        labels[example.persona_id][example.input] = example.output
    tallies = {True: [0, 0], False: [0, 0]}  # same group? -> [agreements, shared inputs]
    for a, b in itertools.combinations(labels, 2):
        shared = labels[a].keys() & labels[b].keys()
        tally = tallies[group[a] == group[b]]
        tally[0] += sum(labels[a][i] == labels[b][i] for i in shared)
        tally[1] += len(shared)
    return tallies[True][0] / tallies[True][1], tallies[False][0] / tallies[False][1]


def test_same_config_same_dataset_other_seed_other_dataset():
    assert synthesize(SEPARATED) == synthesize(SEPARATED)
    other = synthesize(SynthConfig(n_personas=32, separation=1.0, deviation=0.1, seed=4))
    assert other[2] != synthesize(SEPARATED)[2]


def test_shape_and_validity(tmp_path):
    config = SynthConfig(n_personas=10, n_groups=3, examples_per_persona=25, seed=1)
    spec, personas, examples = synthesize(config)
    write_dataset(tmp_path, spec, personas, examples)
    dataset = load_dataset(tmp_path)  # the generator's output passes every rule
    assert len(dataset.personas) == 10 and len(dataset.examples) == 250
    assert dataset.spec.choices == CHOICES
    assert Counter(p.attributes["latent_group"] for p in personas) == {0: 4, 1: 3, 2: 3}
    assert all(e.split == d.split for e, d in zip(examples, dataset.examples))


def test_inputs_are_distinct_per_persona_and_shared_across_personas():
    _, personas, examples = synthesize(SEPARATED)
    per_persona = Counter((e.persona_id, e.input) for e in examples)
    assert max(per_persona.values()) == 1
    assert max(Counter(e.input for e in examples).values()) > 1


def test_inputs_and_profiles_are_readable_sentences():
    _, personas, examples = synthesize(SEPARATED)
    for text in [e.input for e in examples[:50]] + [p.profile for p in personas]:
        assert text[0].isupper() and text.endswith(".") and len(text.split()) >= 5
    persona = personas[0]
    assert persona.profile.startswith(f"{persona.attributes['name']} is a")
    assert f"from {persona.attributes['city']}" in persona.profile


def test_separated_groups_agree_within_and_differ_across():
    within, across = agreement(SEPARATED)
    assert within > 0.85
    assert within - across > 0.25


def test_unseparated_groups_mean_nothing():
    within, across = agreement(UNSEPARATED)
    assert abs(within - across) < 0.08


def test_separation_zero_still_gives_each_persona_a_consistent_taste():
    _, _, examples = synthesize(UNSEPARATED)
    topic_of = dict((sentence, topic) for topic, sentence in ITEMS)
    votes: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for example in examples:
        votes[example.persona_id, topic_of[example.input]][example.output] += 1
    majority = sum(max(c.values()) for c in votes.values()) / len(examples)
    assert majority > 0.9  # labels follow the persona's own topic preferences


@pytest.mark.parametrize("attribute", sorted(ATTRIBUTE_POOLS))
def test_profile_attributes_follow_the_group_only_when_separated(attribute):
    def groups_per_value(config: SynthConfig) -> int:
        _, personas, _ = synthesize(config)
        seen: dict[str, set[int]] = defaultdict(set)
        for persona in personas:
            seen[persona.attributes[attribute]].add(persona.attributes["latent_group"])
        return max(len(groups) for groups in seen.values())

    assert groups_per_value(SEPARATED) == 1  # each group draws from its own pool
    assert groups_per_value(UNSEPARATED) > 1  # values shared across groups


def test_every_persona_has_train_rows_even_with_few_examples():
    _, personas, examples = synthesize(SynthConfig(n_personas=40, examples_per_persona=1))
    assert {e.persona_id for e in examples if e.split == "train"} == {
        p.persona_id for p in personas}


@pytest.mark.parametrize("field,value,message", [
    ("separation", 1.5, "separation must be in"),
    ("deviation", -0.1, "deviation must be >= 0"),
    ("n_personas", 0, "n_personas must be >= 1"),
    ("n_groups", 0, "n_groups must be >= 1"),
    ("examples_per_persona", len(ITEMS) + 1, "examples_per_persona must be in"),
    ("label_noise", 0.7, "label_noise must be in"),
])
def test_bad_config_is_a_clear_error(field, value, message):
    with pytest.raises(PersonalabError, match=message):
        SynthConfig(**{field: value})
