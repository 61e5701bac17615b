"""Strategies: each trains what it needs into the bank and returns a personalizer
(``personalab.routing``).

Every strategy is one module registered by name; importing this package registers them all.
"""

from personalab.strategies.base import FitContext, Strategy
from personalab.strategies.registry import get_strategy, list_strategies, register
from personalab.strategies import (  # noqa: F401  (importing registers them)
    ensemble, lorahub, moe, per_cluster, per_persona, persona_bias, persona_token, unified, weighted_merge,
)

__all__ = ["FitContext", "Strategy", "get_strategy", "list_strategies", "register"]
