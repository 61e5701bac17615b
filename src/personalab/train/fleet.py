"""Fleet training: many LoRA adapters trained together, in shared forward passes.

Each adapter ("member") has its own rows, its own seeded stream of mini-batches, its own
learning-rate schedule, optimizer state and early stopping, exactly as if it were trained
alone (a member may also bring its own learning rate and epochs: a grid of recipes trains as
one fleet); a fleet step simply runs several members' next mini-batches in one forward pass of the
multi-LoRA engine, each row through its own adapter (plus optional frozen adapters beneath,
e.g. ``unified`` for adapters trained on top of it). The loss is the sum over members of each
member's mean loss, so every adapter gets the gradient it would get alone; adapters absent
from a step get no gradient at all, and the optimizer leaves them untouched.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

import torch
from tqdm.auto import tqdm

from personalab.data.schema import Example
from personalab.engine import LoraWeights, MultiLoraModel, Route
from personalab.models.base import Backend
from personalab.models.batching import length_sorted_chunks, shuffled_length_grouped_batches
from personalab.train.loop import TrainResult
from personalab.train.precision import Precision
from personalab.train.presets import TrainSettings


@dataclass
class Member:
    """One adapter of the fleet, the rows it learns from, and its own ``lr`` and ``epochs``
    when they differ from the fleet's settings (a recipe grid; the rest is the fleet's)."""

    name: str
    train: list[Example]
    val: list[Example]
    lr: float | None = None
    epochs: int | None = None
    seed_key: str | None = None
    """The name its seed is drawn from (default: its own): a recipe's copy of ``persona/p``
    draws ``persona/p``'s seed, so two recipes of one persona differ by the recipe alone."""

    @property
    def seed_name(self) -> str:
        return self.seed_key or self.name


def member_seed(seed: int, name: str) -> int:
    """A member's own seed: the same whether it trains alone or in any fleet."""
    return int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:8], 16)


def new_lora_weights(
    engine: MultiLoraModel, targets: Sequence[str], settings: TrainSettings, seed: int
) -> dict[str, LoraWeights]:
    """PEFT's default initialisation on the engine's layers matching ``targets`` (PEFT's
    suffix rule): A Kaiming-uniform, B zero, so training starts from the model beneath."""
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for path, layer in engine.layers.items():
        if not any(path == t or path.endswith("." + t) for t in targets):
            continue
        base = layer.base_layer
        bound = 1.0 / math.sqrt(base.in_features)  # kaiming_uniform_(a=sqrt(5)), as PEFT
        a = (torch.rand(settings.r, base.in_features, generator=generator) * 2 - 1) * bound
        weights[path] = LoraWeights(A=a, B=torch.zeros(base.out_features, settings.r), scale=settings.alpha / settings.r)
    return weights


class Fleet:
    """The training state of all members; ``train_fleet`` drives it."""

    def __init__(self, backend, engine, members, settings, seed, under):
        self.backend, self.engine, self.settings = backend, engine, settings
        self.members = {m.name: m for m in members}
        self.lrs = {m.name: settings.lr if m.lr is None else m.lr for m in members}
        self.epochs = {m.name: settings.epochs if m.epochs is None else m.epochs for m in members}
        self.route_id = {m.name: i for i, m in enumerate(members)}
        targets = backend.target_modules(settings.target_roles)
        for m in members:
            weights = new_lora_weights(engine, targets, settings, member_seed(seed, m.seed_name))
            engine.add_adapter(m.name, weights, trainable=True, dropout=settings.dropout)
        engine.set_routes([Route({**(under.to_json() if under else {}), m.name: 1.0}) for m in members])
        self.params = {m.name: engine.adapter_parameters(m.name) for m in members}
        groups = [{"params": self.params[m.name], "name": m.name, "lr": self.lrs[m.name]} for m in members]
        self.optimizer = torch.optim.AdamW(groups, lr=settings.lr, weight_decay=settings.weight_decay)
        self.group = {g["name"]: g for g in self.optimizer.param_groups}
        self.precision = Precision(engine, [p for name in self.params for p in self.params[name]])
        self.generators = {m.name: torch.Generator().manual_seed(member_seed(seed, m.seed_name)) for m in members}
        self.steps_done = defaultdict(int)
        per_epoch = {m.name: math.ceil(len(m.train) / settings.batch_size) for m in members}
        self.total_steps = {name: n * self.epochs[name] for name, n in per_epoch.items()}

    def lr(self, name: str) -> float:
        """Linear warmup then linear decay over the member's own steps (as ``loop.py``)."""
        step, total, peak = self.steps_done[name], self.total_steps[name], self.lrs[name]
        warmup = int(self.settings.warmup_ratio * total)
        if step < warmup:
            return peak * step / max(1, warmup)
        return peak * max(0.0, (total - step) / max(1, total - warmup))

    def epoch_steps(self, active: Sequence[str], rows_per_step: int) -> list[list[tuple[str, list[int]]]]:
        """This epoch's fleet steps: members' mini-batches, interleaved round-robin and packed
        into steps of about ``rows_per_step`` rows (each member at most once per step)."""
        queues = {n: shuffled_length_grouped_batches(self.members[n].train, self.settings.batch_size, self.generators[n])
                  for n in active}
        interleaved = []
        while any(queues.values()):
            for name in active:
                if queues[name]:
                    interleaved.append((name, queues[name].pop(0)))
        steps, current, size = [], [], 0
        for name, batch in interleaved:
            if current and (size + len(batch) > rows_per_step or any(n == name for n, _ in current)):
                steps.append(current)
                current, size = [], 0
            current.append((name, batch))
            size += len(batch)
        return steps + ([current] if current else [])

    def step(self, parts: list[tuple[str, list[int]]]) -> dict[str, float]:
        rows = [self.members[n].train[i] for n, batch in parts for i in batch]
        owners = [n for n, batch in parts for _ in batch]
        sums, counts = self.backend.loss_terms(self.engine, self.backend.collate(rows, route_ids=[self.route_id[n] for n in owners]))
        losses = {}
        total = 0.0
        for name, _ in parts:
            mask = torch.tensor([o == name for o in owners], device=sums.device)
            losses[name] = sums[mask].sum() / counts[mask].sum()
            total = total + losses[name]
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.backward(total, self.optimizer)
        for name, _ in parts:
            if self.settings.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.params[name], self.settings.max_grad_norm)
            self.group[name]["lr"] = self.lr(name)
            self.steps_done[name] += 1
        self.precision.step(self.optimizer)
        return {name: loss.item() for name, loss in losses.items()}

    @torch.inference_mode()
    def validation_losses(self, names: Sequence[str], batch_size: int = 64) -> dict[str, float]:
        rows = [(n, row) for n in names for row in self.members[n].val]
        sums, counts = defaultdict(float), defaultdict(float)
        self.engine.eval()
        for chunk in length_sorted_chunks([row for _, row in rows], batch_size):
            part = [rows[i] for i in chunk]
            batch = self.backend.collate([r for _, r in part], route_ids=[self.route_id[n] for n, _ in part])
            row_sums, row_counts = self.backend.loss_terms(self.engine, batch)
            for (name, _), s, c in zip(part, row_sums.tolist(), row_counts.tolist()):
                sums[name] += s
                counts[name] += c
        return {n: sums[n] / counts[n] if counts[n] else float("nan") for n in names}

    def snapshot(self, name: str) -> list[torch.Tensor]:
        return [p.detach().clone() for p in self.params[name]]

    def restore(self, name: str, state: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for param, saved in zip(self.params[name], state):
                param.copy_(saved)


def train_fleet(
    backend: Backend,
    engine: MultiLoraModel,
    members: Sequence[Member],
    settings: TrainSettings,
    seed: int = 0,
    under: Route | None = None,
    rows_per_step: int | None = None,
    progress: bool = True,
    label: str = "fleet",
) -> dict[str, TrainResult]:
    """Train one new adapter per member; each keeps its best epoch by its own validation loss.
    ``rows_per_step``: rows per forward pass (None: the backend's ``train_batch_size``)."""
    started = time.perf_counter()
    rows_per_step = rows_per_step or getattr(backend, "train_batch_size", 64)
    fleet = Fleet(backend, engine, members, settings, seed, under)
    names = [m.name for m in members]
    first = fleet.validation_losses(names)
    results = {n: TrainResult(val_loss=[first[n]], train_loss=[], best_epoch=0) for n in names}
    best = {n: fleet.snapshot(n) for n in names}
    active = list(names)
    bar = tqdm(total=sum(fleet.total_steps.values()), desc=label, unit="adapter-step", disable=not progress)
    for epoch in range(1, max(fleet.epochs.values(), default=0) + 1):
        active = [n for n in active if epoch <= fleet.epochs[n]]  # members past their own epochs rest
        if not active:
            break
        engine.train()
        epoch_losses = defaultdict(list)
        for parts in fleet.epoch_steps(active, rows_per_step):
            for name, loss in fleet.step(parts).items():
                epoch_losses[name].append(loss)
            bar.update(len(parts))
        val = fleet.validation_losses(active)
        active = _early_stopping(fleet, results, best, epoch, epoch_losses, val, settings.patience)
        bar.set_postfix(epoch=epoch, training=len(active))
    bar.close()
    for name in names:
        fleet.restore(name, best[name])
        results[name].seconds = time.perf_counter() - started
        results[name].steps = fleet.steps_done[name]
    return results


def _early_stopping(fleet, results, best, epoch, epoch_losses, val, patience) -> list[str]:
    still = []
    for name, loss in val.items():
        result = results[name]
        result.train_loss.append(sum(epoch_losses[name]) / max(1, len(epoch_losses[name])))
        result.val_loss.append(loss)
        if loss < result.best_val_loss:
            result.best_epoch, best[name] = epoch, fleet.snapshot(name)
        if epoch - result.best_epoch < patience:
            still.append(name)
    return still
