"""Persona vectors with the real embedded MiniLM: sources, train-only, cold start, fallbacks.

The texts come from the synthetic generator's fixed pool, so the session cache embeds them
once for every test that uses them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from personalab.data.schema import Dataset, DatasetSpec, Example
from personalab.data.synth import SynthConfig, synthesize
from personalab.embed import embed_persona, embed_texts, label_set, persona_embeddings
from personalab.errors import PersonalabError


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    spec, personas, examples = synthesize(SynthConfig(n_personas=6, n_groups=2, seed=5))
    return Dataset(spec, {p.persona_id: p for p in personas}, examples)


def replaced(dataset: Dataset, index: int, **changes) -> Dataset:
    examples = list(dataset.examples)
    examples[index] = dataclasses.replace(examples[index], **changes)
    return Dataset(dataset.spec, dataset.personas, examples)


def first_index(dataset: Dataset, split: str) -> int:
    return next(i for i, e in enumerate(dataset.examples) if e.split == split)


@pytest.mark.parametrize("source", ["profile", "inputs", "both"])
def test_one_unit_row_per_persona(dataset, source):
    result = persona_embeddings(dataset, source=source)
    assert result.ids == list(dataset.personas) and result.source == source
    assert result.matrix.dtype == np.float32 and len(result.matrix) == len(dataset.personas)
    np.testing.assert_allclose(np.linalg.norm(result.matrix, axis=1), 1.0, rtol=1e-5)
    assert result.model == "all-MiniLM-L6-v2"


def test_profile_source_is_the_profile_embedding(dataset):
    result = persona_embeddings(dataset, source="profile")
    profiles = [p.profile for p in dataset.personas.values()]
    np.testing.assert_array_equal(result.matrix, embed_texts(profiles))


def test_inputs_use_only_train_rows(dataset):
    before = persona_embeddings(dataset, source="both").matrix
    for split in ("val", "test"):
        index = first_index(dataset, split)
        flipped = {"like": "dislike", "dislike": "like"}[dataset.examples[index].output]
        other = replaced(dataset, index, input="A completely different sentence about tax law.",
                         output=flipped)
        np.testing.assert_array_equal(persona_embeddings(other, source="both").matrix, before)
    # ... while a train row does count (so the check above could fail)
    index = first_index(dataset, "train")
    other = replaced(dataset, index, input="A completely different sentence about tax law.")
    changed = persona_embeddings(other, source="both").matrix
    row = list(dataset.personas).index(dataset.examples[index].persona_id)
    assert not np.allclose(changed[row], before[row])


def test_label_contrast_has_one_block_per_label(dataset):
    result = persona_embeddings(dataset, source="inputs")
    assert result.labels == label_set(dataset) == ("dislike", "like")
    assert result.matrix.shape[1] == 2 * embed_texts(["x"]).shape[1]
    plain = persona_embeddings(dataset, source="inputs", with_outputs=False)
    assert plain.labels is None and plain.matrix.shape[1] == embed_texts(["x"]).shape[1]


def test_both_is_the_mean_of_the_two_cosines(dataset):
    profile = persona_embeddings(dataset, source="profile").matrix
    inputs = persona_embeddings(dataset, source="inputs").matrix
    both = persona_embeddings(dataset, source="both").matrix
    np.testing.assert_allclose(both @ both.T, (profile @ profile.T + inputs @ inputs.T) / 2,
                               atol=1e-5)


@pytest.mark.parametrize("source", ["profile", "inputs", "both"])
def test_a_new_persona_is_embedded_like_the_dataset(dataset, source):
    result = persona_embeddings(dataset, source=source)
    persona_id = result.ids[2]
    rows = [e for e in dataset.examples if e.persona_id == persona_id]  # val/test too
    profile = dataset.personas[persona_id].profile
    np.testing.assert_allclose(result.embed_new(profile, rows), result.row(persona_id),
                               atol=1e-6)


def test_without_train_rows_inputs_fall_back_to_the_profile(dataset):
    profile = dataset.personas["p0"].profile
    test_only = [Example("p0", "The bakery on the corner now sells bread.", "like", "test")]
    vector = embed_persona(profile, test_only, source="inputs", labels=("dislike", "like"))
    expected = np.tile(embed_texts([profile])[0], 2) / np.sqrt(2)
    np.testing.assert_allclose(vector, expected, atol=1e-6)


def test_a_persona_with_one_label_still_gets_a_direction(dataset):
    rows = [e for e in dataset.split("train") if e.persona_id == "p1"]
    same = [dataclasses.replace(e, output="like") for e in rows]
    vector = embed_persona("someone", same, source="inputs", labels=("dislike", "like"))
    assert np.isfinite(vector).all() and np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-5)
    assert not vector[: len(vector) // 2].any()  # nothing in the "dislike" block


def test_generation_datasets_embed_input_and_output_together(dataset):
    spec = DatasetSpec(name="gen", task="generation")
    two = {pid: dataset.personas[pid] for pid in ("p0", "p1")}  # fewer new texts to embed
    generation = Dataset(spec, two, [e for e in dataset.examples if e.persona_id in two])
    result = persona_embeddings(generation, source="inputs")
    assert result.labels is None
    rows = [e for e in dataset.split("train") if e.persona_id == result.ids[0]]
    mean = embed_texts([f"{e.input} => {e.output}" for e in rows]).mean(axis=0)
    np.testing.assert_allclose(result.matrix[0], mean / np.linalg.norm(mean), atol=1e-5)


def test_unknown_source_and_persona_are_user_errors(dataset):
    with pytest.raises(PersonalabError, match="unknown embedding source"):
        persona_embeddings(dataset, source="attributes")
    with pytest.raises(PersonalabError, match="no embedding for persona"):
        persona_embeddings(dataset, source="profile").row("nobody")
