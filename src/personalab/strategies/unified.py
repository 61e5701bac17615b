"""``unified``: one adapter trained on every persona's train rows; all personas route to it.

The baseline every other strategy must beat. As the first adapter of a run it also trains the
classifier head (when the backend has one), which then stays frozen in the shared base.
"""

from __future__ import annotations

from personalab.engine.routes import Route
from personalab.routing import RoutingTable
from personalab.strategies.base import FitContext
from personalab.strategies.registry import register
from personalab.strategies.steps import UNIFIED, ensure_unified

ADAPTER = UNIFIED


@register
class Unified:
    name = "unified"
    summary = "one adapter trained on all personas' train rows; every persona routes to it"

    def fit(self, context: FitContext) -> RoutingTable:
        ensure_unified(context)
        return RoutingTable(default=Route.single(ADAPTER))
