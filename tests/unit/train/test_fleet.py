"""Fleet training: many adapters in shared passes, each as if trained alone."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import get_linear_schedule_with_warmup

from personalab.data.synth import SynthConfig, synthesize
from personalab.data.schema import Dataset
from personalab.engine import MultiLoraModel, Route
from personalab.models import build_backend
from personalab.models.base import ModelSpec
from personalab.models.batching import shuffled_length_grouped_batches
from personalab.train.fleet import ExtraParameters, Fleet, Member, StepBudget, member_seed, new_lora_weights, train_fleet
from personalab.train.head import head_parameters
from personalab.train.presets import resolve_settings

SETTINGS = resolve_settings(epochs=2, lr=5e-3, batch_size=4, dropout=0.0, patience=2)


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    spec, personas, examples = synthesize(SynthConfig(n_personas=4, examples_per_persona=16, seed=1))
    return Dataset(spec, {p.persona_id: p for p in personas}, examples)


def members(dataset, ids):
    return [Member(f"persona/{pid}", [e for e in dataset.split("train") if e.persona_id == pid],
                   [e for e in dataset.split("val") if e.persona_id == pid]) for pid in ids]


def engine_for(dataset, model="tiny-classifier"):
    backend = build_backend(ModelSpec(name=model), dataset.spec.choices, dataset.profiles)
    # The base model's own dropout draws masks from the global generator, in an order that
    # depends on who shares a batch; without it, alone and in a fleet must agree.
    for module in backend.model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return backend, MultiLoraModel(backend.model, backend.target_modules(SETTINGS.target_roles))


@pytest.mark.parametrize("model", ["tiny-classifier", "tiny-causal-lm"])
def test_an_adapter_trained_in_a_fleet_equals_it_trained_alone(dataset, model):
    ids = sorted(dataset.personas)
    backend, fleet_engine = engine_for(dataset, model)
    fleet = train_fleet(backend, fleet_engine, members(dataset, ids), SETTINGS, seed=3, progress=False)
    backend_alone, alone_engine = engine_for(dataset, model)
    alone = train_fleet(backend_alone, alone_engine, members(dataset, ids[:1]), SETTINGS, seed=3, progress=False)

    name = f"persona/{ids[0]}"
    # The curve records every epoch's weights (even if early stopping keeps an earlier one).
    assert fleet[name].val_loss[1] != fleet[name].val_loss[0]
    assert fleet[name].val_loss == pytest.approx(alone[name].val_loss, rel=1e-5)
    together, by_itself = fleet_engine.adapter_weights(name), alone_engine.adapter_weights(name)
    for path in together:
        torch.testing.assert_close(together[path].B, by_itself[path].B, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(together[path].A, by_itself[path].A, rtol=1e-4, atol=1e-6)


def test_rows_update_only_their_own_adapter_and_frozen_adapters_stay(dataset):
    ids = sorted(dataset.personas)
    backend, engine = engine_for(dataset)
    frozen = new_lora_weights(engine, backend.target_modules(SETTINGS.target_roles), SETTINGS, seed=9)
    frozen = {p: type(w)(A=w.A, B=torch.randn_like(w.B), scale=w.scale) for p, w in frozen.items()}
    engine.add_adapter("unified", frozen)
    idle = new_lora_weights(engine, backend.target_modules(SETTINGS.target_roles), SETTINGS, seed=5)
    engine.add_adapter("persona/idle", idle, trainable=True)

    results = train_fleet(backend, engine, members(dataset, ids[:2]), SETTINGS, seed=0,
                          under=Route.single("unified"), progress=False)

    for path, weights in engine.adapter_weights("unified").items():
        assert torch.equal(weights.A, frozen[path].A) and torch.equal(weights.B, frozen[path].B)
    for path, weights in engine.adapter_weights("persona/idle").items():
        assert torch.equal(weights.A, idle[path].A) and torch.equal(weights.B, idle[path].B)
    assert all(r.val_loss[1] != r.val_loss[0] for r in results.values())  # the members did train


def test_each_member_keeps_its_own_best_epoch(dataset):
    ids = sorted(dataset.personas)
    backend, engine = engine_for(dataset)
    settings = resolve_settings(epochs=3, lr=5e-2, batch_size=4, dropout=0.0, patience=1)
    results = train_fleet(backend, engine, members(dataset, ids), settings, seed=0, progress=False)
    for result in results.values():
        assert result.best_epoch == int(np.argmin(result.val_loss))  # the first epoch of least loss
        # trained on until `patience` epochs passed without a better one, or the epochs ran out
        assert len(result.train_loss) == min(settings.epochs, result.best_epoch + settings.patience)
    # at this learning rate some members overshoot and stop after two epochs while others go on
    assert sorted(len(r.train_loss) for r in results.values()) == [2, 2, 3, 3]


def test_a_member_with_its_own_recipe_equals_it_trained_alone_under_that_recipe(dataset):
    """A recipe grid trains as one fleet: a member carrying its own lr and epochs (and its
    persona's seed) ends exactly as that persona's adapter trained alone with those settings,
    while its copy under the fleet's recipe differs."""
    pid = sorted(dataset.personas)[0]
    plain = members(dataset, [pid])[0]
    own = Member("recipe1/" + plain.name, plain.train, plain.val, lr=1e-3, epochs=3, seed_key=plain.name)
    backend, engine = engine_for(dataset)
    grid = train_fleet(backend, engine, [plain, own], replace(SETTINGS, patience=3), seed=3, progress=False)
    backend_alone, alone_engine = engine_for(dataset)
    alone = train_fleet(backend_alone, alone_engine, [plain], replace(SETTINGS, lr=1e-3, epochs=3, patience=3),
                        seed=3, progress=False)

    assert len(grid[own.name].val_loss) == 4 and len(grid[plain.name].val_loss) == 3  # own epochs each
    assert grid[own.name].val_loss == pytest.approx(alone[plain.name].val_loss, rel=1e-5)
    recipe, by_itself, fleet_recipe = (engine.adapter_weights(own.name), alone_engine.adapter_weights(plain.name),
                                       engine.adapter_weights(plain.name))
    for path in recipe:
        torch.testing.assert_close(recipe[path].B, by_itself[path].B, rtol=1e-4, atol=1e-6)
    assert grid[own.name].best_epoch > 0  # it moved from where it started
    assert any(not torch.allclose(recipe[path].B, fleet_recipe[path].B) for path in recipe)


def test_steps_stay_within_the_budget_and_keep_each_members_batches_in_order(dataset):
    ids = sorted(dataset.personas)
    backend, engine = engine_for(dataset)
    budget = StepBudget(rows=6, tokens=150)
    fleet = Fleet(backend, engine, members(dataset, ids), SETTINGS, seed=2, under=None)
    expected = {f"persona/{pid}": shuffled_length_grouped_batches(fleet.members[f"persona/{pid}"].train,
                                                                  SETTINGS.batch_size, torch.Generator().manual_seed(
                                                                      member_seed(2, f"persona/{pid}")))
                for pid in ids}
    steps = fleet.epoch_steps(list(fleet.members), budget)
    seen = {name: [] for name in fleet.members}
    for parts in steps:
        names = [name for name, _ in parts]
        assert len(names) == len(set(names))  # each member at most once per step
        rows = sum(len(batch) for _, batch in parts)
        padded = rows * max(fleet.longest(part) for part in parts)
        assert len(parts) == 1 or (rows <= budget.rows and padded <= budget.tokens)
        for name, batch in parts:
            seen[name].append(batch)
    assert seen == expected  # every batch once, in the member's own order
    assert len(steps) > len(expected[f"persona/{ids[0]}"])  # the budget did split rounds


def test_who_shares_a_step_changes_nothing(dataset):
    ids = sorted(dataset.personas)
    backend, wide_engine = engine_for(dataset)
    train_fleet(backend, wide_engine, members(dataset, ids), SETTINGS, seed=3, progress=False)
    backend_narrow, narrow_engine = engine_for(dataset)
    train_fleet(backend_narrow, narrow_engine, members(dataset, ids), SETTINGS, seed=3, progress=False,
                budget=StepBudget(rows=1))  # one member's batch per step
    for pid in ids:
        wide, narrow = wide_engine.adapter_weights(f"persona/{pid}"), narrow_engine.adapter_weights(f"persona/{pid}")
        for path in wide:
            torch.testing.assert_close(wide[path].A, narrow[path].A, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(wide[path].B, narrow[path].B, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("model", ["tiny-classifier", "tiny-causal-lm"])
def test_a_fleet_of_one_trains_as_the_plain_peft_loop(dataset, model):
    """The one training loop on a single adapter (how ``unified`` trains, with a classifier's
    new head) against the loop a user writes with PEFT from the same start: the same batches,
    AdamW groups, warmup and decay, joint clipping. Same adapter and head, to float error."""
    train, val = dataset.split("train"), dataset.split("val")
    settings = resolve_settings(epochs=2, lr=5e-3, head_lr=5e-3, batch_size=8, dropout=0.0, patience=2,
                                warmup_ratio=0.25, weight_decay=0.01)
    backend, engine = engine_for(dataset, model)
    head = head_parameters(backend)
    start = new_lora_weights(engine, backend.target_modules(settings.target_roles), settings,
                             member_seed(3, "unified"))
    extra = [ExtraParameters(head, settings.head_lr)] if head else []
    result = train_fleet(backend, engine, [Member("unified", train, val, extra=extra)], settings, seed=3,
                         progress=False)["unified"]
    assert result.best_epoch == settings.epochs  # so the last epoch is the one kept, as in the loop

    reference, wrapper = engine_for(dataset, model)
    wrapper.unwrap()  # a plain base model, as the user's loop has it
    peft_model = plain_peft_loop(reference, start, train, settings, member_seed(3, "unified"))
    for path, weights in engine.adapter_weights("unified").items():
        module = peft_model.base_model.model.get_submodule(path)
        torch.testing.assert_close(weights.A, module.lora_A["unified"].weight, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(weights.B, module.lora_B["unified"].weight, rtol=1e-4, atol=1e-6)
    for ours, theirs in zip(head, head_parameters(reference)):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


def plain_peft_loop(backend, start, rows, settings, seed):
    model = get_peft_model(backend.model, LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=0.0,
                                                     target_modules=backend.target_modules(settings.target_roles)),
                           adapter_name="unified")
    with torch.no_grad():
        for path, weights in start.items():
            model.base_model.model.get_submodule(path).lora_A["unified"].weight.copy_(weights.A)
    head = head_parameters(backend)
    for param in head:
        param.requires_grad_(True)  # PEFT froze the base, new head included
    lora = [p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
    groups = [{"params": lora, "lr": settings.lr, "weight_decay": settings.weight_decay}]
    if head:
        groups.append({"params": head, "lr": settings.head_lr, "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups)
    total = math.ceil(len(rows) / settings.batch_size) * settings.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(settings.warmup_ratio * total), total)
    order = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(settings.epochs):
        for batch in shuffled_length_grouped_batches(rows, settings.batch_size, order):
            loss = backend.loss(model, backend.collate([rows[i] for i in batch]))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(lora + head, settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
    return model
