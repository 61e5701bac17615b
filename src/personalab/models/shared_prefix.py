"""Training rows that begin alike run their common beginning once ("prefix sharing").

In a fleet step the rows of one route are one persona's mini-batch, and they begin alike: the
chat template, the instruction and the persona's profile, often most of each row's tokens. A
causal LM computes position t from positions up to t only, so under one route that shared
prefix has the same keys and values in every row. A batch collated with shared prefixes runs
each route's prefix once (the *prefix pass*, which keeps its key/value cache), copies each
prefix's cache to its rows (transformers' ``Cache.reorder_cache``, an ``index_select``, so
gradients flow back and add up) and runs every row's own remainder on top of it (the *suffix
pass*). Losses and gradients are those of the full rows within float rounding; the work drops
by the prefix's tokens times the rows sharing it, less one. The same idea for preference
pairs: Wang et al. 2024, "Accelerating Direct Preference Optimization with Prefix Sharing".

What changes besides rounding: LoRA dropout (and any dropout of the base model) draws one mask
per prefix, shared by its rows, instead of one per row. Checkpointed models run without a
cache in training (transformers turns ``use_cache`` off), so their batches are never split.

The batch (all CPU tensors; N rows, G prefixes, P and S the padded prefix and suffix lengths):

    prefix_ids, prefix_attention_mask, prefix_position_ids   [G, P], left-padded
    prefix_route_ids                                         [G]
    row_prefix                                               [N] the prefix of each row
    input_ids, position_ids, labels                          [N, S], the suffixes, left-padded
    attention_mask                                           [N, P + S]: prefix, then suffix
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import torch

from personalab.models.rows import pad_sequences


def shared_prefix_batch(
    sequences: Sequence[list[int]],
    labels: Sequence[list[int]],
    prompt_lengths: Sequence[int],
    route_ids: Sequence[int],
    pad_id: int,
    ignore_index: int,
) -> dict[str, torch.Tensor] | None:
    """The batch of the module docstring for rows ``sequences`` (prompt + target tokens,
    with their ``labels``), each route's rows sharing their longest common prefix within their
    prompts; None when some route's rows share no first token (nothing to run once for them).
    Whether a batch is split depends on each route's own rows only, never on the other
    routes of the step: a fleet member computes the same way in any company."""
    groups: dict[int, list[int]] = defaultdict(list)
    for row, route in enumerate(route_ids):
        groups[route].append(row)
    cuts = {route: _common_prefix(sequences, rows, prompt_lengths) for route, rows in groups.items()}
    if not all(cuts.values()):
        return None
    prefixes = [sequences[rows[0]][: cuts[route]] for route, rows in groups.items()]
    suffixes = [seq[cuts[route]:] for seq, route in zip(sequences, route_ids)]
    return _two_pass_batch(prefixes, suffixes, labels, list(groups), route_ids, pad_id, ignore_index)


def _common_prefix(sequences: Sequence[list[int]], rows: list[int], prompt_lengths: Sequence[int]) -> int:
    """Tokens the rows share from the start, within every row's prompt but its last token (the
    last prompt token predicts the first target token: the suffix pass must compute it)."""
    limit = min(prompt_lengths[row] for row in rows) - 1
    first = sequences[rows[0]]
    length = 0
    while length < limit and all(sequences[row][length] == first[length] for row in rows):
        length += 1
    return length


def _two_pass_batch(prefixes, suffixes, labels, routes, route_ids, pad_id, ignore_index) -> dict[str, torch.Tensor]:
    prefix_ids, prefix_mask = pad_sequences(prefixes, pad_id, "left")
    suffix_ids, suffix_mask = pad_sequences(suffixes, pad_id, "left")
    suffix_labels, _ = pad_sequences([row[len(row) - len(s):] for row, s in zip(labels, suffixes)], ignore_index, "left")
    prefix_of = {route: k for k, route in enumerate(routes)}
    row_prefix = torch.tensor([prefix_of[route] for route in route_ids])
    own_prefix = prefix_mask[row_prefix]
    return {
        "prefix_ids": prefix_ids,
        "prefix_attention_mask": prefix_mask,
        "prefix_position_ids": _positions(prefix_mask),
        "prefix_route_ids": torch.tensor(routes),
        "row_prefix": row_prefix,
        "input_ids": suffix_ids,
        "attention_mask": torch.cat([own_prefix, suffix_mask], dim=1),
        "position_ids": own_prefix.sum(dim=1, keepdim=True) + _positions(suffix_mask),
        "labels": suffix_labels,
        "route_ids": torch.tensor(list(route_ids)),
    }


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Positions counted from each left-padded row's first real token."""
    return (mask.cumsum(dim=1) - 1).clamp(min=0)


def is_split(batch: dict[str, torch.Tensor]) -> bool:
    return "prefix_ids" in batch


def suffix_logits(model: torch.nn.Module, batch: dict[str, torch.Tensor], device: torch.device,
                  cache_keyword: str, keep: dict[str, Any]) -> torch.Tensor:
    """The suffix pass's logits (``keep``: the model's ``logits_to_keep``), after the prefix
    pass."""
    prefix = model(
        input_ids=batch["prefix_ids"].to(device),
        attention_mask=batch["prefix_attention_mask"].to(device),
        position_ids=batch["prefix_position_ids"].to(device),
        use_cache=True,
        logits_to_keep=1,  # the prefix's logits are never used
        route_ids=batch["prefix_route_ids"],
    )
    cache = getattr(prefix, cache_keyword)
    cache.reorder_cache(batch["row_prefix"].to(device))
    return model(
        input_ids=batch["input_ids"].to(device),
        attention_mask=batch["attention_mask"].to(device),
        position_ids=batch["position_ids"].to(device),
        use_cache=True,
        route_ids=batch["route_ids"],
        **{cache_keyword: cache},
        **keep,
    ).logits
