"""Strategies: each trains what it needs into the bank and returns a personalizer.

Every strategy is one module registered by name; importing this package registers them all.
"""

from personalab.strategies.base import FitContext, RoutingTable, Strategy
from personalab.strategies.registry import get_strategy, list_strategies, register
from personalab.strategies import per_persona, unified  # noqa: F401  (registers them)

__all__ = ["FitContext", "RoutingTable", "Strategy", "get_strategy", "list_strategies", "register"]
