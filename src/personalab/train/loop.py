"""The training loop for one adapter: AdamW with warmup, validation loss per epoch, early
stopping that keeps the best epoch, and a seeded data order.

It trains whatever parameters of ``model`` require gradients (the active LoRA adapter, and a
new classification head with the first adapter) through the backend's ``collate`` and
``loss``, so it is the same for every backend. ``model`` may be a multi-LoRA engine routing
each row by its own route id (one adapter with learned persona vectors: ``persona_token``);
parameters named in ``own_lr`` train at a learning rate of their own.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from personalab.data.schema import Example
from personalab.models.base import Backend
from personalab.models.batching import length_sorted_chunks, shuffled_length_grouped_batches
from personalab.train.precision import Precision
from personalab.train.presets import TrainSettings


@dataclass
class TrainResult:
    val_loss: list[float]  # index 0 is before training, then one value per epoch
    train_loss: list[float]  # mean training loss per epoch
    best_epoch: int  # 0 means no epoch beat the untrained adapter
    seconds: float = 0.0
    steps: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def best_val_loss(self) -> float:
        return self.val_loss[self.best_epoch]

    def to_dict(self) -> dict:
        return {
            "val_loss": self.val_loss,
            "train_loss": self.train_loss,
            "best_epoch": self.best_epoch,
            "best_val_loss": self.best_val_loss,
            "seconds": self.seconds,
            "steps": self.steps,
        }


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_adapter(
    backend: Backend,
    model: torch.nn.Module,
    train_rows: Sequence[Example],
    val_rows: Sequence[Example],
    settings: TrainSettings,
    head_parameters: Sequence[str] = (),
    seed: int = 0,
    progress: bool = True,
    label: str = "train",
    route_ids: tuple[Sequence[int], Sequence[int]] | None = None,
    own_lr: Mapping[str, float] | None = None,
) -> TrainResult:
    """Train the parameters of ``model`` that require gradients; restore the best epoch.
    ``route_ids``: (train, val) route id per row, for a routed model (a multi-LoRA engine);
    ``own_lr``: parameter name -> its peak learning rate (no weight decay, the same schedule)."""
    start = time.perf_counter()
    seed_everything(seed)
    train_routes, val_routes = route_ids or (None, None)
    optimizer = _optimizer(model, settings, set(head_parameters), own_lr or {})
    precision = Precision(model, _trainable(model))
    steps_per_epoch = math.ceil(len(train_rows) / settings.batch_size)
    scheduler = get_linear_schedule_with_warmup(
        optimizer,
        num_warmup_steps=int(settings.warmup_ratio * steps_per_epoch * settings.epochs),
        num_training_steps=steps_per_epoch * settings.epochs,
    )
    order = torch.Generator().manual_seed(seed)
    bar = tqdm(total=steps_per_epoch * settings.epochs, desc=label, disable=not progress, unit="step")
    bar.set_postfix_str("validating", refresh=True)
    result = TrainResult(val_loss=[validation_loss(backend, model, val_rows, routes=val_routes)], train_loss=[],
                         best_epoch=0)
    bar.set_postfix_str(f"val={result.val_loss[0]:.4f}", refresh=False)
    best_state = _trainable_state(model)
    for epoch in range(1, settings.epochs + 1):
        epoch_loss = _train_epoch(backend, model, train_rows, train_routes, settings, optimizer, precision,
                                  scheduler, order, bar)
        result.train_loss.append(epoch_loss)
        bar.set_postfix_str("validating", refresh=True)
        result.val_loss.append(validation_loss(backend, model, val_rows, routes=val_routes))
        result.steps += steps_per_epoch
        bar.set_postfix(epoch=epoch, train=f"{epoch_loss:.4f}", val=f"{result.val_loss[-1]:.4f}")
        if result.val_loss[-1] < result.best_val_loss:
            result.best_epoch, best_state = epoch, _trainable_state(model)
        elif epoch - result.best_epoch >= settings.patience:
            break  # early stopping: validation loss stopped improving
    bar.close()
    model.load_state_dict(best_state, strict=False)
    result.seconds = time.perf_counter() - start
    return result


def _train_epoch(backend, model, rows, routes, settings, optimizer, precision, scheduler, order, bar) -> float:
    model.train()
    total, count = 0.0, 0
    for indices in shuffled_length_grouped_batches(rows, settings.batch_size, order):
        batch_rows = [rows[i] for i in indices]
        loss = backend.loss(model, _collate(backend, batch_rows, routes, indices))
        optimizer.zero_grad(set_to_none=True)
        precision.backward(loss, optimizer)
        if settings.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(_trainable(model), settings.max_grad_norm)
        precision.step(optimizer)
        scheduler.step()
        total, count = total + loss.item() * len(batch_rows), count + len(batch_rows)
        bar.update(1)
    return total / max(count, 1)


@torch.inference_mode()
def validation_loss(backend: Backend, model: torch.nn.Module, rows: Sequence[Example], batch_size: int = 64,
                    routes: Sequence[int] | None = None) -> float:
    """The loss over all of ``rows`` as one batch would give it (summed loss over predictions
    made, whatever the batching), in eval mode: comparable with fleet training's losses.
    ``routes``: each row's route id, for a routed model."""
    if not rows:
        return float("nan")
    model.eval()
    total, count = 0.0, 0.0
    for indices in length_sorted_chunks(rows, batch_size):
        sums, counts = backend.loss_terms(model, _collate(backend, [rows[i] for i in indices], routes, indices))
        total, count = total + sums.sum().item(), count + counts.sum().item()
    return total / count


def _collate(backend: Backend, rows: list[Example], routes: Sequence[int] | None, indices: Sequence[int]) -> dict:
    """The batch of ``rows`` (rows ``indices`` of the data), with their route ids if routed."""
    return backend.collate(rows) if routes is None else backend.collate(rows, route_ids=[routes[i] for i in indices])


def _optimizer(model: torch.nn.Module, settings: TrainSettings, head: set[str],
               own_lr: Mapping[str, float]) -> torch.optim.AdamW:
    lora, head_params, own = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name in own_lr:
            own.append({"params": [param], "lr": own_lr[name], "weight_decay": 0.0})
        else:
            (head_params if _is_head(name, head) else lora).append(param)
    missing = sorted(set(own_lr) - {name for name, p in model.named_parameters() if p.requires_grad})
    if missing:
        raise ValueError(f"own_lr names parameters the model does not train: {missing}")
    groups = [{"params": lora, "lr": settings.lr, "weight_decay": settings.weight_decay}]
    if head_params:
        groups.append({"params": head_params, "lr": settings.head_lr, "weight_decay": 0.0})
    return torch.optim.AdamW(groups + own)


def _is_head(name: str, head: set[str]) -> bool:
    # PEFT prefixes base parameter names ("base_model.model."), so match by suffix.
    return any(name == h or name.endswith("." + h) for h in head)


def _trainable(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
