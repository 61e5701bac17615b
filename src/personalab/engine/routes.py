"""Routes: how one example is scored, as a sparse weighted mixture of bank adapters.

``Route({"unified": 1.0})`` is one adapter; ``Route({"unified": 1.0, "cluster/3": 1.0})``
stacks a cluster adapter on the unified one; ``Route({"persona/a": 0.7, "persona/b": 0.3})``
is a weighted merge. Weights act in weight space: the route's delta is ``sum_k w_k * dW_k``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class Route:
    weights: tuple[tuple[str, float], ...]  # (adapter name, weight), sorted by name

    def __init__(self, weights: Mapping[str, float]):
        cleaned = tuple(sorted((str(k), float(v)) for k, v in weights.items() if v != 0.0))
        object.__setattr__(self, "weights", cleaned)

    @classmethod
    def single(cls, adapter: str) -> "Route":
        return cls({adapter: 1.0})

    @property
    def adapters(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.weights)

    @property
    def single_adapter(self) -> str | None:
        """The adapter's name when the route is exactly one adapter at weight 1, else None."""
        if len(self.weights) == 1 and self.weights[0][1] == 1.0:
            return self.weights[0][0]
        return None

    def stacked_on(self, adapter: str) -> "Route":
        """This route with ``adapter`` beneath it at weight 1 (how stacked adapters are used)."""
        return Route({**self.to_json(), adapter: 1.0})

    def to_json(self) -> dict[str, float]:
        return dict(self.weights)

    def __str__(self) -> str:
        return " + ".join(n if w == 1.0 else f"{w:g}*{n}" for n, w in self.weights) or "base"
