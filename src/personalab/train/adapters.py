"""Putting a fresh LoRA adapter on a backend's model, and keeping the base-model head that
trains with the first adapter.

A classifier's head is newly initialised, so the first adapter of a run trains it too; from
then on it is part of the frozen base that every later adapter shares. It is stored in the run
directory (``classifier_head.safetensors``) and restored onto a freshly loaded base.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from peft import LoraConfig, get_peft_model

from personalab.models import classifier
from personalab.models.base import Backend
from personalab.train.presets import TrainSettings

HEAD_FILE = classifier.HEAD_FILENAME


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
        base = model.get_base_model()
        for name in backend.trainable_base_parameters():
            base.get_parameter(name).requires_grad_(True)  # PEFT froze it with the rest
    return model


def save_head(backend: Backend, model: Any, run_dir: Path) -> None:
    if backend.trainable_base_parameters():
        classifier.save_head(model, Path(run_dir) / HEAD_FILE)


def load_head(backend: Backend, run_dir: Path) -> None:
    path = Path(run_dir) / HEAD_FILE
    if path.exists():
        classifier.load_head(backend.model, path)
