"""Which base model an adapter belongs to, and whether it fits another one.

A base is described by a plain dict (it goes into the manifest as it is):
``name_or_path`` as transformers or PEFT recorded it, ``hub_id`` and ``revision`` when the
name is a hub id or a Hugging Face cache snapshot, ``model_type``, and, when a model was at
hand, ``module_shapes`` (``{module: [in_features, out_features]}``) for checks made later
without the model.

The rule, in one place (``base_conflict`` + ``shape_misfits``): two hub ids must be the same
repository (and the same revision when both are known). A local folder proves nothing by its
name: run directories and model caches are copied between machines and rebuilt in temporary
folders, so where either side is a local path (or unknown) the bases agree when their
``model_type`` agrees (when both are known) and every LoRA tensor fits the module it adapts.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

# .../models--Qwen--Qwen2.5-0.5B/snapshots/<commit>: the layout of the Hugging Face cache.
_HUB_CACHE_PATH = re.compile(r"models--(?P<repo>[^/\\]+)[/\\]snapshots[/\\](?P<revision>[^/\\]+)")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
# Keys of a saved PEFT LoRA adapter: base_model.model.<module>.<lora tensor>[.weight].
_LORA_KEY = re.compile(r"base_model\.model\.(?P<module>.+)\.(?P<part>lora_(?:embedding_)?[AB])(?:\.weight)?")


def describe_base(name_or_path: str | None, revision: str | None = None, model_type: str | None = None) -> dict[str, Any]:
    """A base description from what an adapter config or a model records."""
    name_or_path = str(name_or_path) if name_or_path else None
    hub_id, cache_revision = _hub_identity(name_or_path)
    return {
        "name_or_path": name_or_path,
        "hub_id": hub_id,
        "revision": revision or cache_revision,
        "model_type": model_type,
    }


def describe_model(model: torch.nn.Module) -> dict[str, Any]:
    """The description of a (transformers) model, with its module shapes."""
    config = getattr(model, "config", None)
    # transformers copies the config's name onto the model when loading; PEFT reads the model's.
    name = getattr(model, "name_or_path", None) or getattr(config, "name_or_path", None)
    base = describe_base(name, model_type=getattr(config, "model_type", None))
    base["module_shapes"] = module_shapes(model)
    return base


def _hub_identity(name_or_path: str | None) -> tuple[str | None, str | None]:
    if not name_or_path:
        return None, None
    cached = _HUB_CACHE_PATH.search(name_or_path)
    if cached:
        return cached["repo"].replace("--", "/"), cached["revision"]
    if _is_local_path(name_or_path) or not _HUB_ID.fullmatch(name_or_path):
        return None, None
    return name_or_path, None


def _is_local_path(name: str) -> bool:
    return os.path.isabs(name) or name.startswith((".", "~")) or "\\" in name or Path(name).exists()


def label(base: dict[str, Any] | None) -> str:
    """How a base is named in messages."""
    if not base:
        return "an unknown base model"
    if base.get("hub_id"):
        revision = f" (revision {base['revision']})" if base.get("revision") else ""
        return f"'{base['hub_id']}'{revision}"
    name = base.get("name_or_path") or "an unnamed model"
    kind = f" ({base['model_type']})" if base.get("model_type") else ""
    return f"'{name}'{kind}"


def base_conflict(recorded: dict[str, Any] | None, actual: dict[str, Any] | None) -> str | None:
    """Why two bases are different models, or None when they may be the same (shapes decide)."""
    recorded, actual = recorded or {}, actual or {}
    if recorded.get("hub_id") and actual.get("hub_id"):
        if recorded["hub_id"].casefold() != actual["hub_id"].casefold():
            return "they are different models"
        if recorded.get("revision") and actual.get("revision") and recorded["revision"] != actual["revision"]:
            return "they are different revisions"
        return None
    if recorded.get("model_type") and actual.get("model_type") and recorded["model_type"] != actual["model_type"]:
        return f"their architectures differ ({recorded['model_type']} vs {actual['model_type']})"
    return None


# --- shapes ----------------------------------------------------------------------------------


def module_shapes(model: torch.nn.Module) -> dict[str, list[int]]:
    """``{module name: [in, out]}`` for every module LoRA could adapt, named as in the plain
    model: inside a PEFT-wrapped model the LoRA layer stands for its ``base_layer``."""
    shapes = {}
    for name, module in model.named_modules():
        parts = name.split(".")
        if "base_layer" in parts or any(part.startswith("lora_") for part in parts):
            continue
        features = _features(module)
        if features is not None:
            shapes[name] = list(features)
    return shapes


def _features(module: torch.nn.Module) -> tuple[int, int] | None:
    pairs = (("in_features", "out_features"), ("nx", "nf"), ("num_embeddings", "embedding_dim"))  # Linear, GPT-2's Conv1D, Embedding
    for first, second in pairs:
        values = getattr(module, first, None), getattr(module, second, None)
        if all(isinstance(v, int) for v in values):
            return values
    return None


def adapter_tensor_shapes(keys_and_shapes: dict[str, list[int]]) -> dict[str, dict[str, list[int]]]:
    """``{module: {"A": shape, "B": shape}}`` from a LoRA state dict's keys and shapes."""
    modules: dict[str, dict[str, list[int]]] = {}
    for key, shape in keys_and_shapes.items():
        match = _LORA_KEY.fullmatch(key)
        if match:
            modules.setdefault(match["module"], {})[match["part"][-1]] = list(shape)
    return modules


def is_lora_key(key: str) -> bool:
    return _LORA_KEY.fullmatch(key) is not None


def shape_misfits(adapter: dict[str, dict[str, list[int]]], shapes: dict[str, list[int]], limit: int = 3) -> list[str]:
    """What in the adapter does not fit the model: missing modules, wrong in/out sizes.
    LoRA's A is ``[r, in]`` and B is ``[out, r]`` (embeddings alike)."""
    problems = []
    for module, tensors in sorted(adapter.items()):
        if module not in shapes:
            problems.append(f"the model has no module {module}")
            continue
        expected_in, expected_out = shapes[module]
        got_in = tensors.get("A", [None, expected_in])[-1]
        got_out = tensors.get("B", [expected_out])[0]
        if (got_in, got_out) != (expected_in, expected_out):
            problems.append(f"{module} is {expected_in}->{expected_out} in the model, {got_in}->{got_out} in the adapter")
    return problems[:limit]
