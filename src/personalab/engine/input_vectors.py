"""``InputVectors``: a table of named vectors, one of which each row of a batch may add to
every one of its input embeddings (the learned persona vectors of ``persona_token`` with
``identity: learned``).

For row ``i`` routed to vector ``v`` the input embedding of every position ``t`` becomes
``e[i, t] + v``. The vectors enter through a forward hook on the model's input-embedding
module (``get_input_embeddings()``, which every Hugging Face model has): the sequence length,
the attention mask, the position ids and everything after the embedding stay as they are, so
the same hook serves an encoder and a causal LM, left padding and packed choices included, and
each token a causal LM generates gets the vector like its prompt did. (On a padding position
the vector is added to an embedding that no real token attends to: it changes nothing.)

Which row adds which vector comes with the routes (``MultiLoraModel.set_routes(routes,
vectors=...)``): a route id names an adapter mixture and, optionally, one vector of the table;
rows without one add nothing. The table is float32, like trainable LoRA weights; the sum is
taken in float32 and cast back to the embedding's dtype.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

NO_VECTOR = -1  # the slot of a route (or row) that adds no vector


class InputVectors(nn.Module):
    def __init__(self, names: Sequence[str], vectors: torch.Tensor, trainable: bool = False):
        """``vectors[k]`` is vector ``names[k]``; ``trainable`` makes the table a parameter
        that gets gradients (else it is frozen)."""
        super().__init__()
        names = [str(name) for name in names]
        if len(set(names)) != len(names):
            raise ValueError("input vector names must be distinct")
        if vectors.dim() != 2 or vectors.shape[0] != len(names):
            raise ValueError(f"input vectors must be [{len(names)}, hidden], got {list(vectors.shape)}")
        self.names = names
        self.slot = {name: k for k, name in enumerate(names)}
        self.weight = nn.Parameter(vectors.detach().float().clone(), requires_grad=trainable)
        self._rows: torch.Tensor | None = None  # [n, hidden] of the current call, or None

    def slots(self, names: Sequence[str | None]) -> torch.Tensor:
        """Host long tensor: each name's slot in the table, ``NO_VECTOR`` for None."""
        unknown = sorted({n for n in names if n is not None and n not in self.slot})
        if unknown:
            raise ValueError(f"no input vector {unknown[0]!r} is loaded ({len(self.names)} loaded"
                             f"{': ' + ', '.join(self.names[:5]) if self.names else ''})")
        return torch.tensor([NO_VECTOR if n is None else self.slot[n] for n in names], dtype=torch.long)

    def set_rows(self, slots: torch.Tensor | None) -> None:
        """The vector slot of every row of the next forward call (None: no row adds one)."""
        if slots is None or bool((slots == NO_VECTOR).all()):
            self._rows = None
            return
        slots = slots.to(self.weight.device)
        keep = (slots != NO_VECTOR).to(self.weight.dtype)[:, None]
        self._rows = self.weight[slots.clamp(min=0)] * keep  # gathered per call: a fresh graph each time

    def add_to(self, module: nn.Module, inputs: Any, embeddings: torch.Tensor) -> torch.Tensor | None:
        """Forward hook of the input-embedding module: ``embeddings + v`` per row."""
        if self._rows is None:
            return None
        if embeddings.shape[0] != self._rows.shape[0]:
            raise ValueError(f"{embeddings.shape[0]} sequences embedded, {self._rows.shape[0]} row vectors set")
        return (embeddings.float() + self._rows[:, None, :]).to(embeddings.dtype)


def input_embedding_module(model: nn.Module) -> nn.Module:
    """The model's input-embedding module (token ids -> vectors), where vectors are added."""
    getter = getattr(model, "get_input_embeddings", None)
    module = getter() if getter is not None else None
    if not isinstance(module, nn.Module):
        raise ValueError(f"{type(model).__name__} has no input embeddings (get_input_embeddings) to add vectors to")
    return module
