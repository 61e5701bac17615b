"""The classifier head that trains with a run's first adapter, kept in the run directory.

A classifier's head is newly initialised, so the first adapter of a run (``unified``) trains it
too; from then on it is part of the frozen base that every later adapter shares. It is stored
in the run directory (``classifier_head.safetensors``) and restored onto a freshly loaded base.
"""

from __future__ import annotations

from pathlib import Path

import torch

from personalab.models import classifier
from personalab.models.base import Backend

HEAD_FILE = classifier.HEAD_FILENAME


def head_parameters(backend: Backend) -> list[torch.nn.Parameter]:
    """The base model's parameters that train with the first adapter (empty for a causal LM)."""
    return [backend.model.get_parameter(name) for name in backend.trainable_base_parameters()]


def save_head(backend: Backend, run_dir: Path) -> None:
    if backend.trainable_base_parameters():
        classifier.save_head(backend.model, Path(run_dir) / HEAD_FILE)


def load_head(backend: Backend, run_dir: Path) -> None:
    path = Path(run_dir) / HEAD_FILE
    if path.exists():
        classifier.load_head(backend.model, path)
