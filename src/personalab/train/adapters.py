"""Putting a fresh LoRA adapter on a backend's model, and the base-model head that trains
with the first adapter.

A classifier's head is newly initialised, so the first adapter trains it too; from then on it
is part of the frozen base that every later adapter shares. It is stored beside the bank as
``base_head.safetensors`` (keyed by base-model parameter name) and restored onto a fresh base.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file, save_file

from personalab.models.base import Backend
from personalab.train.presets import TrainSettings

HEAD_FILE = "base_head.safetensors"


def lora_config(backend: Backend, settings: TrainSettings) -> LoraConfig:
    # No task_type: PEFT would then add the classifier head to modules_to_save, which
    # multi-LoRA servers reject; the head lives in the base instead.
    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=backend.target_modules(settings.target_roles),
        bias="none",
    )


def add_lora(backend: Backend, settings: TrainSettings, adapter_name: str = "default", train_head: bool = False) -> Any:
    """Wrap the backend's base model with a new trainable adapter (and, optionally, its head)."""
    model = get_peft_model(backend.model, lora_config(backend, settings), adapter_name=adapter_name)
    if train_head:
        for name, param in _head_parameters(model, backend).items():
            param.requires_grad_(True)
    return model


def save_head(backend: Backend, model: torch.nn.Module, run_dir: Path) -> Path | None:
    """Save the head parameters of ``model`` (if the backend has a head) under the run."""
    params = _head_parameters(model, backend)
    if not params:
        return None
    path = Path(run_dir) / HEAD_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({name: p.detach().cpu().contiguous() for name, p in params.items()}, str(tmp))
    tmp.replace(path)
    return path


def load_head(backend: Backend, run_dir: Path) -> None:
    """Restore a saved head onto the backend's (unwrapped) base model, if the run has one."""
    path = Path(run_dir) / HEAD_FILE
    if not path.exists():
        return
    state = load_file(str(path), device=str(backend.device))
    missing = backend.model.load_state_dict(state, strict=False).unexpected_keys
    if missing:
        raise ValueError(f"{path} holds parameters the base model lacks: {missing[:3]}")


def _head_parameters(model: torch.nn.Module, backend: Backend) -> dict[str, torch.nn.Parameter]:
    """Head parameters keyed by their name in the *base* model (PEFT adds a prefix)."""
    wanted = set(backend.trainable_base_parameters())
    found = {}
    for name, param in model.named_parameters():
        base_name = name.removeprefix("base_model.model.")
        if base_name in wanted:
            found[base_name] = param
    return found
