"""Base models behind one interface: ``build_backend`` loads a base model safely and offline
and wraps it in the backend its kind needs (encoder classifier or causal LM)."""

from __future__ import annotations

from typing import Mapping, Sequence

from personalab.errors import PersonalabError
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
    spec: ModelSpec, choices: Sequence[str], profiles: Mapping[str, str], seed: int = 0, task: str = "classification"
) -> Backend:
    """The backend for ``spec``'s base model; ``seed`` draws a classifier's new head. A
    ``generation`` task needs a causal LM: an encoder classifier is refused before it loads."""
    resolved = resolve_model(spec)
    if task == "generation" and resolved.kind != "causal_lm":
        raise PersonalabError(
            f"the dataset is a generation task (open answers), and {spec.name} is an encoder classifier, which "
            "can only pick among choices: train with a causal language model (--model tiny-causal-lm, or a local "
            "folder such as Qwen2.5-0.5B)")
    if resolved.kind == "causal_lm":
        return CausalLMBackend(spec, choices, profiles, resolved=resolved)
    return ClassifierBackend(spec, choices, profiles, seed=seed, resolved=resolved)
