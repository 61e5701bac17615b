"""Scoring all of a row's choices in one sequence that shares the prompt.

The plain way to score choices ``c_1..c_K`` of a prompt ``p`` by log-likelihood runs K
sequences ``p + c_j``: the prompt, nearly all of the tokens, is computed K times. Here each
row is one sequence ``p + c_1 + ... + c_K`` with a 4-D attention mask in which every choice
sees the prompt and its own earlier tokens but no other choice, and position ids that restart
at ``len(p)`` for every choice. Each choice's tokens then get exactly the logits they would
get after the prompt alone, for about ``1/K`` of the work.

Sequences are left-padded, so all choices sit in the last positions and only those logits are
computed (``logits_to_keep``) when the model allows it. Padding positions attend to
themselves only, so that no attention row is empty (an empty one would give NaN).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

# Attention implementations that take a custom 4-D mask: boolean (sdpa) or additive (eager).
PACKABLE = ("sdpa", "eager")


def packed_choice_logprobs(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    options: Sequence[Sequence[Sequence[int]]],
    pad_token_id: int,
    *,
    additive_mask: bool,
    route_ids: torch.Tensor | None = None,
    keep_logits: bool = False,
) -> list[torch.Tensor]:
    """For each row ``i``, ``[len(options[i])]`` sums of log p(option tokens | prompt)."""
    device = next(model.parameters()).device
    ids, positions, segments, real = _pack(prompts, options, pad_token_id)
    mask = _attention_mask(segments, real, additive_mask, next(model.parameters()).dtype)
    tails = torch.tensor([sum(len(c) for c in row) for row in options])
    extra = {"logits_to_keep": int(tails.max()) + 1} if keep_logits else {}
    if route_ids is not None:
        extra["route_ids"] = route_ids
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                   position_ids=positions.to(device), **extra).logits
    rows, where, targets, owners = _targets(options, tails, ids.shape[1], logits.shape[1])
    picked = F.log_softmax(logits[rows.to(device), where.to(device)].float(), dim=-1)
    token_logprobs = picked.gather(-1, targets.to(device)[:, None]).squeeze(-1)
    sums = torch.zeros(sum(len(row) for row in options), device=device).index_add_(0, owners.to(device), token_logprobs)
    return list(sums.cpu().split([len(row) for row in options]))


def _pack(prompts, options, pad_token_id):
    """Left-padded ``ids``, ``positions``, ``segments`` (0 prompt, j choice j, -1 padding)
    and the ``real`` (not padding) flags, all ``[n, width]``."""
    sequences = []
    for prompt, choices in zip(prompts, options):
        ids, positions, segments = list(prompt), list(range(len(prompt))), [0] * len(prompt)
        for j, choice in enumerate(choices, start=1):
            ids += choice
            positions += range(len(prompt), len(prompt) + len(choice))
            segments += [j] * len(choice)
        sequences.append((ids, positions, segments))
    width = max(len(s[0]) for s in sequences)
    out = [torch.full((len(sequences), width), fill, dtype=torch.long) for fill in (pad_token_id, 0, -1)]
    for i, parts in enumerate(sequences):
        for tensor, values in zip(out, parts):
            tensor[i, width - len(values):] = torch.tensor(values, dtype=torch.long)
    ids, positions, segments = out
    return ids, positions, segments, segments >= 0


def _attention_mask(segments, real, additive: bool, dtype: torch.dtype) -> torch.Tensor:
    """``[n, 1, width, width]``: query q sees key k when k is real, not after q, and in the
    prompt or in q's own choice; padding sees itself."""
    width = segments.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool).tril()
    seg_q, seg_k = segments[:, :, None], segments[:, None, :]
    allowed = causal & real[:, None, :] & ((seg_k == 0) | (seg_k == seg_q))
    allowed |= torch.eye(width, dtype=torch.bool)  # padding rows are never empty
    if not additive:
        return allowed[:, None]
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


def _targets(options, tails, width: int, kept: int):
    """Flat (row, logit position, target token, owning option) for every option token. The
    first token of a choice is predicted at the prompt's last position, each later one at the
    choice's previous token; positions are counted within the ``kept`` last logits."""
    rows, where, targets, owners = [], [], [], []
    owner = 0
    for i, choices in enumerate(options):
        first = width - int(tails[i])  # the first option token
        last_prompt = first - 1 - (width - kept)
        start = first - (width - kept)
        for choice in choices:
            for t, token in enumerate(choice):
                rows.append(i)
                where.append(last_prompt if t == 0 else start + t - 1)
                targets.append(token)
                owners.append(owner)
            start += len(choice)
            owner += 1
    as_long = lambda values: torch.tensor(values, dtype=torch.long)  # noqa: E731
    return as_long(rows), as_long(where), as_long(targets), as_long(owners)
