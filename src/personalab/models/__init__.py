"""Base models behind one interface: ``build_backend`` loads a base model safely and offline
and wraps it in the backend its kind needs (encoder classifier or causal LM)."""

from __future__ import annotations

from typing import Mapping, Sequence

from personalab.models.base import ROLES, Backend, BackendKind, ModelSpec
from personalab.models.causal_lm import CausalLMBackend
from personalab.models.classifier import HEAD_FILENAME, ClassifierBackend, load_head, save_head
from personalab.models.loading import ResolvedModel, resolve_model
from personalab.models.tiny import build_tiny_causal_lm, build_tiny_classifier, resolve_tiny

__all__ = [
    "ROLES",
    "Backend",
    "BackendKind",
    "CausalLMBackend",
    "ClassifierBackend",
    "HEAD_FILENAME",
    "ModelSpec",
    "ResolvedModel",
    "build_backend",
    "build_tiny_causal_lm",
    "build_tiny_classifier",
    "load_head",
    "resolve_model",
    "resolve_tiny",
    "save_head",
]


def build_backend(
    spec: ModelSpec, choices: Sequence[str], profiles: Mapping[str, str], seed: int = 0
) -> Backend:
    """The backend for ``spec``'s base model; ``seed`` draws a classifier's new head."""
    resolved = resolve_model(spec)
    if resolved.kind == "causal_lm":
        return CausalLMBackend(spec, choices, profiles, resolved=resolved)
    return ClassifierBackend(spec, choices, profiles, seed=seed, resolved=resolved)
