"""What both backends need to know about dataset rows: the label each row's output is, which
choices a row allows, the profile of its persona, how rows are cut into eval batches, and how
token sequences are padded into one batch.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Mapping, Sequence, TypeVar

import torch

from personalab.data.schema import Example
from personalab.errors import PersonalabError

T = TypeVar("T")


def allowed_choices(row: Example, choices: Sequence[str]) -> tuple[str, ...]:
    """The row's own label set when it has one (checked against the task's), else the task's."""
    if row.choices is None:
        return tuple(choices)
    unknown = [c for c in row.choices if c not in choices]
    if unknown:
        raise PersonalabError(
            f"row of persona {row.persona_id!r} allows {unknown}, which the task's label set "
            f"{list(choices)} does not contain"
        )
    return tuple(row.choices)


def allowed_choice_mask(rows: Sequence[Example], choices: Sequence[str]) -> torch.Tensor:
    """Bool ``[len(rows), len(choices)]``: True where the row allows the choice."""
    mask = torch.zeros(len(rows), len(choices), dtype=torch.bool)
    for i, row in enumerate(rows):
        for choice in allowed_choices(row, choices):
            mask[i, choices.index(choice)] = True
    return mask


def label_index(row: Example, choices: Sequence[str]) -> int:
    try:
        return list(choices).index(row.output)
    except ValueError:
        raise PersonalabError(
            f"output {row.output!r} of persona {row.persona_id!r} is not in the label set "
            f"{list(choices)}"
        ) from None


def profile_of(row: Example, profiles: Mapping[str, str]) -> str:
    try:
        return profiles[row.persona_id]
    except KeyError:
        raise PersonalabError(f"no profile for persona {row.persona_id!r}") from None


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode (no dropout) and no autograd for scoring; the caller's mode is restored, so
    scoring in the middle of training leaves training mode on."""
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def pad_sequences(
    sequences: Sequence[list[int]], pad_value: int, side: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, attention_mask)`` long tensors, padded on ``side`` ("left" or "right")."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_value, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, sequence in enumerate(sequences):
        start = width - len(sequence) if side == "left" else 0
        ids[i, start : start + len(sequence)] = torch.tensor(sequence, dtype=torch.long)
        mask[i, start : start + len(sequence)] = 1
    return ids, mask
