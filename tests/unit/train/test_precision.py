"""Training over a 16-bit base: adapters, heads, their gradients and AdamW's state stay float32;
a bfloat16 base trains and a fleet still equals training alone; float16 scales the loss."""

from __future__ import annotations

import pytest
import torch

from personalab.data.schema import Dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.engine import MultiLoraModel
from personalab.models import build_backend
from personalab.models.base import ModelSpec
from personalab.train.fleet import ExtraParameters, Fleet, Member, StepBudget, train_fleet
from personalab.train.head import head_parameters
from personalab.train.result import seed_everything
from personalab.train.precision import Precision, check_float32
from personalab.train.presets import resolve_settings

SETTINGS = resolve_settings(epochs=2, lr=5e-3, batch_size=4, dropout=0.0, patience=2)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    spec, personas, examples = synthesize(SynthConfig(n_personas=3, examples_per_persona=16, seed=1))
    return Dataset(spec, {p.persona_id: p for p in personas}, examples)


def members(dataset, ids):
    return [Member(f"persona/{pid}", [e for e in dataset.split("train") if e.persona_id == pid],
                   [e for e in dataset.split("val") if e.persona_id == pid]) for pid in ids]


def fleet(dataset, dtype: str, ids, model="tiny-causal-lm"):
    backend = build_backend(ModelSpec(name=model, dtype=dtype), dataset.spec.choices, dataset.profiles)
    for module in backend.model.modules():  # base dropout draws depend on who shares a batch
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    engine = MultiLoraModel(backend.model, backend.target_modules(SETTINGS.target_roles))
    return engine, train_fleet(backend, engine, members(dataset, ids), SETTINGS, seed=3, progress=False)


def test_a_bfloat16_base_trains_float32_adapters_and_the_loss_decreases(dataset):
    engine, results = fleet(dataset, "bfloat16", sorted(dataset.personas))
    assert {p.dtype for p in engine.model.parameters() if not p.requires_grad} == {torch.bfloat16}
    trainable = [p for p in engine.parameters() if p.requires_grad]
    assert trainable and {p.dtype for p in trainable} == {torch.float32}
    for name, result in results.items():
        assert result.val_loss[-1] < result.val_loss[0], name  # best epoch below the untrained adapter
        assert result.train_loss[-1] < result.train_loss[0], name


def first_step_gradient(dataset, ids, name):
    """``name``'s gradient in the first step of a bfloat16 fleet of ``ids`` (one step holds
    every member's first batch)."""
    backend = build_backend(ModelSpec(name="tiny-causal-lm", dtype="bfloat16"), dataset.spec.choices, dataset.profiles)
    engine = MultiLoraModel(backend.model, backend.target_modules(SETTINGS.target_roles))
    state = Fleet(backend, engine, members(dataset, ids), SETTINGS, seed=3, under=None)
    first = state.epoch_steps(list(state.members), StepBudget(rows=64, tokens=1 << 20))[0]
    assert {member for member, _ in first} == set(state.members)
    state.step(first)  # leaves the (clipped) gradients on the parameters
    return [p.grad.clone() for p in state.params[name]]


def test_in_bfloat16_a_members_gradient_in_a_fleet_equals_its_gradient_alone(dataset):
    # Gradients, not trained weights: AdamW moves every weight by about the learning rate
    # whatever its gradient's size, so bfloat16's rounding (8 bits: 4e-3 relative), which
    # differs with the rows that share a pass, flips near-zero gradients and the weights
    # trained from them diverge; one step's gradients agree to bfloat16 precision.
    ids = sorted(dataset.personas)
    name = f"persona/{ids[0]}"
    together, alone = first_step_gradient(dataset, ids, name), first_step_gradient(dataset, ids[:1], name)
    assert max(g.abs().max() for g in together) > 0  # (A's gradients are 0 while B is)
    for mine, theirs in zip(together, alone):
        assert (mine - theirs).abs().max() <= 0.02 * mine.abs().max()


def test_a_bfloat16_classifier_trains_its_float32_head_with_the_first_adapter(dataset):
    backend = build_backend(ModelSpec(name="tiny-classifier", dtype="bfloat16"), dataset.spec.choices,
                            dataset.profiles)
    head = head_parameters(backend)
    before = [p.detach().clone() for p in head]
    engine = MultiLoraModel(backend.model, backend.target_modules(SETTINGS.target_roles))
    unified = Member("unified", dataset.split("train"), dataset.split("val"),
                     extra=[ExtraParameters(head, SETTINGS.head_lr)])
    seed_everything(0)  # the tiny BERT's own dropout
    result = train_fleet(backend, engine, [unified], SETTINGS, seed=0, progress=False)["unified"]
    assert result.best_val_loss < 0.9 * result.val_loss[0]  # measured: 1.16 -> 1.04 after one epoch, 0.61 after two
    for parameter, start in zip(head, before):
        assert parameter.dtype == torch.float32 and not torch.equal(parameter, start)
    lora = engine.adapter_parameters("unified")
    assert lora and {p.dtype for p in lora} == {torch.float32}  # the adapter is float32 over a bf16 base


def half_model(dtype: torch.dtype) -> tuple[torch.nn.Module, torch.nn.Parameter]:
    model = torch.nn.Linear(4, 4).to(dtype).requires_grad_(False)
    model.adapter = torch.nn.Parameter(torch.ones(4))  # float32, as every trainable is
    return model, model.adapter


def test_only_a_float16_base_scales_the_loss():
    for dtype, scaled in ((torch.float32, False), (torch.bfloat16, False), (torch.float16, True)):
        model, parameter = half_model(dtype)
        assert (Precision(model, [parameter]).scaler is not None) == scaled, dtype


def test_float16_loss_scaling_unscales_before_clipping_and_skips_overflowing_steps():
    model, parameter = half_model(torch.float16)
    precision = Precision(model, [parameter])
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    precision.backward((parameter * 2.0).sum(), optimizer)
    assert torch.equal(parameter.grad, torch.full((4,), 2.0))  # the true gradient, ready to clip
    precision.step(optimizer)
    assert torch.allclose(parameter.detach(), torch.full((4,), 0.8))
    optimizer.zero_grad()
    scale = precision.scaler.get_scale()
    precision.backward((parameter * float("inf")).sum(), optimizer)
    precision.step(optimizer)
    assert torch.allclose(parameter.detach(), torch.full((4,), 0.8))  # the overflowing step is skipped
    assert precision.scaler.get_scale() < scale


def test_16_bit_trainable_parameters_are_refused():
    with pytest.raises(ValueError, match="float32"):
        check_float32([torch.nn.Parameter(torch.zeros(2, dtype=torch.bfloat16))])
