"""One LoRA adapter's weights at one module: ``A [r, in]``, ``B [out, r]`` and its scale.

This is the engine's exchange format between PEFT folders (``peft_io``), the multi-LoRA
layers and whatever merges or trains adapters: ``{module_path: LoraWeights}``, with module
paths named as in the *base* model (``model.layers.0.self_attn.q_proj``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LoraWeights:
    """The delta this adapter adds to a linear layer's weight is ``scale * B @ A``."""

    A: torch.Tensor  # [r, in_features]
    B: torch.Tensor  # [out_features, r]
    scale: float  # lora_alpha / r (or lora_alpha / sqrt(r) with rsLoRA)

    def __post_init__(self) -> None:
        if self.A.dim() != 2 or self.B.dim() != 2:
            raise ValueError(
                f"LoRA A and B must be matrices, got shapes {tuple(self.A.shape)} and "
                f"{tuple(self.B.shape)}"
            )
        if self.A.shape[0] != self.B.shape[1]:
            raise ValueError(
                f"LoRA rank mismatch: A is {tuple(self.A.shape)} (rank first), "
                f"B is {tuple(self.B.shape)} (rank last)"
            )
        object.__setattr__(self, "scale", float(self.scale))

    @property
    def rank(self) -> int:
        return self.A.shape[0]

    @property
    def in_features(self) -> int:
        return self.A.shape[1]

    @property
    def out_features(self) -> int:
        return self.B.shape[0]

    def delta(self) -> torch.Tensor:
        """``scale * B @ A`` (``[out, in]``), in float32 or wider, for merges and checks."""
        dtype = torch.promote_types(self.A.dtype, torch.float32)
        return self.scale * (self.B.to(dtype) @ self.A.to(dtype))


def weights_to_bytes(weights: "dict[str, LoraWeights]") -> bytes:
    """``{module_path: LoraWeights}`` as one safetensors blob, the form an adapter travels in
    between processes (a Ray worker to the driver): tensors only, never pickle. The scales
    ride in the header's metadata as ``repr`` of the float, which reads back exactly."""
    from safetensors.torch import save

    tensors, scales = {}, {}
    for path, lora in weights.items():
        tensors[f"{path}.A"] = lora.A.detach().cpu().contiguous()
        tensors[f"{path}.B"] = lora.B.detach().cpu().contiguous()
        scales[path] = repr(lora.scale)
    return save(tensors, metadata=scales)


def weights_from_bytes(data: bytes) -> "dict[str, LoraWeights]":
    """The weights ``weights_to_bytes`` wrote, bit for bit."""
    from safetensors.torch import load

    tensors = load(data)
    paths = sorted({name.rsplit(".", 1)[0] for name in tensors})
    scales = _metadata(data)
    return {path: LoraWeights(tensors[f"{path}.A"], tensors[f"{path}.B"], float(scales[path])) for path in paths}


def _metadata(data: bytes) -> dict[str, str]:
    # safetensors' header: an 8-byte little-endian length, then JSON with "__metadata__".
    import json
    import struct

    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]).get("__metadata__", {})
