"""Input vectors in the multi-LoRA engine, on both tiny backends: a row routed to a vector is
scored exactly as the model fed ``inputs_embeds = embed(ids) + v`` (what a server would do),
rows without one are untouched, gradients reach only the vectors the batch uses, and bad
tables or names are refused."""

from __future__ import annotations

import copy

import pytest
import torch

from personalab.data.schema import Example
from personalab.engine import LoraWeights, MultiLoraModel, Route
from personalab.models import CausalLMBackend, ClassifierBackend, ModelSpec

TEXTS = ["I love this movie", "the product arrived late and broken", "thank you for your help"]


@pytest.fixture(params=["classifier", "causal_lm"])
def backend(request, tiny_classifier_path, tiny_causal_lm_path):
    if request.param == "classifier":
        return ClassifierBackend(ModelSpec(name=str(tiny_classifier_path), with_profile=False), ("bad", "good"), {})
    return CausalLMBackend(ModelSpec(name=str(tiny_causal_lm_path), with_profile=False), ("no", "yes"), {})


def engine_with_adapter(backend) -> MultiLoraModel:
    """An engine over a copy of the base with one non-zero adapter "a" on the query layers."""
    model = copy.deepcopy(backend.model)
    engine = MultiLoraModel(model, backend.target_modules(["query"]))
    generator = torch.Generator().manual_seed(0)
    weights = {path: LoraWeights(torch.randn(2, layer.in_features, generator=generator) * 0.1,
                                 torch.randn(layer.out_features, 2, generator=generator) * 0.1, 1.0)
               for path, layer in engine.layers.items()}
    engine.add_adapter("a", weights)
    return engine


def rows_of(backend) -> list[Example]:
    return [Example(f"p{i}", text, backend.choices[0], "test") for i, text in enumerate(TEXTS)]


def vectors(engine, n: int, seed: int = 1) -> torch.Tensor:
    hidden = engine.model.get_input_embeddings().weight.shape[1]
    return torch.randn(n, hidden, generator=torch.Generator().manual_seed(seed)) * 0.5


def test_a_routed_vector_is_added_to_every_input_embedding(backend):
    engine = engine_with_adapter(backend)
    table = vectors(engine, 2)
    engine.set_input_vectors(["x", "y"], table)
    engine.set_routes([Route.single("a")] * 3, vectors=["x", None, "y"])
    rows = rows_of(backend)
    batch = backend.collate(rows, route_ids=[0, 1, 2])
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids", "position_ids") if k in batch}
    with torch.no_grad():
        routed = engine(**inputs, route_ids=batch["route_ids"]).logits
        # The same rows by hand: plain embeddings plus each row's vector, through the adapter alone.
        embedded = engine.model.get_input_embeddings()(inputs.pop("input_ids"))
        added = embedded + torch.stack([table[0], torch.zeros_like(table[0]), table[1]])[:, None, :]
        engine.set_routes([Route.single("a")] * 3)  # the same adapter, no vectors
        by_hand = engine(inputs_embeds=added, **inputs, route_ids=batch["route_ids"]).logits
        plain = engine(input_ids=batch["input_ids"], **inputs, route_ids=batch["route_ids"]).logits
    torch.testing.assert_close(routed, by_hand, rtol=1.3e-6, atol=1e-5)
    assert torch.equal(routed[1], plain[1])  # the row without a vector is exactly as before
    assert (routed[0] - plain[0]).abs().max() > 1e-3 and (routed[2] - plain[2]).abs().max() > 1e-3


def test_scores_through_the_backend_differ_by_vector_and_the_base_is_untouched(backend):
    engine = engine_with_adapter(backend)
    engine.set_input_vectors(["x"], vectors(engine, 1))
    rows = rows_of(backend)[:1] * 2
    engine.set_routes([Route.single("a"), Route.single("a")], vectors=["x", None])
    scores = backend.scores(engine, rows, route_ids=[0, 1])
    assert (scores[0] - scores[1]).abs().max() > 1e-3
    base = backend.scores(backend.model, rows[:1])
    unwrapped = engine.unwrap()
    torch.testing.assert_close(backend.scores(unwrapped, rows[:1]), base)  # the hook left with the engine


def test_gradients_reach_only_the_vectors_the_batch_routes_to(backend):
    engine = engine_with_adapter(backend)
    engine.set_input_vectors(["x", "y", "z"], trainable=True)  # zeros, as training starts
    engine.set_routes([Route.single("a")] * 3, vectors=["x", "z", None])
    engine.train()
    rows = rows_of(backend)[:2]
    backend.loss(engine, backend.collate(rows, route_ids=[0, 1])).backward()
    grad = engine.input_vectors.weight.grad
    assert grad[0].abs().sum() > 0 and grad[2].abs().sum() > 0  # x and z: zero vectors still learn
    assert torch.equal(grad[1], torch.zeros_like(grad[1]))  # y: no row routed to it
    names, table = engine.input_vector_table()
    assert names == ["x", "y", "z"] and torch.equal(table, torch.zeros_like(table))


def test_bad_tables_and_names_are_refused(backend):
    engine = engine_with_adapter(backend)
    with pytest.raises(ValueError, match="routes name input vectors but none are loaded"):
        engine.set_routes([Route.single("a")], vectors=["x"])
    with pytest.raises(ValueError, match="embedding size"):
        engine.set_input_vectors(["x"], torch.zeros(1, 3))
    with pytest.raises(ValueError, match="distinct"):
        engine.set_input_vectors(["x", "x"])
    engine.set_input_vectors(["x"])
    with pytest.raises(ValueError, match="no input vector 'w'"):
        engine.set_routes([Route.single("a")], vectors=["w"])
    with pytest.raises(ValueError, match="2 input vectors given for 1 routes"):
        engine.set_routes([Route.single("a")], vectors=["x", None])
