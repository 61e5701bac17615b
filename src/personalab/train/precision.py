"""Training over a 16-bit base model: what the training loops do differently, in one place.

The base model is loaded in ``ModelSpec.dtype`` (float32, bfloat16 or float16) and stays
frozen. Everything that trains is float32 already where it is created — PEFT's LoRA weights
(``autocast_adapter_dtype``), the engine's trainable adapters, a classifier's head
(``models.classifier.head_in_float32``), learned input vectors — so gradients and AdamW's state
are float32 and no separate master copy is needed; ``Precision`` checks that this holds.

What float16 still needs is loss scaling: its narrow exponent range flushes small gradients to
zero on their way back through the 16-bit base. ``Precision`` then scales the loss before
backward, unscales the float32 gradients before they are clipped, and skips an optimizer step
whose gradients overflowed (``torch.amp.GradScaler``). bfloat16 has float32's range and needs
none of this; float32 needs nothing at all. The loops call two methods::

    precision.backward(loss, optimizer)   # instead of loss.backward()
    ... clip gradients ...
    precision.step(optimizer)             # instead of optimizer.step()
"""

from __future__ import annotations

from typing import Iterable

import torch

HALF = (torch.float16, torch.bfloat16)


class Precision:
    def __init__(self, model: torch.nn.Module, trainable: Iterable[torch.nn.Parameter]):
        """For training ``trainable`` (the parameters the optimizer updates) inside ``model``;
        a float16 base turns loss scaling on."""
        check_float32(trainable)
        base_dtype = frozen_dtype(model)
        device = next(model.parameters()).device
        # A smaller first scale than GradScaler's 2**16: an adapter trains for a few steps only
        # (30 rows, batch 16: 2 a epoch), and every overflow at the start skips one of them.
        half = base_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(device.type, init_scale=2.0**12) if half else None

    def backward(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Gradients of ``loss``, unscaled (ready to clip) when scaling is on."""
        if self.scaler is None:
            loss.backward()
            return
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()``; with scaling, skipped when a gradient is inf or nan, and the
        scale adjusted."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()


def frozen_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype of the model's frozen floating weights (the base), float32 if it has none."""
    for parameter in model.parameters():
        if not parameter.requires_grad and parameter.is_floating_point():
            return parameter.dtype
    return torch.float32


def check_float32(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Refuse to train 16-bit parameters: updates smaller than their rounding step are lost."""
    half = sorted({str(p.dtype) for p in parameters if p.dtype in HALF})
    if half:
        raise ValueError(f"trainable parameters must be float32 (as adapters and heads are created), got {half}")
