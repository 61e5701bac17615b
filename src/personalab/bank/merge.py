"""Merged adapters in the bank: a weighted sum of bank adapters saved as one plain PEFT adapter.

* ``materialize``: the engine's own merges (``personalab.engine.merge``): ``"exact"``
  (concatenation: the delta is ``sum_i w_i dW_i`` up to float rounding) or ``"svd"``
  (truncated to a rank, its error reported). This is what a weight-space route
  ``{"persona/a": 0.7, "persona/b": 0.3}`` becomes when it is exported.
* ``peft_combination``: PEFT's ``add_weighted_adapter`` combination types, for comparison
  and for users who want TIES / DARE. What each computes (PEFT 0.21):

  - ``cat``: ``A = cat(w_i s_i A_i)``, ``B = cat(B_i)``, scale 1: exactly ``sum_i w_i dW_i``
    (the same delta as ``materialize(method="exact")``);
  - ``svd``: the truncated SVD (``svd_rank``, default the largest source rank) of the dense
    ``sum_i w_i dW_i``, all singular values on B; the ``*_svd`` variants first combine the
    dense deltas by TIES / DARE / magnitude pruning;
  - ``linear``: ``A = sum_i sqrt(|w_i s_i|) sign(w_i s_i) A_i`` and
    ``B = sum_i sqrt(|w_i s_i|) B_i``, so the delta ``B A`` carries the cross terms
    ``B_i A_j``: it is *not* ``sum_i w_i dW_i`` for more than one adapter (same ranks only);
  - ``ties``, ``dare_ties``, ``dare_linear``, ``magnitude_prune``: the same on A and on B
    separately (as ``linear``, with A's and B's entries pruned by magnitude or dropped at
    random and rescaled, and for TIES a sign election per entry) -- heuristics on the
    factors, not on the deltas. ``dare_*`` draw at random: ``seed`` fixes the draw.

Each merge is saved through ``AdapterBank.save_weights`` with a manifest entry ``merge``
recording the method, sources, weights, rank and the per-module relative Frobenius error of
the merged delta against ``sum_i w_i dW_i``.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from personalab.bank.names import peft_adapter_name
from personalab.bank.store import AdapterBank
from personalab.engine import LoraWeights
from personalab.engine.merge import merge_exact, merge_svd, pad_rank, relative_errors

METHODS = ("exact", "svd")
PEFT_TYPES = ("cat", "linear", "svd", "ties", "ties_svd", "dare_ties", "dare_linear", "dare_ties_svd",
              "dare_linear_svd", "magnitude_prune", "magnitude_prune_svd")
NEEDS_DENSITY = tuple(t for t in PEFT_TYPES if t not in ("cat", "linear", "svd"))
LINEAR_WARNING = (
    "PEFT's combination_type='linear' combines the A matrices and the B matrices separately, so "
    "for more than one adapter its delta is not the weighted sum of the adapters' deltas (it adds "
    "cross terms B_i A_j); use materialize(..., method='exact') for the exact weighted merge"
)
_MERGED = "personalab_merged"  # the PEFT adapter name the combination is built under


@dataclass(frozen=True)
class MergeResult:
    """A merged adapter saved in the bank, and how far its delta is from ``sum_i w_i dW_i``."""

    name: str
    folder: Path
    method: str
    rank: int  # the largest per-module rank of the saved adapter
    errors: dict[str, float] = field(repr=False)  # module -> relative Frobenius error

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)


def materialize(
    bank: AdapterBank,
    names: Sequence[str],
    weights: Sequence[float],
    out_name: str,
    method: str = "exact",
    rank: int | None = None,
    *,
    uniform_rank: bool = True,
    **manifest: Any,
) -> MergeResult:
    """Merge bank adapters ``names`` with ``weights`` into bank adapter ``out_name``.

    ``method="exact"``: rank = the sum of the source ranks, error only float rounding
    (computed directly against ``sum_i w_i dW_i``); ``uniform_rank`` zero-pads modules that
    fewer sources adapt, so that one ``r`` describes the adapter. ``method="svd"``: rank
    ``rank`` everywhere, error from the discarded singular values. ``manifest`` keys are
    recorded in the entry as given (``data``, ``scores``, ...)."""
    if method not in METHODS:
        raise ValueError(f"unknown merge method {method!r}; choose from {list(METHODS)}")
    if (method == "svd") != (rank is not None):
        raise ValueError("rank is required by method='svd' and means nothing to method='exact'")
    _check_request(names, weights, out_name)
    sources = _read_sources(bank, names)
    if method == "exact":
        merged = merge_exact(sources, weights)
        errors = relative_errors(merged, sources, weights)
        merged = pad_rank(merged) if uniform_rank else merged
    else:
        merged, errors = merge_svd(sources, weights, rank)
    return _save(bank, out_name, merged, errors, method, names, weights, manifest)


def materialize_lossless(
    bank: AdapterBank, names: Sequence[str], weights: Sequence[float], out_name: str, **manifest: Any
) -> MergeResult:
    """``materialize`` at the smallest rank that loses nothing: the exact concatenation while
    the summed rank is below the layers' size, else an SVD at the layers' size (a delta of an
    ``out x in`` layer has rank at most ``min(out, in)``, so nothing is discarded but rounding)
    — 130 rank-8 adapters of a 384-wide layer become rank 384, not 1040."""
    sources = _read_sources(bank, names)
    summed = sum(max((w.rank for w in adapter.values()), default=0) for adapter in sources)
    sizes = [min(w.in_features, w.out_features) for adapter in sources for w in adapter.values()]
    if summed <= min(sizes):
        return materialize(bank, names, weights, out_name, **manifest)
    # One rank for every module (a single ``r``): the largest module's size, so that no
    # module is cut below its own (smaller modules are zero-padded).
    return materialize(bank, names, weights, out_name, method="svd", rank=min(summed, max(sizes)), **manifest)


def peft_combination(
    bank: AdapterBank,
    base_model: torch.nn.Module,
    names: Sequence[str],
    weights: Sequence[float],
    combination_type: str,
    out_name: str,
    density: float | None = None,
    *,
    svd_rank: int | None = None,
    majority_sign_method: str = "total",
    seed: int = 0,
    **manifest: Any,
) -> MergeResult:
    """Combine bank adapters with PEFT's ``add_weighted_adapter`` (see the module docstring
    for what each ``combination_type`` computes) and save the result as ``out_name``.
    ``base_model`` (a plain model) is left as it was; the work happens on a copy."""
    if combination_type not in PEFT_TYPES:
        raise ValueError(f"unknown PEFT combination_type {combination_type!r}; choose from {list(PEFT_TYPES)}")
    if combination_type in NEEDS_DENSITY and (density is None or not 0.0 <= density <= 1.0):
        raise ValueError(f"combination_type {combination_type!r} needs a density in [0, 1], got {density!r}")
    _check_request(names, weights, out_name)
    if combination_type == "linear" and len(names) > 1:
        warnings.warn(LINEAR_WARNING, UserWarning, stacklevel=2)
    sources = _read_sources(bank, names)
    model = bank.load_into(copy.deepcopy(base_model), names)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # dare_* drop entries at random
        model.add_weighted_adapter(
            [peft_adapter_name(n) for n in names], [float(w) for w in weights], _MERGED,
            combination_type=combination_type, svd_rank=svd_rank, density=density,
            majority_sign_method=majority_sign_method,
        )
    merged = peft_adapter_weights(model, _MERGED)
    _warn_if_rescaled(merged, combination_type)
    errors = relative_errors(merged, sources, weights)
    details = {"density": density, "svd_rank": svd_rank, "majority_sign_method": majority_sign_method, "seed": seed}
    return _save(bank, out_name, merged, errors, f"peft:{combination_type}", names, weights,
                 manifest, details)


def peft_adapter_weights(model: Any, adapter_name: str) -> dict[str, LoraWeights]:
    """``{module_path: LoraWeights}`` of PEFT adapter ``adapter_name`` in PEFT model ``model``
    (paths as in the base model; detached CPU copies, with PEFT's own scaling)."""
    from peft.tuners.lora import LoraLayer

    weights = {}
    for path, module in model.get_base_model().named_modules():
        if isinstance(module, LoraLayer) and adapter_name in module.lora_A:
            weights[path] = LoraWeights(
                A=module.lora_A[adapter_name].weight.detach().cpu().clone(),
                B=module.lora_B[adapter_name].weight.detach().cpu().clone(),
                scale=module.scaling[adapter_name],
            )
    if not weights:
        raise ValueError(f"the PEFT model has no LoRA adapter {adapter_name!r}")
    return weights


# --- helpers ---------------------------------------------------------------------------------


def _check_request(names: Sequence[str], weights: Sequence[float], out_name: str) -> None:
    if not names:
        raise ValueError("a merge needs at least one bank adapter")
    if len(names) != len(weights):
        raise ValueError(f"got {len(names)} adapter names but {len(weights)} weights")
    repeated = sorted({n for n in names if list(names).count(n) > 1})
    if repeated:
        raise ValueError(f"adapters {repeated} are named more than once; give each one weight")
    if out_name in names:
        raise ValueError(f"the merged adapter {out_name!r} would replace one of its own sources")


def _warn_if_rescaled(merged: dict[str, LoraWeights], combination_type: str) -> None:
    # PEFT gives the new adapter r == lora_alpha (scale 1) but copies the first source's other
    # settings, use_rslora included, which makes the scale sqrt(r) instead.
    scales = sorted({lora.scale for lora in merged.values()})
    if scales != [1.0]:
        warnings.warn(
            f"PEFT's combination_type={combination_type!r} adapter has scale(s) {scales[:3]} instead "
            "of 1 (it inherits use_rslora from the first source); it is saved as PEFT computes it",
            UserWarning, stacklevel=3,
        )


def _read_sources(bank: AdapterBank, names: Sequence[str]) -> list[dict[str, LoraWeights]]:
    return [bank.read_weights(name) for name in names]


def _save(
    bank: AdapterBank,
    out_name: str,
    merged: dict[str, LoraWeights],
    errors: dict[str, float],
    method: str,
    names: Sequence[str],
    weights: Sequence[float],
    manifest: dict[str, Any],
    details: dict[str, Any] | None = None,
) -> MergeResult:
    if "merge" in manifest:
        raise ValueError("the manifest field 'merge' is set by the merge itself")
    rank = max(lora.rank for lora in merged.values())
    record = {
        "method": method,
        "sources": list(names),
        "weights": [float(w) for w in weights],
        "rank": rank,
        "max_relative_error": max(errors.values(), default=0.0),
        "relative_errors": dict(sorted(errors.items())),
        **(details or {}),
    }
    base = (bank.entry(names[0]).get("base_model") or {}).get("name_or_path")
    folder = bank.save_weights(out_name, merged, base, source="merged", merge=record, **manifest)
    return MergeResult(name=out_name, folder=folder, method=method, rank=rank, errors=dict(errors))
