"""The one interface both model backends offer to everything above them.

A backend knows how to turn dataset rows into tensors and a model's outputs into scores; it
does not own training or adapters. Every method takes the torch ``model`` to run explicitly,
because that module changes over a run (the base model, the base wrapped by PEFT, later the
multi-LoRA engine), while the tokenizer and prompt format do not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, Sequence

import torch

from personalab.data.schema import Example
from personalab.errors import PersonalabError

BackendKind = Literal["classifier", "causal_lm"]
Dtype = Literal["float32", "bfloat16", "float16"]
DTYPES = ("float32", "bfloat16", "float16")
# How a model runs, not what it computes (up to rounding and the draw of dropout masks): left
# out of adapter fingerprints, so that an adapter trained on a GPU with large batches is reused
# on a laptop, and the same command resumes after only these changed.
EXECUTION_FIELDS = ("device", "gradient_checkpointing", "train_batch_size", "score_batch_size")

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
    dtype: Dtype = "float32"
    """The base model's weights: float32, bfloat16 or float16. What trains (LoRA weights, a
    classifier's head, learned vectors) and its optimizer state stay float32 whatever this is."""
    device: str = "auto"  # "auto": cuda when available, else cpu
    gradient_checkpointing: bool = False
    """Recompute each layer's activations during backward instead of keeping them: less memory
    for a slower training step (works with routed fleet training)."""
    train_batch_size: int | None = None
    """Rows per forward/backward pass in fleet training (several personas' mini-batches packed
    into one pass); None: the device's default. Each adapter's own mini-batch is the training
    setting ``batch_size``."""
    score_batch_size: int | None = None
    """Rows (a classifier) or sequences (a causal LM) per forward pass when scoring; None: the
    device's default."""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise PersonalabError(f"unknown dtype {self.dtype!r}; use {', '.join(DTYPES)}")
        for name in ("train_batch_size", "score_batch_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise PersonalabError(f"{name} must be a whole number of at least 1, got {value!r}")

    def identity(self) -> dict[str, Any]:
        """The fields that decide what a model computes, for adapter fingerprints: everything
        but how it runs (``EXECUTION_FIELDS``). ``dtype`` stays: a 16-bit base is another
        function. ``device`` is kept at its default so that fingerprints of runs made before
        the execution fields existed stay valid (they all hashed ``device: auto``)."""
        identity = {k: v for k, v in asdict(self).items() if k not in EXECUTION_FIELDS}
        identity["device"] = "auto"
        return identity


class Backend(Protocol):
    """Implemented by ``ClassifierBackend`` and ``CausalLMBackend``; ``build_backend`` picks.

    The causal-LM backend also offers ``generate(model, rows, route_ids, settings)`` and
    ``generate_mixture`` (an output-space ensemble) for open outputs; the classifier has no
    such methods (``kind`` says which backend it is).
    """

    kind: BackendKind
    spec: ModelSpec
    choices: tuple[str, ...]  # the task's label set (may be empty for generation)
    model: torch.nn.Module  # the base model as loaded (before any adapter), in eval mode
    tokenizer: Any  # the model's Hugging Face tokenizer (persona_token draws identifiers from it)
    device: torch.device
    batch_size: int  # rows (classifier) or sequences (causal LM) per forward pass in scores
    train_batch_size: int  # rows per forward/backward pass in fleet training

    def target_modules(self, roles: Sequence[str]) -> list[str]:
        """Module names LoRA should adapt for the given projection roles, as PEFT
        ``target_modules`` list entries (each matches a module equal to it or ending with
        ``"." + entry``); exact full names where a plain suffix would be ambiguous."""

    def trainable_base_parameters(self) -> list[str]:
        """Names (relative to ``self.model``) of base parameters trained with the first
        adapter, e.g. a classifier's new head; empty for a causal LM."""

    def collate(
        self, rows: Sequence[Example], route_ids: Sequence[int] | torch.Tensor | None = None,
        share_prefixes: bool = False,
    ) -> dict[str, torch.Tensor]:
        """CPU tensors for a training batch, targets (``labels``) included; with
        ``route_ids`` (one per row, indices into a multi-LoRA engine's route table) also a
        ``route_ids`` long tensor. ``share_prefixes``: the rows of one route may run the
        beginning they share once (a causal LM: ``personalab.models.shared_prefix``); the
        losses are the same within float rounding."""

    def train_lengths(self, rows: Sequence[Example]) -> list[int]:
        """Tokens in each row's training sequence as ``collate`` builds it (truncated, not
        padded): a batch's padded size is its row count times its longest row's length."""

    def loss(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean training loss of ``model`` on a collated batch (moved to the model's device);
        a batch's ``route_ids`` are passed on to the model as ``route_ids=`` (kept on the CPU,
        where the engine reads them)."""

    def loss_terms(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row of the batch: (summed loss, number of predictions it sums over).

        ``loss`` is ``sums.sum() / counts.sum()``; fleet training uses the terms to give each
        adapter the mean over its own rows, exactly as if it were trained alone."""

    def scores(
        self,
        model: torch.nn.Module,
        rows: Sequence[Example],
        route_ids: Sequence[int] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Log-scores ``[len(rows), len(choices)]`` on CPU; higher is better; -inf where a
        row's own ``choices`` exclude the choice. Runs in eval mode without autograd and
        restores the model's previous train/eval mode. With ``route_ids`` (one per row) every
        forward pass gets ``route_ids=`` for the sequences it scores, so one call can score
        each row with its own route (and a row repeated under several routes)."""


def route_id_tensor(route_ids: Sequence[int] | torch.Tensor, n_rows: int) -> torch.Tensor:
    """``route_ids`` as a 1-d CPU long tensor with one entry per row."""
    ids = torch.as_tensor(route_ids, dtype=torch.long).reshape(-1).cpu()
    if ids.numel() != n_rows:
        raise ValueError(f"got {ids.numel()} route ids for {n_rows} rows")
    return ids
