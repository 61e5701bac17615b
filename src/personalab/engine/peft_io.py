"""PEFT LoRA adapter folders <-> the engine's per-module weights (``{module_path: LoraWeights}``).

Only what the engine can apply exactly is accepted: a plain LoRA (``peft_type`` LORA) stored
as ``adapter_config.json`` + ``adapter_model.safetensors``. Pickled weights, DoRA, LoRA biases,
``modules_to_save`` and the LoRA variants that change the forward pass or the base weights
are refused with a message naming the option, rather than loaded approximately.

Writing produces a folder ``PeftModel.from_pretrained`` loads; it is built in a staging folder
and renamed into place through ``personalab.data.atomic``, so a reader never sees a
half-written adapter.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from safetensors.torch import load_file, save_file

from personalab.data.atomic import replace_folder, staging_folder
from personalab.engine.weights import LoraWeights
from personalab.errors import PersonalabError

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
PICKLE_WEIGHTS = ("adapter_model.bin", "adapter_model.pt", "adapter_model.pth")
KEY_PREFIX = "base_model.model."
_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<part>A|B)\.weight$")

# Config fields the reader understands (or that only affect training-time initialisation);
# any other field set to a truthy value is some LoRA variant and is refused.
_UNDERSTOOD = {
    "peft_type", "peft_version", "task_type", "auto_mapping", "base_model_name_or_path",
    "revision", "inference_mode", "r", "lora_alpha", "use_rslora", "rank_pattern",
    "alpha_pattern", "target_modules", "exclude_modules", "layers_to_transform",
    "layers_pattern", "lora_dropout", "fan_in_fan_out", "bias", "init_lora_weights",
    "use_dora", "modules_to_save", "loftq_config", "eva_config", "corda_config",
    "lora_ga_config", "megatron_config", "megatron_core", "qalora_group_size",
    "ensure_weight_tying",
}
# init_lora_weights values whose adapters only make sense on a modified base model.
_BASE_MODIFYING_INITS = ("pissa", "olora", "corda", "loftq", "lora_ga", "mica")


class AdapterFormatError(PersonalabError, ValueError):
    """An adapter folder the engine refuses to load (wrong format or unsupported option)."""


# --- reading --------------------------------------------------------------------------------


def read_peft_adapter(folder: str | os.PathLike) -> dict[str, LoraWeights]:
    """``{module_path: LoraWeights}`` of the PEFT LoRA adapter in ``folder``; module paths are
    names in the base model. Tensors keep their stored dtype and live on the CPU."""
    folder = Path(folder)
    config = read_adapter_config(folder)
    tensors = _read_weights(folder)
    pairs = _pair_tensors(tensors, folder)
    return {
        module: _module_weights(module, a, b, config, folder)
        for module, (a, b) in sorted(pairs.items())
    }


def read_adapter_config(folder: str | os.PathLike) -> dict[str, Any]:
    """The folder's adapter config, checked to be a plain LoRA the engine applies exactly."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise AdapterFormatError(f"{folder} is not a PEFT adapter folder: no {CONFIG_FILE}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise AdapterFormatError(f"{path} is not valid JSON: {error}") from None
    _check_config(config, path)
    return config


def _check_config(config: dict[str, Any], path: Path) -> None:
    if config.get("peft_type") != "LORA":
        raise AdapterFormatError(f"{path}: peft_type {config.get('peft_type')!r} is not LORA")
    if config.get("use_dora"):
        raise AdapterFormatError(f"{path}: DoRA adapters (use_dora) are not supported")
    if config.get("bias", "none") != "none":
        raise AdapterFormatError(f"{path}: bias={config['bias']!r} is not supported (only 'none')")
    if config.get("modules_to_save"):
        raise AdapterFormatError(
            f"{path}: modules_to_save {config['modules_to_save']} is not supported (fully "
            "trained copies of base modules cannot be routed per row)"
        )
    init = str(config.get("init_lora_weights", True)).lower()
    if init.startswith(_BASE_MODIFYING_INITS):
        raise AdapterFormatError(
            f"{path}: init_lora_weights={config['init_lora_weights']!r} adapters need a modified "
            "base model; convert it to a plain LoRA first"
        )
    unknown = sorted(k for k, v in config.items() if k not in _UNDERSTOOD and v)
    if unknown:
        settings = ", ".join(f"{k}={config[k]!r}" for k in unknown)
        raise AdapterFormatError(f"{path}: unsupported LoRA option(s): {settings}")


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        pickled = [name for name in PICKLE_WEIGHTS if (folder / name).exists()]
        found = f" (found {pickled[0]}: pickled weights are never loaded)" if pickled else ""
        raise AdapterFormatError(f"{folder} has no {WEIGHTS_FILE}{found}")
    return load_file(str(path))


def _pair_tensors(
    tensors: Mapping[str, torch.Tensor], folder: Path
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        match = _KEY.match(key.removeprefix(KEY_PREFIX))
        if not key.startswith(KEY_PREFIX) or match is None:
            raise AdapterFormatError(
                f"{folder / WEIGHTS_FILE}: unexpected tensor {key!r} (a plain LoRA holds only "
                f"'{KEY_PREFIX}<module>.lora_A.weight' / '.lora_B.weight')"
            )
        parts.setdefault(match["module"], {})[match["part"]] = tensor
    if not parts:
        raise AdapterFormatError(f"{folder / WEIGHTS_FILE} holds no LoRA weights")
    incomplete = sorted(m for m, p in parts.items() if set(p) != {"A", "B"})
    if incomplete:
        raise AdapterFormatError(f"{folder}: modules {incomplete} lack lora_A or lora_B")
    return {module: (p["A"], p["B"]) for module, p in parts.items()}


def _module_weights(
    module: str, a: torch.Tensor, b: torch.Tensor, config: dict[str, Any], folder: Path
) -> LoraWeights:
    rank, alpha = module_rank_and_alpha(config, module)
    if a.dim() != 2 or b.dim() != 2 or a.shape[0] != rank or b.shape[1] != rank:
        raise AdapterFormatError(
            f"{folder}: module {module!r} has A {tuple(a.shape)} and B {tuple(b.shape)}; "
            f"expected matrices of rank {rank} (a linear-layer LoRA)"
        )
    root = math.sqrt(rank) if config.get("use_rslora") else rank
    return LoraWeights(A=a, B=b, scale=alpha / root)


def module_rank_and_alpha(config: Mapping[str, Any], module: str) -> tuple[int, float]:
    """``(r, lora_alpha)`` PEFT uses for ``module``: the first matching ``rank_pattern`` /
    ``alpha_pattern`` key (PEFT's rule: a regex matching the end of the name at a dot), else
    the config's ``r`` / ``lora_alpha``."""
    rank = _pattern_value(config.get("rank_pattern") or {}, module, config.get("r", 8))
    alpha = _pattern_value(config.get("alpha_pattern") or {}, module, config.get("lora_alpha", 8))
    return int(rank), float(alpha)


def _pattern_value(patterns: Mapping[str, Any], module: str, default: Any) -> Any:
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


# --- writing --------------------------------------------------------------------------------


def write_peft_adapter(
    folder: str | os.PathLike,
    weights: Mapping[str, LoraWeights],
    base_model_name_or_path: str | None,
    target_modules: Iterable[str] | None = None,
    *,
    revision: str | None = None,
    lora_dropout: float = 0.0,
    task_type: str | None = None,
) -> Path:
    """Write ``weights`` as a PEFT LoRA folder (replacing any older one, atomically).

    ``target_modules`` are PEFT list entries (default: the exact module paths of
    ``weights``); every module of ``weights`` must match one. Per-module ranks and scales
    become ``r`` / ``lora_alpha`` plus ``rank_pattern`` / ``alpha_pattern`` entries for the
    modules that differ from the most common ones; each alpha is chosen so that PEFT's
    ``alpha / r`` reproduces the scale bit for bit.
    """
    if not weights:
        raise ValueError("an adapter needs weights for at least one module")
    targets = sorted(weights) if target_modules is None else list(target_modules)
    _check_targets(weights, targets)
    config = adapter_config(weights, base_model_name_or_path, targets, revision, lora_dropout)
    config["task_type"] = task_type
    tensors = {}
    for module, lora in weights.items():
        tensors[f"{KEY_PREFIX}{module}.lora_A.weight"] = lora.A.detach().cpu().contiguous()
        tensors[f"{KEY_PREFIX}{module}.lora_B.weight"] = lora.B.detach().cpu().contiguous()
    return _write_folder(Path(folder), config, tensors)


def adapter_config(
    weights: Mapping[str, LoraWeights],
    base_model_name_or_path: str | None,
    target_modules: list[str],
    revision: str | None = None,
    lora_dropout: float = 0.0,
) -> dict[str, Any]:
    """The ``adapter_config.json`` mapping for ``weights``: scales as ``alpha / r`` where
    that reproduces every scale exactly, else as rsLoRA's ``alpha / sqrt(r)`` where that
    does (an adapter read from an rsLoRA folder), else the closest ``alpha / r``."""
    ranks = {module: lora.rank for module, lora in weights.items()}
    use_rslora = False
    alphas = {m: exact_alpha(w.scale, w.rank) for m, w in weights.items()}
    if any(alphas[m] / w.rank != w.scale for m, w in weights.items()):
        roots = {m: math.sqrt(w.rank) for m, w in weights.items()}
        rs_alphas = {m: exact_alpha(w.scale, roots[m]) for m, w in weights.items()}
        if all(rs_alphas[m] / roots[m] == w.scale for m, w in weights.items()):
            alphas, use_rslora = rs_alphas, True
    rank, rank_pattern = _default_and_exceptions(ranks)
    alpha, alpha_pattern = _default_and_exceptions(alphas)
    return {
        "peft_type": "LORA",
        "task_type": None,
        "base_model_name_or_path": base_model_name_or_path,
        "revision": revision,
        "inference_mode": True,
        "r": rank,
        "lora_alpha": alpha,
        "rank_pattern": rank_pattern,
        "alpha_pattern": alpha_pattern,
        "use_rslora": use_rslora,
        "use_dora": False,
        "target_modules": target_modules,
        "lora_dropout": lora_dropout,
        "bias": "none",
        "fan_in_fan_out": False,
        "modules_to_save": None,
        "init_lora_weights": True,
    }


def exact_alpha(scale: float, root: float) -> float | int:
    """An alpha with ``alpha / root == scale`` exactly in float64 (PEFT's scaling formula,
    ``root`` being r, or sqrt(r) for rsLoRA): ``scale * root`` or one of its nearest
    neighbours, else the closest of them; an int when it is a whole number."""
    guess = scale * root
    candidates = [guess]
    for direction in (math.inf, -math.inf):
        value = guess
        for _ in range(4):
            value = math.nextafter(value, direction)
            candidates.append(value)
    exact = [c for c in candidates if c / root == scale]
    # Fall back to the closest: only a scale that no alpha / root produces can miss.
    alpha = exact[0] if exact else min(candidates, key=lambda c: abs(c / root - scale))
    return int(alpha) if alpha.is_integer() and abs(alpha) < 2**53 else alpha


def _default_and_exceptions(values: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The most common value, and ``{escaped exact module name: value}`` for the others
    (escaped so that PEFT's regex matching picks exactly that module)."""
    default = Counter(values.values()).most_common(1)[0][0]
    exceptions = {re.escape(m): v for m, v in sorted(values.items()) if v != default}
    return default, exceptions


def _check_targets(weights: Mapping[str, LoraWeights], targets: list[str]) -> None:
    unmatched = [
        module
        for module in sorted(weights)
        if not any(module == t or module.endswith("." + t) for t in targets)
    ]
    if unmatched:
        raise ValueError(f"target_modules {targets} do not match modules {unmatched}")


def _write_folder(folder: Path, config: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Path:
    """Build the folder in a staging folder beside it, then swap it in: at every moment
    ``folder`` is absent, the old adapter, or the complete new one."""
    with staging_folder(folder.parent, prefix=f".{folder.name}-") as staging:
        built = staging / "adapter"
        built.mkdir()
        # Plain writes: the staging folder is the unit that appears whole (fsynced when swapped in).
        save_file(tensors, str(built / WEIGHTS_FILE), metadata={"format": "pt"})
        text = json.dumps(config, indent=2, sort_keys=True)
        (built / CONFIG_FILE).write_text(text + "\n", encoding="utf-8")
        replace_folder(built, folder, staging / "previous")  # the older one goes with staging
    return folder
