"""One shared LoRA adapter trained together with a learned vector per persona, which every
row of that persona adds to each of its input embeddings (``persona_token`` with
``identity: learned``; the vectors enter through ``engine.input_vectors``).

The adapter and the vectors live in a multi-LoRA engine over the backend's model. Route 0 is
the adapter alone (rows that add no vector: the anonymous share of the train rows, and the
rows of personas without a vector); route ``k`` is the adapter plus persona ``k``'s vector.
The one training loop (a fleet of one member, ``train.fleet``) gives each row the route that
adds its persona's vector, trains the vectors at a learning rate of their own, and restores
the best epoch of both.

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
from personalab.engine import LoraWeights, MultiLoraModel
from personalab.models.base import Backend
from personalab.train.fleet import ExtraParameters, Member, train_fleet
from personalab.train.result import TrainResult
from personalab.train.presets import TrainSettings


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
    known = set(personas)
    engine = MultiLoraModel(backend.model, backend.target_modules(settings.target_roles))
    try:
        engine.set_input_vectors(personas, trainable=True)  # zeros
        member = Member(name, list(train_rows), list(val_rows),
                        extra=[ExtraParameters([engine.input_vectors.weight], vector_lr)],
                        train_vectors=list(train_personas),
                        val_vectors=[p if p in known else None for p in val_personas])
        result = train_fleet(backend, engine, [member], settings, seed, progress=progress, label=name)[name]
        names, vectors = engine.input_vector_table()
        return TrainedWithVectors(engine.adapter_weights(name), names, vectors, result)
    finally:
        engine.unwrap()
