"""Decoding: continuing left-padded prompts token by token, every sequence through its own
route, and — for output-space ensembles — several routes' next-token distributions mixed
into one choice per step.

One loop serves every case. A batch holds ``k`` copies of each of ``n`` rows (``k`` = 1 for
a plain route), member-major: copy ``j`` of row ``i`` is sequence ``j * n + i``, with its own
prompt (a member may prepend a persona identifier) and its own route id. Each step is one
forward pass over all ``k * n`` sequences with the key/value cache; the ``k`` copies' next-token
log-probabilities of a row are mixed with the members' weights (``engine.mix_scores``), one
token is chosen per row, and that token is appended to all ``k`` copies, so the members keep
continuing the same text. With ``k`` = 1 the raw logits are used as they are, so greedy
decoding picks exactly what transformers' greedy ``generate`` picks.

Positions count from each sequence's first real token (left padding changes nothing); a row
stops at its first end-of-sequence token, which is not part of the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from personalab.engine.ensemble import Space, mix_scores
from personalab.models.rows import model_device, pad_sequences


@dataclass(frozen=True)
class GenerationSettings:
    """How answers are generated; greedy unless ``sample``."""

    max_new_tokens: int = 64
    """At most this many tokens per answer (the end-of-sequence token not counted)."""
    sample: bool = False
    """Draw each token from the (mixed) next-token distribution instead of taking the likeliest."""
    temperature: float = 1.0
    """With ``sample``: the distribution's logits are divided by this first."""
    seed: int = 0
    """With ``sample``: seeds the draws of one ``generate`` call (on the model's device: the same
    seed draws differently on a CPU and a GPU)."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be above 0, got {self.temperature}")


def decode(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    *,
    pad_token_id: int,
    stop_ids: Sequence[int],
    settings: GenerationSettings,
    route_ids: torch.Tensor | None = None,
    weights: Sequence[float] = (1.0,),
    space: Space = "logprob",
    generator: torch.Generator | None = None,
    keep_logits: bool = False,
    cache_keyword: str = "past_key_values",
) -> list[list[int]]:
    """The new tokens of each of the ``len(prompts) / len(weights)`` rows (see the module
    docstring for the layout), without the stop token; ``route_ids``: one per sequence.
    ``cache_keyword``: the model's name for its key/value cache, in and out (transformers 5
    renamed ``past_key_values`` to ``cache``)."""
    copies = len(weights)
    if len(prompts) % copies:
        raise ValueError(f"{len(prompts)} prompts are not {copies} copies of the same rows")
    device = model_device(model)
    input_ids, mask = pad_sequences([list(p) for p in prompts], pad_token_id, "left")
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    next_position = mask.sum(dim=1, keepdim=True)
    stops = torch.tensor(sorted(set(stop_ids)), dtype=torch.long)
    finished = torch.zeros(len(prompts) // copies, dtype=torch.bool)  # on the host, like the tokens
    chosen, past = [], None
    extra = {"logits_to_keep": 1} if keep_logits else {}
    if route_ids is not None:
        extra["route_ids"] = route_ids
    for step in range(settings.max_new_tokens):
        out = model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                    position_ids=positions.to(device), use_cache=True, **{cache_keyword: past}, **extra)
        past = getattr(out, cache_keyword)
        logits = out.logits[:, -1].float().view(copies, len(finished), -1)
        token = _next_token(logits, weights, space, settings, generator).cpu()  # only the tokens leave the device
        token = token.masked_fill(finished, pad_token_id)  # finished rows only mark time
        chosen.append(token)
        finished |= torch.isin(token, stops)
        if bool(finished.all()):
            break
        input_ids = token.repeat(copies)[:, None]
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = next_position + step
    return [_until_stop(row, set(stops.tolist())) for row in torch.stack(chosen, dim=1).tolist()]


def _next_token(logits: torch.Tensor, weights, space: Space, settings: GenerationSettings,
                generator: torch.Generator | None) -> torch.Tensor:
    """One token per row from ``[copies, rows, vocab]`` logits."""
    if len(weights) == 1:
        scores = logits[0]  # as they are: greedy then matches transformers' generate exactly
    else:
        scores = mix_scores(list(F.log_softmax(logits, dim=-1)), weights, space)
    if not settings.sample:
        return scores.argmax(dim=-1)
    probabilities = F.softmax(scores / settings.temperature, dim=-1)
    return torch.multinomial(probabilities, 1, generator=generator).squeeze(1)


def _until_stop(tokens: list[int], stops: set[int]) -> list[int]:
    for i, token in enumerate(tokens):
        if token in stops:
            return tokens[:i]
    return tokens
