"""Output-space ensembles: mixing the score matrices of several routes into one.

Scoring a row under several routes is one batched call (the row repeated, each copy with its
own route id); this module only mixes the resulting ``[n_rows, n_choices]`` log-scores:

* ``"logprob"``: ``sum_k w_k * s_k`` (a weighted geometric mean of the distributions);
* ``"prob"``: ``log sum_k w_k * exp(s_k)`` (a mixture of the distributions), computed with
  logsumexp so that very negative log-scores neither underflow nor lose precision.

Terms of weight 0 are left out, so ``-inf`` scores (choices a row does not allow) stay
``-inf`` instead of turning into NaN, and weight 1 on one route reproduces it exactly.
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch

Space = Literal["logprob", "prob"]


def mix_scores(
    score_list: Sequence[torch.Tensor], weights: Sequence[float], space: Space = "logprob"
) -> torch.Tensor:
    """Mix same-shaped log-score tensors with non-negative ``weights`` (not renormalised:
    weights that sum to 1 keep a mixture of probabilities a distribution)."""
    terms = _weighted_terms(score_list, weights)
    if space == "logprob":
        mixed = terms[0][1] * terms[0][0]
        for weight, scores in terms[1:]:
            mixed = mixed + weight * scores
        return mixed
    if space == "prob":
        shifted = [scores + math.log(weight) for weight, scores in terms]
        return torch.logsumexp(torch.stack(shifted), dim=0)
    raise ValueError(f"unknown ensemble space {space!r}; choose 'logprob' or 'prob'")


def _weighted_terms(
    score_list: Sequence[torch.Tensor], weights: Sequence[float]
) -> list[tuple[float, torch.Tensor]]:
    if len(score_list) != len(weights) or not score_list:
        raise ValueError(
            f"need one weight per score matrix, got {len(score_list)} matrices and "
            f"{len(weights)} weights"
        )
    shapes = {tuple(s.shape) for s in score_list}
    if len(shapes) != 1:
        raise ValueError(f"score matrices differ in shape: {sorted(shapes)}")
    if any(not math.isfinite(w) or w < 0 for w in weights) or not any(w > 0 for w in weights):
        raise ValueError(f"ensemble weights must be finite, >= 0 and not all 0: {list(weights)}")
    return [(float(w), s) for w, s in zip(weights, score_list) if w > 0]
