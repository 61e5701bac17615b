"""How rows are cut into batches: by similar length, because padding is wasted compute.

A batch is padded to its longest row; on a CPU an encoder pays for every padded token, so
grouping rows of similar length cuts training and scoring time substantially on data whose
lengths vary (POPQUORN comments run from a few words to 600 characters). Length is measured in
characters of the input, a backend-independent stand-in for tokens.
"""

from __future__ import annotations

from typing import Sequence

import torch

from personalab.data.schema import Example

# Rows are sorted by length within windows of this many batches, so batches stay random.
WINDOW_BATCHES = 50


def length_sorted_chunks(rows: Sequence[Example], size: int) -> list[list[int]]:
    """Row indices in chunks of ``size``, longest rows first: for scoring and validation."""
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i].input))
    return [order[start : start + size] for start in range(0, len(order), size)]


def shuffled_length_grouped_batches(
    rows: Sequence[Example], batch_size: int, generator: torch.Generator
) -> list[list[int]]:
    """A seeded random epoch of batches whose rows have similar lengths.

    Shuffle, sort by length inside windows of ``WINDOW_BATCHES`` batches, cut into batches,
    then shuffle the batch order (the idea of Hugging Face's ``group_by_length``).
    """
    permutation = torch.randperm(len(rows), generator=generator).tolist()
    window = batch_size * WINDOW_BATCHES
    batches = []
    for start in range(0, len(permutation), window):
        part = sorted(permutation[start : start + window], key=lambda i: -len(rows[i].input))
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    order = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in order]
