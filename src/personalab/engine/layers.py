"""``MultiLoraLinear``: a frozen linear layer plus K LoRA adapters, each row its own mixture.

For row i with route pairs ``(k_ij, w_ij)`` the layer computes
``y_i = W x_i + b + sum_j w_ij * s_k * B_k (A_k x_i)``. Adapters live in one of two forms:

* *frozen*: stacked, zero-padded to the largest rank (padding adds exact zeros), in buffers
  ``[capacity, r, .]`` whose slot 0 is all zeros (padding, and adapters not held here);
  rows gather their adapters from them with one indexing op, so scoring with hundreds of
  adapters costs no Python per adapter. Capacity doubles as adapters arrive, so loading a
  bank of N adapters copies O(N) adapters, not O(N^2).
* *trainable*: one ``nn.Parameter`` pair per adapter. A batch stacks only the adapters its
  rows use, so an adapter no row uses gets no gradient (``grad is None``) and optimizers
  leave it bit-identical: each row trains only its own adapter ("fleet training").

Adapters are addressed by a global index the owning model assigns (``set_adapter_order``);
the per-row routes of the current batch come in as a ``RowRoutes`` (``set_rows``, see
``engine.rows``). Frozen
stacks keep the base layer's dtype; trainable weights are kept in float32 when the base is
16-bit (as PEFT does), and their low-rank path is computed in float32 too (as PEFT's is);
the sum is cast back to the base layer's output dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from personalab.engine.rows import RowRoutes
from personalab.engine.weights import LoraWeights


@dataclass
class _Frozen:
    slot: int  # in the frozen stacks
    rank: int
    scale: float  # exact; the buffer holds it rounded to its dtype


@dataclass
class _Trainable:
    key: str  # parameter name inside the layer's ParameterDicts
    rank: int
    scale: float
    dropout: float


class MultiLoraLinear(nn.Module):
    def __init__(self, base_layer: nn.Linear):
        super().__init__()
        if not isinstance(base_layer, nn.Linear):
            raise TypeError(f"MultiLoraLinear wraps nn.Linear, not {type(base_layer).__name__}")
        self.base_layer = base_layer
        self.in_features, self.out_features = base_layer.in_features, base_layer.out_features
        self.lora_A = nn.ParameterDict()  # trainable adapters, [r, in]
        self.lora_B = nn.ParameterDict()  # trainable adapters, [out, r]
        self._trainable: dict[str, _Trainable] = {}
        self._frozen: dict[str, _Frozen] = {}
        self._free_slots: list[int] = []  # slots of removed frozen adapters, zeroed
        self._next_slot = 1  # slot 0 is the zero pad
        self._next_key = 0
        self._order: list[str] = []
        self._index_stale = True
        self._rows: RowRoutes | None = None
        self._resize_frozen(capacity=1, rank=0)

    # --- adapters -------------------------------------------------------------------------

    @property
    def adapter_names(self) -> list[str]:
        return [*self._frozen, *self._trainable]  # frozen, then trainable, each as added

    def add_adapter(
        self, name: str, weights: LoraWeights, trainable: bool = False, dropout: float = 0.0
    ) -> None:
        """Hold ``weights`` as adapter ``name`` (copied; the caller's tensors are not kept);
        routable once ``set_adapter_order`` names it."""
        self._check_new(name, weights, dropout)
        if trainable:
            self._add_trainable(name, weights, dropout)
        else:
            self._add_frozen(name, weights)
        self._index_stale = True

    def remove_adapter(self, name: str) -> None:
        if name in self._trainable:
            entry = self._trainable.pop(name)
            del self.lora_A[entry.key], self.lora_B[entry.key]
        elif name in self._frozen:
            slot = self._frozen.pop(name).slot
            # Zeroed, so that the next adapter to reuse the slot at a lower rank is exact.
            self.frozen_A[slot].zero_()
            self.frozen_Bt[slot].zero_()
            self._free_slots.append(slot)
        else:
            raise KeyError(f"layer holds no adapter {name!r}")
        self._index_stale = True

    def adapter_weights(self, name: str) -> LoraWeights:
        """A detached CPU copy of adapter ``name`` at its own rank."""
        if name in self._trainable:
            entry = self._trainable[name]
            a, b = self.lora_A[entry.key], self.lora_B[entry.key]
            return LoraWeights(a.detach().cpu().clone(), b.detach().cpu().clone(), entry.scale)
        if name in self._frozen:
            entry = self._frozen[name]
            a = self.frozen_A[entry.slot, : entry.rank]
            b = self.frozen_Bt[entry.slot, : entry.rank].t()
            return LoraWeights(a.cpu().clone(), b.cpu().clone(), entry.scale)
        raise KeyError(f"layer holds no adapter {name!r}")

    def adapter_parameters(self, name: str) -> list[nn.Parameter]:
        """``[A, B]`` of a trainable adapter; ``[]`` for a frozen one."""
        entry = self._trainable.get(name)
        return [] if entry is None else [self.lora_A[entry.key], self.lora_B[entry.key]]

    def set_adapter_order(self, order: Sequence[str]) -> None:
        """Global index ``g`` means adapter ``order[g]``; index ``len(order)`` is padding.
        Adapters named in ``order`` that this layer does not hold add nothing here."""
        self._order = list(order)
        self._index_stale = True

    def _build_index(self) -> None:
        """Lookups from global index to this layer's adapters: host lists for what the
        forward pass decides on the host, device buffers for what it gathers."""
        frozen = [self._frozen.get(n) for n in self._order]
        self._trainable_of = [self._trainable.get(n) for n in self._order]
        self._frozen_rank_of = [None if f is None else f.rank for f in frozen]
        self._trainable_rank_of = [None if t is None else t.rank for t in self._trainable_of]
        slots = [0 if f is None else f.slot for f in frozen] + [0]
        scales = [0.0 if t is None else t.scale for t in self._trainable_of] + [0.0]
        dropouts = [0.0 if t is None else t.dropout for t in self._trainable_of] + [0.0]
        device, dtype = self.base_layer.weight.device, self._scale_dtype()
        self.register_buffer("frozen_slot", torch.tensor(slots, device=device), persistent=False)
        scale = torch.tensor(scales, device=device, dtype=dtype)
        self.register_buffer("trainable_scale", scale, persistent=False)
        dropout = torch.tensor(dropouts, device=device, dtype=dtype)
        self.register_buffer("trainable_dropout", dropout, persistent=False)
        self._index_stale = False

    def set_rows(self, rows: RowRoutes | None) -> None:
        """Routes for the next forward passes; ``None``: the base layer alone."""
        self._rows = rows

    # --- forward --------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        rows = self._rows
        if rows is None or not rows.present:
            return out  # exactly the base layer: nothing is added
        n = rows.index.shape[0]
        if x.shape[0] != n:
            raise ValueError(f"routes were set for {n} rows but the batch has {x.shape[0]}")
        if self._index_stale:
            self._build_index()
        x3 = x.reshape(n, -1, self.in_features)
        deltas = [self._frozen_delta(x3, rows), self._trainable_delta(x3, rows)]
        deltas = [d for d in deltas if d is not None]
        if not deltas:
            return out
        delta = deltas[0] if len(deltas) == 1 else deltas[0] + deltas[1]
        return out + delta.reshape(out.shape).to(out.dtype)

    def _frozen_delta(self, x3: torch.Tensor, rows: RowRoutes) -> torch.Tensor | None:
        parts = []
        for j, rank in enumerate(_column_ranks(rows.columns, self._frozen_rank_of)):
            if rank == 0:
                continue  # no frozen adapter of this layer in route slot j
            slots = self.frozen_slot[rows.index[:, j]]  # trainable or absent -> the zero slot
            coef = rows.weight[:, j].to(self.frozen_scale.dtype) * self.frozen_scale[slots]
            # Sliced to the slot's largest rank: padding is exact, but costs and rounds.
            parts.append((self.frozen_A[:, :rank][slots], self.frozen_Bt[:, :rank][slots], coef))
        return _low_rank(x3, parts) if parts else None

    def _trainable_delta(self, x3: torch.Tensor, rows: RowRoutes) -> torch.Tensor | None:
        ranks = _column_ranks(rows.columns, self._trainable_rank_of)
        if not any(ranks):
            return None
        # Only the adapters this batch uses enter the graph: the others get no gradient.
        a_stack, bt_stack = self._stack_trainable(rows.present, max(ranks))
        parts = []
        for j, rank in enumerate(ranks):
            if rank:
                position, scale = rows.position[:, j], self.trainable_scale
                coef = rows.weight[:, j].to(scale.dtype) * scale[rows.index[:, j]]
                parts.append((a_stack[:, :rank][position], bt_stack[:, :rank][position], coef))
        # In the weights' float32 when the base is 16-bit, as PEFT computes its LoRA path:
        # the adapter's gradients are then float32 products, not rounded 16-bit ones.
        x3 = x3.to(a_stack.dtype)
        if self.training and self._uses_dropout(rows.present):
            x3 = self._dropout(x3, rows)
        return _low_rank(x3, parts)

    def _stack_trainable(self, present: list[int], rank: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``[P + 1, rank, in]`` and ``[P + 1, rank, out]``: the batch's adapters in
        ``present`` order (zeros for those not trainable here), then a zero pad slot."""
        entries = [self._trainable_of[g] for g in present]
        like = next(self.lora_A[e.key] for e in entries if e is not None)
        zero_a = like.new_zeros(rank, self.in_features)
        zero_bt = like.new_zeros(rank, self.out_features)
        a = [zero_a if e is None else _pad_rows(self.lora_A[e.key], rank) for e in entries]
        bt = [zero_bt if e is None else _pad_rows(self.lora_B[e.key].t(), rank) for e in entries]
        return torch.stack([*a, zero_a]), torch.stack([*bt, zero_bt])

    def _uses_dropout(self, present: list[int]) -> bool:
        return any(self._trainable_of[g] and self._trainable_of[g].dropout for g in present)

    def _dropout(self, x3: torch.Tensor, rows: RowRoutes) -> torch.Tensor:
        # One mask per row for its trainable adapters, at the row's largest dropout rate.
        p = self.trainable_dropout[rows.index].amax(dim=1)[:, None, None].to(x3.dtype)
        keep = torch.rand_like(x3) >= p
        return x3 * keep / (1.0 - p)

    # --- internals ------------------------------------------------------------------------

    def _check_new(self, name: str, weights: LoraWeights, dropout: float) -> None:
        if name in self._trainable or name in self._frozen:
            raise ValueError(f"adapter {name!r} is already in this layer")
        expected = (self.in_features, self.out_features)
        if (weights.in_features, weights.out_features) != expected:
            raise ValueError(
                f"adapter {name!r}: A {tuple(weights.A.shape)} / B {tuple(weights.B.shape)} do "
                f"not fit a linear layer {self.in_features} -> {self.out_features}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"adapter {name!r}: dropout must be in [0, 1), got {dropout}")

    def _add_trainable(self, name: str, weights: LoraWeights, dropout: float) -> None:
        weight = self.base_layer.weight
        dtype = torch.float32 if weight.dtype in (torch.float16, torch.bfloat16) else weight.dtype
        key = f"a{self._next_key}"  # adapter names may hold '.' or '/', which modules reject
        self._next_key += 1
        self.lora_A[key] = nn.Parameter(weights.A.detach().to(weight.device, dtype).clone())
        self.lora_B[key] = nn.Parameter(weights.B.detach().to(weight.device, dtype).clone())
        self._trainable[name] = _Trainable(key, weights.rank, weights.scale, float(dropout))

    def _add_frozen(self, name: str, weights: LoraWeights) -> None:
        slot = self._free_slots.pop() if self._free_slots else self._next_slot
        if slot == self._next_slot:
            self._next_slot += 1
        capacity, rank = self.frozen_A.shape[0], self.frozen_A.shape[1]
        if slot >= capacity or weights.rank > rank:
            new_capacity = 2 * slot if slot >= capacity else capacity  # doubling: O(1) amortised
            self._resize_frozen(new_capacity, max(rank, weights.rank))
        weight = self.base_layer.weight
        self.frozen_A[slot, : weights.rank] = weights.A.detach().to(weight.device, weight.dtype)
        b_t = weights.B.detach().t()
        self.frozen_Bt[slot, : weights.rank] = b_t.to(weight.device, weight.dtype)
        self.frozen_scale[slot] = weights.scale
        self._frozen[name] = _Frozen(slot, weights.rank, weights.scale)

    def _resize_frozen(self, capacity: int, rank: int) -> None:
        """New zero stacks of ``capacity`` slots and ``rank``, keeping what the old hold."""
        weight = self.base_layer.weight
        a = weight.new_zeros(capacity, rank, self.in_features)
        bt = weight.new_zeros(capacity, rank, self.out_features)
        scale = torch.zeros(capacity, device=weight.device, dtype=self._scale_dtype())
        if hasattr(self, "frozen_A"):
            old_capacity, old_rank = self.frozen_A.shape[:2]
            a[:old_capacity, :old_rank] = self.frozen_A
            bt[:old_capacity, :old_rank] = self.frozen_Bt
            scale[:old_capacity] = self.frozen_scale
        self.register_buffer("frozen_A", a, persistent=False)
        self.register_buffer("frozen_Bt", bt, persistent=False)
        self.register_buffer("frozen_scale", scale, persistent=False)

    def _scale_dtype(self) -> torch.dtype:
        # Scales and route weights in float32, or float64 for a float64 base (exact tests).
        return torch.promote_types(self.base_layer.weight.dtype, torch.float32)


def _pad_rows(matrix: torch.Tensor, rows: int) -> torch.Tensor:
    return matrix if matrix.shape[0] == rows else F.pad(matrix, (0, 0, 0, rows - matrix.shape[0]))


def _column_ranks(columns: list[list[int]], rank_of: list[int | None]) -> list[int]:
    """Per route slot, the largest rank among the slot's adapters held here (0: none)."""
    return [max((rank_of[g] or 0 for g in column), default=0) for column in columns]


def _low_rank(
    x3: torch.Tensor, parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
) -> torch.Tensor:
    """``sum_j coef_j[i] * B_j[i] (A_j[i] x_i)`` for every row i, given per route slot j
    ``(A_j [n, r_j, in], Bt_j [n, r_j, out], coef_j [n])`` and ``x3 [n, L, in]``.

    One batched matmul for all slots' ``A``s (concatenated along the rank), then one per slot
    for the ``B``s, scaled after ``B`` as PEFT does: a one-hot route over adapters of one
    rank rounds exactly like PEFT."""
    dtype = x3.dtype
    a = parts[0][0] if len(parts) == 1 else torch.cat([part[0] for part in parts], dim=1)
    h = torch.bmm(x3, a.transpose(1, 2).to(dtype))  # [n, L, sum_j r_j]
    delta, start = None, 0
    for a_j, bt_j, coef_j in parts:
        rank = a_j.shape[1]
        term = torch.bmm(h[:, :, start : start + rank], bt_j.to(dtype))
        term = term * coef_j.to(dtype)[:, None, None]
        delta, start = (term if delta is None else delta + term), start + rank
    return delta
