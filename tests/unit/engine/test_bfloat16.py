"""The engine over a bfloat16 base: a one-hot route equals PEFT with that adapter active, within
the rounding that bfloat16 itself brings (PEFT in bfloat16 against float32).

Stated tolerance: for each adapter, the largest |engine - PEFT| over all logits is at most the
largest |PEFT in bfloat16 - PEFT in float32| (measured: about half of it; on the tiny model's
logits of up to 11, 0.23-0.5 against 0.96-1.45). PEFT keeps its adapter float32 and
adds it to the 16-bit base output; the engine keeps frozen adapters in the base's dtype and
trainable ones in float32: their results differ by bfloat16 roundings of the same size as the
base's own, never by a missing or wrong adapter (which moves logits by much more: checked)."""

from __future__ import annotations

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model

from personalab.data.schema import Example
from personalab.engine import MultiLoraModel, Route, read_peft_adapter
from personalab.models import CausalLMBackend, ModelSpec

CHOICES = ("no", "yes")
PROFILES = {"ana": "a young teacher who likes jazz music", "bo": "an older farmer"}
TEXTS = ["I love this movie, the story is great", "the product arrived late and broken",
         "Is this comment rude?", "thank you for your help"]
ADAPTERS = {"first": dict(r=4, lora_alpha=8), "second": dict(r=2, lora_alpha=5)}
ROLES = ["query", "value"]


def build(path, dtype: str, folder):
    """A backend in ``dtype`` and PEFT with the adapters (B non-zero, shrunk as in test_model)."""
    backend = CausalLMBackend(ModelSpec(name=str(path), dtype=dtype), CHOICES, PROFILES)
    torch.manual_seed(0)  # the same adapters in both dtypes
    peft = None
    for name, settings in ADAPTERS.items():
        config = LoraConfig(target_modules=backend.target_modules(ROLES), init_lora_weights=False, **settings)
        if peft is None:
            peft = get_peft_model(copy.deepcopy(backend.model), config, adapter_name=name)
        else:
            peft.add_adapter(name, config)
    with torch.no_grad():
        for parameter_name, parameter in peft.named_parameters():
            if ".lora_B." in parameter_name:
                parameter.mul_(0.2)
    peft.save_pretrained(str(folder), selected_adapters=list(ADAPTERS))
    return backend, peft.eval()


def logits(backend, model, **kwargs) -> torch.Tensor:
    rows = [Example("ana" if i % 2 else "bo", text, CHOICES[i % 2], "train") for i, text in enumerate(TEXTS)]
    batch = backend.collate(rows)
    with torch.no_grad():
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kwargs).logits
    return out.float()


@pytest.mark.parametrize("trainable", [False, True])
def test_one_hot_routes_match_peft_in_bfloat16_within_bfloat16_rounding(tiny_causal_lm_path, tmp_path, trainable):
    half, half_peft = build(tiny_causal_lm_path, "bfloat16", tmp_path / "half")
    full, full_peft = build(tiny_causal_lm_path, "float32", tmp_path / "full")
    engine = MultiLoraModel(copy.deepcopy(half.model), half.target_modules(ROLES))
    for name in ADAPTERS:
        engine.add_adapter(name, read_peft_adapter(tmp_path / "half" / name), trainable=trainable)
    engine.set_routes([Route.single(name) for name in ADAPTERS])
    base = logits(half, half.model)
    for index, name in enumerate(ADAPTERS):
        half_peft.set_adapter(name)
        full_peft.set_adapter(name)
        want = logits(half, half_peft)
        got = logits(half, engine, route_ids=torch.full((len(TEXTS),), index))
        bfloat16_error = (want - logits(full, full_peft)).abs().max().item()
        assert (got - want).abs().max().item() <= bfloat16_error, name
        assert (want - base).abs().max().item() > 3 * bfloat16_error, name  # the adapter acts: not vacuous
