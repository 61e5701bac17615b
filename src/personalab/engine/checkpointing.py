"""Gradient (activation) checkpointing of a Hugging Face base model, made safe for routed rows.

A checkpointed layer keeps only its inputs in the forward pass and runs again during backward
to rebuild its activations. The multi-LoRA engine sets each batch's row routes on its layers for
the duration of one forward call and clears them afterwards, so a plain recomputation would run
the layers without routes: a different function from the one whose graph is being
differentiated (wrong gradients, or PyTorch's "recomputed tensors differ" error).

The fix is PyTorch's own hook for this: non-reentrant ``torch.utils.checkpoint`` takes a
``context_fn`` that is called when a layer is checkpointed in the forward pass and returns the
context the recomputation runs in. The engine passes one that captures the routes set at that
moment and sets them again, on every engine layer, while that layer is recomputed
(``MultiLoraModel.enable_gradient_checkpointing``). Dropout masks need nothing: checkpoint
restores the random number generator's state for the recomputation by default.

The functions here speak to transformers' API by duck typing (it renamed the methods in 5.x:
``activation_checkpointing_enable`` / ``is_activation_checkpointing``), so that the engine stays
free of a transformers import.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Iterator

from torch import nn

ContextFn = Callable[[], tuple[Any, Any]]


def is_checkpointing(model: nn.Module) -> bool:
    """Whether ``model`` (a transformers model) checkpoints its layers in training mode."""
    check = getattr(model, "is_activation_checkpointing", None)
    if callable(check):
        return bool(check())
    with warnings.catch_warnings():  # the older name is a deprecated property in 5.x
        warnings.simplefilter("ignore", FutureWarning)
        return bool(getattr(model, "is_gradient_checkpointing", False))


def enable_checkpointing(model: nn.Module, context_fn: ContextFn | None = None) -> None:
    """Turn on non-reentrant checkpointing of ``model``'s layers, with ``context_fn`` (see the
    module docstring) when given. Non-reentrant also needs no input that requires gradients, so
    a frozen base with LoRA adapters needs no ``enable_input_require_grads``. Raises
    ``ValueError`` for a model that cannot checkpoint."""
    kwargs: dict[str, Any] = {"use_reentrant": False}
    if context_fn is not None:
        kwargs["context_fn"] = context_fn
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    elif hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    else:
        raise ValueError(f"{type(model).__name__} has no gradient checkpointing")


@contextlib.contextmanager
def rows_restored(layers: list[Any], rows: Any) -> Iterator[None]:
    """Set ``rows`` on every layer for the duration, then put back what each layer had."""
    before = [layer._rows for layer in layers]
    for layer in layers:
        layer.set_rows(rows)
    try:
        yield
    finally:
        for layer, previous in zip(layers, before):
            layer.set_rows(previous)
