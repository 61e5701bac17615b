"""Shared prompt prefixes: a route's rows run their common beginning once, and the losses and
gradients are those of the full rows."""

from __future__ import annotations

import pytest
import torch

from personalab.data.schema import Example
from personalab.engine import MultiLoraModel, Route
from personalab.models import CausalLMBackend, ModelSpec
from personalab.models.shared_prefix import is_split
from personalab.train.fleet import new_lora_weights
from personalab.train.presets import resolve_settings

CHOICES = ("no", "yes", "maybe not")
PROFILES = {"ana": "a young teacher who likes jazz music and long walks by the river",
            "bo": "an older farmer", "cy": "a nurse on night shifts who reads crime novels"}
INPUTS = ["Is this comment rude?", "The product arrived late and broken, so I want my money back.",
          "Is the weather cold?", "Would you go to a concert on a Tuesday night?"]
ROWS = [Example(p, text, CHOICES[(i + j) % 3], "train") for i, p in enumerate(PROFILES) for j, text in enumerate(INPUTS)]
ROUTES = [i for i, _ in enumerate(PROFILES) for _ in INPUTS]  # each persona its own route


@pytest.fixture(scope="module", params=["chat", "plain"])
def routed(request, tiny_causal_lm_path, tiny_plain_causal_lm_path):
    """A float64 engine with one random adapter per persona (B nonzero, so routes differ)."""
    path = tiny_causal_lm_path if request.param == "chat" else tiny_plain_causal_lm_path
    backend = CausalLMBackend(ModelSpec(name=str(path)), CHOICES, PROFILES)
    backend.model.double()
    engine = MultiLoraModel(backend.model, backend.target_modules(("query", "value")))
    settings = resolve_settings(r=4, target_roles=("query", "value"))
    for k, persona in enumerate(PROFILES):
        weights = new_lora_weights(engine, backend.target_modules(("query", "value")), settings, seed=k)
        for w in weights.values():
            w.B.normal_(0, 0.2, generator=torch.Generator().manual_seed(k))
        engine.add_adapter(persona, weights, trainable=True)
    engine.set_routes([Route.single(p) for p in PROFILES])
    engine.train()  # no dropout configured: training mode computes deterministically
    return backend, engine


def loss_and_gradients(backend, engine, share: bool):
    batch = backend.collate(ROWS, route_ids=ROUTES, share_prefixes=share)
    engine.zero_grad(set_to_none=True)
    sums, counts = backend.loss_terms(engine, batch)
    sums.sum().backward()
    return batch, sums.detach(), counts, [p.grad.clone() for p in engine.parameters() if p.requires_grad]


def test_a_split_batch_gives_the_losses_and_gradients_of_the_full_rows(routed):
    backend, engine = routed
    split, sums, counts, grads = loss_and_gradients(backend, engine, share=True)
    full, full_sums, full_counts, full_grads = loss_and_gradients(backend, engine, share=False)
    assert is_split(split) and not is_split(full)
    # The cross-entropy is taken in float32 (as in training): agreement to its rounding.
    torch.testing.assert_close(sums, full_sums, rtol=1e-6, atol=1e-6)
    assert torch.equal(counts, full_counts)
    assert all(g.abs().max() > 0 for g in full_grads[1::2])  # every adapter's B learns
    for mine, theirs in zip(grads, full_grads):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-6 * float(theirs.abs().max()))


def test_each_route_runs_its_prompt_beginning_once(routed):
    backend, _ = routed
    batch = backend.collate(ROWS, route_ids=ROUTES, share_prefixes=True)
    assert batch["prefix_ids"].shape[0] == len(PROFILES)
    assert batch["row_prefix"].tolist() == ROUTES
    for k, persona in enumerate(PROFILES):
        prompts = [backend.prompt_ids(row) for row in ROWS if row.persona_id == persona]
        prefix = batch["prefix_ids"][k][batch["prefix_attention_mask"][k].bool()].tolist()
        assert all(p[: len(prefix)] == prefix for p in prompts)  # shared by all its rows
        assert len({tuple(p[: len(prefix) + 1]) for p in prompts}) > 1  # and as long as can be
        assert any(t in backend.tokenizer.decode(prefix) for t in PROFILES[persona].split()[-2:])
    # The suffixes are what is left: far fewer tokens than the full rows.
    split_tokens = batch["prefix_ids"].numel() + batch["input_ids"].numel()
    assert split_tokens < 0.8 * backend.collate(ROWS)["input_ids"].numel()


def test_rows_that_share_no_first_token_or_have_no_routes_are_not_split(routed):
    backend, _ = routed
    assert not is_split(backend.collate(ROWS, share_prefixes=True))  # no routes: nothing to group by
    plain = CausalLMBackend(ModelSpec(name=str(backend.resolved.path)), CHOICES, PROFILES)
    plain.prompt_ids = lambda row: [len(row.input)] + [7] * 5  # first tokens differ within a route
    assert not is_split(plain.collate(ROWS, route_ids=ROUTES, share_prefixes=True))


def test_a_checkpointing_model_is_never_split(tiny_causal_lm_path):
    backend = CausalLMBackend(ModelSpec(name=str(tiny_causal_lm_path), gradient_checkpointing=True), CHOICES, PROFILES)
    assert not is_split(backend.collate(ROWS, route_ids=ROUTES, share_prefixes=True))
