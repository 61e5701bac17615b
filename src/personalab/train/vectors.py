"""One shared LoRA adapter trained together with a learned vector per persona, which every
row of that persona adds to each of its input embeddings (``persona_token`` with
``identity: learned``; the vectors enter through ``engine.input_vectors``).

The adapter and the vectors live in a multi-LoRA engine over the backend's model. Route 0 is
the adapter alone (rows that add no vector: the anonymous share of the train rows, and the
rows of personas without a vector); route ``k`` is the adapter plus persona ``k``'s vector.
The one training loop (``loop.train_adapter``) runs the engine with each row's route id, the
vectors in a parameter group of their own learning rate, and restores the best epoch of both.

The adapter starts as PEFT starts one (A Kaiming-uniform, B zero) and every vector at zero,
so training starts from the base model itself, and a persona's vector moves only with the
gradients of its own rows; a row that adds no vector sees exactly what a persona unknown to
the run will see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from personalab.data.schema import Example
from personalab.engine import LoraWeights, MultiLoraModel, Route
from personalab.models.base import Backend
from personalab.train.fleet import new_lora_weights
from personalab.train.loop import TrainResult, train_adapter
from personalab.train.presets import TrainSettings

VECTOR_PARAMETER = "input_vectors.weight"  # the engine's table, as its named_parameters() calls it


@dataclass
class TrainedWithVectors:
    weights: dict[str, LoraWeights]  # the adapter, ready for the bank
    personas: list[str]  # the vectors' order
    vectors: torch.Tensor  # [len(personas), hidden] float32
    result: TrainResult


def train_with_vectors(
    backend: Backend,
    name: str,
    train: tuple[Sequence[Example], Sequence[str | None]],
    val: tuple[Sequence[Example], Sequence[str | None]],
    settings: TrainSettings,
    vector_lr: float,
    seed: int = 0,
    progress: bool = True,
) -> TrainedWithVectors:
    """Adapter ``name`` and one vector per persona named in ``train``'s second part (the
    persona whose vector each row adds; None: none), trained on ``train``'s rows, the best
    epoch chosen on ``val``'s (a val row naming a persona without a vector adds none). The
    backend's model is left as it was."""
    (train_rows, train_personas), (val_rows, val_personas) = train, val
    personas = sorted({p for p in train_personas if p is not None})
    engine = MultiLoraModel(backend.model, backend.target_modules(settings.target_roles))
    try:
        targets = backend.target_modules(settings.target_roles)
        engine.add_adapter(name, new_lora_weights(engine, targets, settings, seed), trainable=True,
                           dropout=settings.dropout)
        engine.set_input_vectors(personas, trainable=True)  # zeros
        engine.set_routes([Route.single(name)] * (len(personas) + 1), vectors=[None, *personas])
        route = {p: k + 1 for k, p in enumerate(personas)}
        route_ids = ([route.get(p, 0) for p in train_personas], [route.get(p, 0) for p in val_personas])
        result = train_adapter(backend, engine, list(train_rows), list(val_rows), settings, seed=seed,
                               progress=progress, label=name, route_ids=route_ids,
                               own_lr={VECTOR_PARAMETER: vector_lr})
        names, vectors = engine.input_vector_table()
        return TrainedWithVectors(engine.adapter_weights(name), names, vectors, result)
    finally:
        engine.unwrap()
