"""The one interface both model backends offer to everything above them.

A backend knows how to turn dataset rows into tensors and a model's outputs into scores; it
does not own training or adapters. Every method takes the torch ``model`` to run explicitly,
because that module changes over a run (the base model, the base wrapped by PEFT, later the
multi-LoRA engine), while the tokenizer and prompt format do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Sequence

import torch

from personalab.data.schema import Example

BackendKind = Literal["classifier", "causal_lm"]

# Abstract projection roles used by LoRA presets, mapped by each backend to module names.
ROLES = ("query", "key", "value", "output", "mlp_in", "mlp_out")


@dataclass
class ModelSpec:
    """Which base model to use and how to load it.

    ``name`` is ``minilm`` (the embedded default), ``tiny-classifier`` or ``tiny-causal-lm``
    (small random models built locally), or a local directory / Hugging Face hub id that is
    already in the local cache (nothing is ever downloaded).
    """

    name: str = "minilm"
    kind: BackendKind | None = None  # None: inferred from the model's config
    with_profile: bool = True  # give the persona's profile to the model with each input
    max_length: int = 128  # tokens per input (prompt) before truncation
    allow_pickle: bool = False  # permit .bin/.pt weights (unsafe: pickle can run code)
    trust_remote_code: bool = False  # permit model code from the model folder (unsafe)
    dtype: str = "float32"
    device: str = "auto"  # "auto": cuda when available, else cpu
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    kind: BackendKind
    spec: ModelSpec
    choices: tuple[str, ...]  # the task's label set (may be empty for generation)
    model: torch.nn.Module  # the base model as loaded (before any adapter)
    device: torch.device

    def target_modules(self, roles: Sequence[str]) -> list[str]:
        """Module-name suffixes that LoRA should adapt for the given projection roles."""

    def trainable_base_parameters(self) -> list[str]:
        """Names of base parameters trained with the first adapter (e.g. a new head)."""

    def collate(self, rows: Sequence[Example]) -> dict[str, torch.Tensor]:
        """Tensors for a training batch, targets included."""

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean training loss of ``model`` on a collated batch."""

    def scores(self, model: torch.nn.Module, rows: Sequence[Example]) -> torch.Tensor:
        """Log-scores ``[len(rows), len(choices)]`` for classification; higher is better."""
