"""One batch's routes, resolved for the layers: ``RowRoutes`` and how to build it.

The model turns ``route_ids`` into per-row (adapter index, weight) pairs once per forward
call; every ``MultiLoraLinear`` then reads the same ``RowRoutes``. What the layers decide on
the host (which adapters a batch uses, per route slot) is computed here once, so that the
forward pass needs no device-to-host synchronisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RowRoutes:
    """The routes of one batch, resolved to global adapter indices (built by the model)."""

    index: torch.Tensor  # [n, m] long, global adapter index; the pad index is len(order)
    weight: torch.Tensor  # [n, m] float32 (float64 for a float64 base), 0 on padding
    present: list[int]  # the distinct global indices the batch uses, sorted (host side)
    columns: list[list[int]]  # per route slot j, the distinct indices in index[:, j] (host)
    position: torch.Tensor  # [n, m] long, index into ``present``; len(present) on padding


def row_routes(
    index: torch.Tensor,
    weight: torch.Tensor,
    num_adapters: int,
    device: torch.device | str,
    dtype: torch.dtype = torch.float32,
) -> RowRoutes:
    """``RowRoutes`` from host tensors ``[n, m]`` (pad entries: index ``num_adapters``);
    ``weight`` goes to ``dtype`` (float32, or float64 for a float64 base)."""
    index, weight = index.cpu().long(), weight.cpu().to(dtype)
    columns = [sorted(set(column.tolist()) - {num_adapters}) for column in index.T]
    present = sorted(set().union(*columns))
    lookup = torch.full((num_adapters + 1,), len(present), dtype=torch.long)
    lookup[present] = torch.arange(len(present))
    return RowRoutes(
        index=index.to(device),
        weight=weight.to(device),
        present=present,
        columns=columns,
        position=lookup[index].to(device),
    )
