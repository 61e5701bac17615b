"""Weight-space merges of LoRA adapters: ``sum_i w_i * dW_i`` as one adapter.

Each adapter is ``{module_path: LoraWeights}`` and its delta at a module is
``dW_i = s_i * B_i @ A_i``. This module owns turning a weighted sum of such deltas into a
single LoRA, and measuring how far a merged adapter is from that sum:

* ``merge_exact``: the sum itself, as one LoRA of rank ``sum_i r_i`` (the A's and the
  weighted, scaled B's concatenated along the rank), scale 1; exact up to float rounding.
* ``merge_svd``: the best rank-``rank`` approximation of the sum per module (Eckart-Young),
  computed from QR factors of the concatenated A and B and an SVD of their small core, so
  the ``out x in`` delta is never formed when the concatenated rank is small; it reports
  each module's relative Frobenius error, exactly, from the discarded singular values.
* ``relative_errors``: ``||merged - sum||_F / ||sum||_F`` per module, formed directly
  (float64), the independent check the tests and the benchmark use.

A module that only some adapters adapt gets a zero delta from the others. Merged adapters
have scale 1, which ``write_peft_adapter`` writes as ``lora_alpha == r`` (per-module ranks
through ``rank_pattern`` / ``alpha_pattern``). Depends on torch only.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

from personalab.engine.weights import LoraWeights

Adapter = Mapping[str, LoraWeights]


def merge_exact(adapters: Sequence[Adapter], weights: Sequence[float]) -> dict[str, LoraWeights]:
    """``sum_i weights[i] * dW_i`` as one LoRA per module: ``A = cat(A_i)``,
    ``B = cat(w_i * s_i * B_i)`` (rank = the sum of the ranks of the adapters that adapt
    the module), scale 1. Computed in float32 (float64 if an input is float64)."""
    weights = _check_inputs(adapters, weights)
    merged = {}
    for module in _modules(adapters):
        a_cat, b_cat = _concatenated(module, adapters, weights)
        merged[module] = LoraWeights(A=a_cat, B=b_cat, scale=1.0)
    return merged


def merge_svd(
    adapters: Sequence[Adapter], weights: Sequence[float], rank: int
) -> tuple[dict[str, LoraWeights], dict[str, float]]:
    """The best rank-``rank`` approximation of ``sum_i weights[i] * dW_i`` at every module
    (zero-padded to exactly ``rank`` where the sum has a lower rank), scale 1, with
    ``sqrt(singular value)`` on each side; and ``{module: relative Frobenius error}``.
    Deterministic: singular vector signs are fixed (largest entry of each B column > 0)."""
    if int(rank) != rank or rank < 1:
        raise ValueError(f"an SVD merge needs a rank >= 1, got {rank!r}")
    weights = _check_inputs(adapters, weights)
    merged, errors = {}, {}
    for module in _modules(adapters):
        a_cat, b_cat = _concatenated(module, adapters, weights)
        merged[module], errors[module] = _truncate(a_cat, b_cat, int(rank))
    return merged, errors


def relative_errors(
    merged: Adapter, adapters: Sequence[Adapter], weights: Sequence[float]
) -> dict[str, float]:
    """``{module: ||dW_merged - sum_i w_i dW_i||_F / ||sum_i w_i dW_i||_F}`` over the modules
    of ``merged`` and of the adapters, from the deltas themselves, in float64. Where the sum
    is zero the error is 0 if the merged delta is zero too, else infinity."""
    weights = _check_inputs(adapters, weights)
    errors = {}
    for module in sorted(set(merged) | set(_modules(adapters))):
        reference = _reference_delta(module, adapters, weights)
        got = merged[module].delta().double() if module in merged else None
        if reference is None:
            reference = torch.zeros_like(got)
        difference = reference if got is None else got.to(reference.device) - reference
        errors[module] = _ratio(torch.linalg.norm(difference), torch.linalg.norm(reference))
    return errors


def pad_rank(adapter: Adapter, rank: int | None = None) -> dict[str, LoraWeights]:
    """``adapter`` with every module zero-padded to ``rank`` (default: its largest rank), so
    that one ``r`` describes it (no ``rank_pattern``); the deltas are unchanged."""
    target = max(lora.rank for lora in adapter.values()) if rank is None else rank
    padded = {}
    for module, lora in adapter.items():
        extra = target - lora.rank
        if extra < 0:
            raise ValueError(f"module {module!r} has rank {lora.rank} > {target}; cannot pad down")
        a = torch.cat([lora.A, lora.A.new_zeros(extra, lora.in_features)])
        b = torch.cat([lora.B, lora.B.new_zeros(lora.out_features, extra)], dim=1)
        padded[module] = LoraWeights(A=a, B=b, scale=lora.scale)
    return padded


# --- helpers ---------------------------------------------------------------------------------


def _check_inputs(adapters: Sequence[Adapter], weights: Sequence[float]) -> list[float]:
    if len(adapters) == 0:
        raise ValueError("a merge needs at least one adapter")
    if len(adapters) != len(weights):
        raise ValueError(f"got {len(adapters)} adapters but {len(weights)} weights")
    weights = [float(w) for w in weights]
    bad = [w for w in weights if not math.isfinite(w)]
    if bad:
        raise ValueError(f"merge weights must be finite numbers, got {bad}")
    for i, adapter in enumerate(adapters):
        if not adapter:
            raise ValueError(f"adapter {i} has no modules")
    for module in _modules(adapters):
        _check_shapes(module, adapters)
    return weights


def _check_shapes(module: str, adapters: Sequence[Adapter]) -> None:
    shapes = {i: (a[module].out_features, a[module].in_features)
              for i, a in enumerate(adapters) if module in a}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"adapter {i}: {o}x{n}" for i, (o, n) in shapes.items())
        raise ValueError(
            f"module {module!r} has different shapes (out x in) in the adapters to merge: "
            f"{listed}; adapters of different base models cannot be merged"
        )


def _modules(adapters: Sequence[Adapter]) -> list[str]:
    return sorted({module for adapter in adapters for module in adapter})


def _dtype(tensors: Sequence[torch.Tensor]) -> torch.dtype:
    dtype = torch.float32
    for tensor in tensors:
        dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def _concatenated(
    module: str, adapters: Sequence[Adapter], weights: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cat(A_i) [R, in], cat(w_i * s_i * B_i) [out, R])`` over the adapters at ``module``."""
    present = [(a[module], w) for a, w in zip(adapters, weights) if module in a]
    dtype = _dtype([lora.A for lora, _ in present] + [lora.B for lora, _ in present])
    device = present[0][0].A.device
    a_cat = torch.cat([lora.A.to(device, dtype) for lora, _ in present])
    # The factor goes on B in float64 first, so that w * s is rounded once, not twice.
    b_cat = torch.cat([(lora.B.to(device, torch.float64) * (w * lora.scale)).to(dtype)
                       for lora, w in present], dim=1)
    return a_cat, b_cat


def _reference_delta(
    module: str, adapters: Sequence[Adapter], weights: Sequence[float]
) -> torch.Tensor | None:
    total = None
    for adapter, weight in zip(adapters, weights):
        if module in adapter:
            lora = adapter[module]
            delta = weight * lora.scale * (lora.B.double() @ lora.A.double().to(lora.B.device))
            total = delta if total is None else total + delta
    return total


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> float:
    num, den = float(numerator), float(denominator)
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def _truncate(a_cat: torch.Tensor, b_cat: torch.Tensor, rank: int) -> tuple[LoraWeights, float]:
    """The rank-``rank`` truncation of ``b_cat @ a_cat`` as ``(LoraWeights, relative error)``,
    computed in float64 and returned in the inputs' dtype."""
    out_features, in_features = b_cat.shape[0], a_cat.shape[1]
    left, singular, right = _svd_of_product(b_cat.double(), a_cat.double())
    left, right = _fix_signs(left, right)
    kept = min(rank, singular.numel())
    total = torch.sum(singular**2)
    error = _ratio(torch.sqrt(torch.sum(singular[kept:] ** 2)), torch.sqrt(total))
    root = torch.sqrt(singular[:kept])
    b = torch.zeros(out_features, rank, dtype=torch.float64, device=b_cat.device)
    a = torch.zeros(rank, in_features, dtype=torch.float64, device=a_cat.device)
    b[:, :kept] = left[:, :kept] * root
    a[:kept] = root[:, None] * right[:, :kept].T
    return LoraWeights(A=a.to(a_cat.dtype), B=b.to(b_cat.dtype), scale=1.0), error


def _svd_of_product(
    b: torch.Tensor, a: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(U, S, V)`` with ``b @ a == U diag(S) V^T``. When the concatenated rank is below
    both layer sizes, only the ``[R, R]`` core of the QR factors is decomposed; otherwise
    the ``out x in`` delta is no larger than that core and is decomposed directly."""
    concatenated_rank = a.shape[0]
    if concatenated_rank >= min(b.shape[0], a.shape[1]):
        u, s, vh = torch.linalg.svd(b @ a, full_matrices=False)
        return u, s, vh.T
    q_b, r_b = torch.linalg.qr(b)  # [out, R], [R, R]
    q_a, r_a = torch.linalg.qr(a.T)  # [in, R], [R, R]
    u, s, vh = torch.linalg.svd(r_b @ r_a.T)
    return q_b @ u, s, q_a @ vh.T


def _fix_signs(left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip singular vector pairs so that each left vector's largest-magnitude entry is
    positive: the factorization is then the same whichever LAPACK path produced it."""
    if left.numel() == 0:
        return left, right
    index = left.abs().argmax(dim=0)
    signs = torch.sign(left[index, torch.arange(left.shape[1], device=left.device)])
    signs[signs == 0] = 1.0
    return left * signs, right * signs
