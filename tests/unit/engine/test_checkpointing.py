"""Gradient checkpointing under routed training: each checkpointed layer reruns in backward
with the routes of its own forward call, so the gradients are those of training without it."""

from __future__ import annotations

import pytest
import torch

from personalab.data.schema import Example
from personalab.engine import MultiLoraModel, Route
from personalab.engine.checkpointing import enable_checkpointing, is_checkpointing
from personalab.engine.layers import MultiLoraLinear
from personalab.models import build_backend
from personalab.models.base import ModelSpec
from personalab.train.fleet import new_lora_weights
from personalab.train.presets import resolve_settings
CHOICES = ("no", "yes")
PROFILES = {"ana": "a young teacher who likes jazz music", "bo": "an older farmer"}
TEXTS = ["I love this movie, the story is great", "the product arrived late and broken",
         "Is this comment rude?", "the weather is cold", "thank you for your help", "good morning"]
SETTINGS = resolve_settings(r=4, target_roles=("query", "value"))
ADAPTERS = ("p0", "p1", "p2")


def rows() -> list[Example]:
    return [Example("ana" if i % 2 else "bo", text, CHOICES[i % 2], "train") for i, text in enumerate(TEXTS)]


def routed_engine(model: str, dtype: str, checkpointing: bool):
    """A base model with three trainable adapters (B non-zero, so that A gets gradients too,
    dropout 0.1 on each: recomputation must redraw the same masks) and one route each."""
    spec = ModelSpec(name=model, dtype=dtype, gradient_checkpointing=checkpointing)
    backend = build_backend(spec, CHOICES, PROFILES)
    engine = MultiLoraModel(backend.model, backend.target_modules(SETTINGS.target_roles))
    for i, name in enumerate(ADAPTERS):
        weights = new_lora_weights(engine, backend.target_modules(SETTINGS.target_roles), SETTINGS, seed=i)
        generator = torch.Generator().manual_seed(100 + i)
        for lora in weights.values():
            lora.B.copy_(torch.randn(lora.B.shape, generator=generator) * 0.1)
        engine.add_adapter(name, weights, trainable=True, dropout=0.1)
    engine.set_routes([Route.single(name) for name in ADAPTERS])
    return backend, engine


def gradients(backend, engine, calls: list[int]) -> dict[str, torch.Tensor]:
    """The gradients of one routed training step (rows spread over the three adapters),
    counting the adapted layers' forward runs in ``calls``."""
    hooks = [m.register_forward_hook(lambda *_: calls.append(1)) for m in engine.modules()
             if isinstance(m, MultiLoraLinear)]
    engine.train()
    torch.manual_seed(0)  # adapter dropout
    batch = backend.collate(rows(), route_ids=[i % len(ADAPTERS) for i in range(len(rows()))])
    backend.loss(engine, batch).backward()
    for hook in hooks:
        hook.remove()
    return {name: p.grad.clone() for name, p in engine.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(("model", "dtype", "tolerance"), [
    ("tiny-causal-lm", "float32", 1e-5),
    # bfloat16 rounds each recomputed activation again where a reduction's order may differ.
    ("tiny-causal-lm", "bfloat16", 2e-2),
    ("tiny-classifier", "float32", 1e-5),
])
def test_checkpointing_on_and_off_give_the_same_gradients(model, dtype, tolerance):
    plain_calls, checkpointed_calls = [], []
    plain = gradients(*routed_engine(model, dtype, checkpointing=False), plain_calls)
    backend, engine = routed_engine(model, dtype, checkpointing=True)
    assert is_checkpointing(engine.model)
    checkpointed = gradients(backend, engine, checkpointed_calls)
    # Not vacuous: every adapted layer really ran again in backward.
    assert len(checkpointed_calls) == 2 * len(plain_calls)
    assert plain.keys() == checkpointed.keys() and len(plain) == 2 * len(ADAPTERS) * len(engine.layers)
    for name, gradient in plain.items():
        assert gradient.abs().sum() > 0, name
        scale = gradient.abs().max().item()
        torch.testing.assert_close(checkpointed[name], gradient, rtol=tolerance, atol=tolerance * scale,
                                   msg=lambda m: f"{name}: {m}")


def test_checkpointing_turned_on_after_wrapping_is_refused_until_the_engine_takes_it():
    backend, engine = routed_engine("tiny-causal-lm", "float32", checkpointing=False)
    enable_checkpointing(engine.model)  # behind the engine's back: reruns would lose routes
    engine.train()
    batch = backend.collate(rows(), route_ids=[0] * len(rows()))
    with pytest.raises(ValueError, match="enable_gradient_checkpointing"):
        backend.loss(engine, batch)
    engine.enable_gradient_checkpointing()
    backend.loss(engine, batch).backward()
    assert all(p.grad is not None for p in engine.adapter_parameters("p0"))


def test_an_unwrapped_base_keeps_checkpointing_without_the_engine():
    backend, engine = routed_engine("tiny-causal-lm", "float32", checkpointing=True)
    base = engine.unwrap()
    assert is_checkpointing(base)
    assert not any(isinstance(m, MultiLoraLinear) for m in base.modules())
    head = base.get_input_embeddings().weight.requires_grad_(True)
    base.train()
    backend.loss(base, backend.collate(rows())).backward()  # trains as a plain checkpointed model
    assert head.grad is not None and head.grad.abs().sum() > 0
