"""The training loop: many LoRA adapters trained together, in shared forward passes (a
single adapter, ``unified`` included, is a fleet of one).

Each adapter ("member") has its own rows, its own seeded stream of mini-batches, its own
learning-rate schedule, optimizer state and early stopping, exactly as if it were trained
alone (a member may also bring its own learning rate and epochs: a grid of recipes trains as
one fleet); a fleet step simply runs several members' next mini-batches in one forward pass of the
multi-LoRA engine, each row through its own adapter (plus optional frozen adapters beneath,
e.g. ``unified`` for adapters trained on top of it). A step's size is bounded in rows and in
padded tokens, and the members' batches are grouped by length first: a step holds no more
than one full batch of a single adapter would, whatever the number of members. The loss is the
sum over members of each member's mean loss, so every adapter gets the gradient it would get alone; adapters absent
from a step get no gradient at all, and the optimizer leaves them untouched. A causal LM runs
the prompt beginning a member's rows share (template, instruction, profile) once per step
(``personalab.models.shared_prefix``): same losses within rounding, less arithmetic.
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

from personalab.data.faults import fault_point
from personalab.data.schema import Example
from personalab.engine import LoraWeights, MultiLoraModel, Route
from personalab.models.base import Backend
from personalab.models.batching import length_sorted_chunks, shuffled_length_grouped_batches
from personalab.train.result import TrainResult
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
    extra: Sequence["ExtraParameters"] = ()
    """Further parameters that train with this adapter (a classifier's new head, persona
    vectors): clipped with it, kept at its best epoch with it, frozen again afterwards."""
    train_vectors: Sequence[str | None] | None = None
    """Per train row, the engine input vector it adds (by name; None: none), when its rows add
    vectors (``persona_token``'s learned identity); the caller loads the vectors."""
    val_vectors: Sequence[str | None] | None = None

    @property
    def seed_name(self) -> str:
        return self.seed_key or self.name

    def vector_of(self, split: str, index: int) -> str | None:
        vectors = self.train_vectors if split == "train" else self.val_vectors
        return vectors[index] if vectors is not None else None


@dataclass
class ExtraParameters:
    """Parameters trained with a member at a peak learning rate of their own (on the member's
    schedule), without weight decay."""

    params: list[torch.nn.Parameter]
    lr: float


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


ACTIVATIONS_PER_STEP_CPU = 512 << 20
"""Bytes of saved activations one training step may hold on a CPU (on a GPU: a quarter of
its memory). Measured on the first 64-adapter shard of the POPQUORN MiniLM fleet: 512 MiB
(~1,450 tokens a step) peaked at 1.83 GiB RSS, 1 GiB at 2.38 GiB, at the same speed (a CPU is
compute-bound: larger steps do not train faster); the difference is mostly what freed
activations of many sizes leave in a fragmented heap."""


@dataclass(frozen=True)
class StepBudget:
    """How much one fleet step may hold: at most ``rows`` rows and ``tokens`` padded tokens
    (rows times the longest row's tokens). The token bound is what keeps memory flat: a step's
    activations grow with its padded tokens, and one long row pads every other row to its
    length (64 mixed POPQUORN rows padded to 128 tokens held about 2 GiB of MiniLM
    activations: the main part of the 5.95 GiB peak of a 262-persona fleet)."""

    rows: int = 64
    tokens: int = 2048

    @classmethod
    def for_backend(cls, backend: Backend) -> "StepBudget":
        """The backend's ``train_batch_size`` rows, and as many tokens as fit the device's
        activation budget by the model's own size (``activation_bytes_per_token``)."""
        device = backend.device
        budget = (torch.cuda.get_device_properties(device).total_memory // 4 if device.type == "cuda"
                  else ACTIVATIONS_PER_STEP_CPU)
        per_token = activation_bytes_per_token(backend.model, backend.spec.max_length)
        return cls(rows=backend.train_batch_size, tokens=max(1, budget // per_token))

    def __post_init__(self) -> None:
        if self.rows < 1 or self.tokens < 1:
            raise ValueError(f"a step budget needs at least one row and one token, got {self}")

    def pack(self, batches: list[tuple[str, list[int]]], longest) -> list[list[tuple[str, list[int]]]]:
        """``batches`` (longest first) cut in order into steps within the budget; a batch
        larger than the budget by itself is a step of its own."""
        steps, current, rows, width = [], [], 0, 0
        for part in batches:
            new_rows, new_width = rows + len(part[1]), max(width, longest(part))
            if current and (new_rows > self.rows or new_rows * new_width > self.tokens):
                steps.append(current)
                current, new_rows, new_width = [], len(part[1]), longest(part)
            current.append(part)
            rows, width = new_rows, new_width
        return steps + ([current] if current else [])


def activation_bytes_per_token(model: torch.nn.Module, length: int) -> int:
    """An estimate of what backward keeps per token of a step, from the model's configuration:
    per layer about 16 hidden-size vectors (projections, norms, residuals, the adapters'
    inputs), 3 of the feed-forward width and 3 attention rows of ``length`` per head, in the
    model's dtype. For MiniLM at 128 tokens: 368 KB (measured: about 240 KB); a model whose
    configuration lacks these sizes is taken to need 64 KB."""
    config = getattr(model, "config", None)
    try:
        hidden, layers = config.hidden_size, config.num_hidden_layers
        width = 16 * hidden + 3 * config.intermediate_size + 3 * config.num_attention_heads * length
    except AttributeError:
        return 64 * 1024
    element = next(model.parameters()).element_size()
    return element * width * layers


class Fleet:
    """The training state of all members; ``train_fleet`` drives it."""

    def __init__(self, backend, engine, members, settings, seed, under):
        self.backend, self.engine, self.settings = backend, engine, settings
        self.members = {m.name: m for m in members}
        self.lrs = {m.name: settings.lr if m.lr is None else m.lr for m in members}
        self.epochs = {m.name: settings.epochs if m.epochs is None else m.epochs for m in members}
        targets = backend.target_modules(settings.target_roles)
        for m in members:
            weights = new_lora_weights(engine, targets, settings, member_seed(seed, m.seed_name))
            engine.add_adapter(m.name, weights, trainable=True, dropout=settings.dropout)
            for extra in m.extra:
                for param in extra.params:
                    param.requires_grad_(True)
        self.route_id = self._set_routes(engine, members, under)
        self.params = {m.name: engine.adapter_parameters(m.name) + [p for e in m.extra for p in e.params]
                       for m in members}
        groups = []
        for m in members:
            groups.append({"params": engine.adapter_parameters(m.name), "name": m.name, "peak": self.lrs[m.name]})
            groups += [{"params": e.params, "name": m.name, "peak": e.lr, "weight_decay": 0.0} for e in m.extra]
        self.optimizer = torch.optim.AdamW(groups, lr=settings.lr, weight_decay=settings.weight_decay)
        self.groups = defaultdict(list)
        for group in self.optimizer.param_groups:
            self.groups[group["name"]].append(group)
        self.precision = Precision(engine, [p for name in self.params for p in self.params[name]])
        self.generators = {m.name: torch.Generator().manual_seed(member_seed(seed, m.seed_name)) for m in members}
        self.lengths = {m.name: backend.train_lengths(m.train) for m in members}
        self.steps_done = defaultdict(int)
        per_epoch = {m.name: math.ceil(len(m.train) / settings.batch_size) for m in members}
        self.total_steps = {name: n * self.epochs[name] for name, n in per_epoch.items()}

    @staticmethod
    def _set_routes(engine, members, under) -> dict[tuple[str, str | None], int]:
        """One route per member and input vector its rows add: the member's adapter over
        ``under``; returns (member, vector) -> route id."""
        routes, vectors, route_id = [], [], {}
        for m in members:
            for vector in dict.fromkeys([None, *(m.train_vectors or ()), *(m.val_vectors or ())]):
                route_id[(m.name, vector)] = len(routes)
                routes.append(Route({**(under.to_json() if under else {}), m.name: 1.0}))
                vectors.append(vector)
        engine.set_routes(routes, vectors=vectors)
        return route_id

    def lr_factor(self, name: str) -> float:
        """Linear warmup then linear decay over the member's own steps, as a fraction of each
        group's peak (Hugging Face's ``get_linear_schedule_with_warmup``)."""
        step, total = self.steps_done[name], self.total_steps[name]
        warmup = int(self.settings.warmup_ratio * total)
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    def epoch_steps(self, active: Sequence[str], budget: StepBudget) -> list[list[tuple[str, list[int]]]]:
        """This epoch's fleet steps. Each member's mini-batches come in its own seeded order;
        round k takes every active member's k-th batch, sorts them by length and packs them
        into steps within ``budget`` (a step pads every row to its longest, so rows of like
        length share one). Each member is at most once per step and its batches keep their
        order: what it learns does not depend on who shares its steps."""
        queues = {n: shuffled_length_grouped_batches(self.members[n].train, self.settings.batch_size, self.generators[n])
                  for n in active}
        steps = []
        for k in range(max((len(q) for q in queues.values()), default=0)):
            batches = [(name, queues[name][k]) for name in active if k < len(queues[name])]
            batches.sort(key=lambda part: -self.longest(part))
            steps += budget.pack(batches, self.longest)
        return steps

    def longest(self, part: tuple[str, list[int]]) -> int:
        name, batch = part
        return max(self.lengths[name][i] for i in batch)

    def route_ids(self, split: str, rows: Sequence[tuple[str, int]]) -> list[int]:
        """The route id of each (member, row index) of ``split``."""
        return [self.route_id[(n, self.members[n].vector_of(split, i))] for n, i in rows]

    def step(self, parts: list[tuple[str, list[int]]]) -> dict[str, float]:
        rows = [self.members[n].train[i] for n, batch in parts for i in batch]
        owners = [n for n, batch in parts for _ in batch]
        route_ids = self.route_ids("train", [(n, i) for n, batch in parts for i in batch])
        batch = self.backend.collate(rows, route_ids=route_ids, share_prefixes=True)
        sums, counts = self.backend.loss_terms(self.engine, batch)
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
            for group in self.groups[name]:
                group["lr"] = group["peak"] * self.lr_factor(name)
            self.steps_done[name] += 1
        self.precision.step(self.optimizer)
        return {name: loss.item() for name, loss in losses.items()}

    @torch.inference_mode()
    def validation_losses(self, names: Sequence[str], batch_size: int = 64) -> dict[str, float]:
        rows = [(n, i) for n in names for i in range(len(self.members[n].val))]
        sums, counts = defaultdict(float), defaultdict(float)
        self.engine.eval()
        for chunk in length_sorted_chunks([self.members[n].val[i] for n, i in rows], batch_size):
            part = [rows[k] for k in chunk]
            batch = self.backend.collate([self.members[n].val[i] for n, i in part],
                                         route_ids=self.route_ids("val", part), share_prefixes=True)
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
    budget: StepBudget | None = None,
    progress: bool = True,
    label: str = "fleet",
) -> dict[str, TrainResult]:
    """Train one new adapter per member; each keeps its best epoch by its own validation loss.
    ``budget``: how much one forward pass holds (None: ``StepBudget.for_backend``)."""
    started = time.perf_counter()
    budget = budget or StepBudget.for_backend(backend)
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
        for parts in fleet.epoch_steps(active, budget):
            for name, loss in fleet.step(parts).items():
                epoch_losses[name].append(loss)
            bar.update(len(parts))
            fault_point("fleet.step_done", label=label)
        val = fleet.validation_losses(active)
        active = _early_stopping(fleet, results, best, epoch, epoch_losses, val, settings.patience)
        bar.set_postfix(epoch=epoch, training=len(active))
    bar.close()
    for name in names:
        fleet.restore(name, best[name])
        for extra in fleet.members[name].extra:
            for param in extra.params:
                param.requires_grad_(False)  # part of the frozen model from now on
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
