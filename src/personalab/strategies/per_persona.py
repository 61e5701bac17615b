"""``per_persona``: one adapter per persona, all fleet-trained together in one pass.

The unified adapter is trained first: it trains a classifier's head (part of the frozen base
from then on), it is the route of personas with too few rows for an adapter of their own, and
with ``on_top_of="unified"`` every persona adapter is trained with it active and frozen
beneath (route ``{unified: 1, persona/p: 1}``: the playbook's "train from unified").

With ``grid`` (e.g. ``{lr: [2e-4, 5e-4, 2e-3], epochs: [3, 6]}``) the persona adapters train
under every recipe of the grid in one fleet and the recipe with the lowest pooled validation
loss is kept for all of them (``recipes.py`` says why one recipe for all).
"""

from __future__ import annotations

from personalab.engine import Route
from personalab.routing import RoutingTable
from personalab.strategies.base import FitContext
from personalab.strategies.recipes import recipe_grid, train_with_recipes
from personalab.strategies.registry import register
from personalab.strategies.steps import UNIFIED, rows_by_persona, stacked_on_unified, train_group_adapters


def persona_adapter(persona_id: str) -> str:
    return f"persona/{persona_id}"


@register
class PerPersona:
    name = "per_persona"
    summary = "one adapter per persona, fleet-trained in one pass; few-row personas route to unified"

    def __init__(self, on_top_of: str | None = None, min_train_rows: int = 8, batch_size: int = 8,
                 grid: dict | None = None):
        self.stacked = stacked_on_unified(self.name, on_top_of)
        self.grid = recipe_grid(self.name, grid)
        self.min_train_rows = min_train_rows
        # A persona has ~30 rows: small batches give its adapter enough steps to learn.
        self.batch_size = batch_size

    def fit(self, context: FitContext) -> RoutingTable:
        personas = trainable_personas(context, self.min_train_rows)
        groups = {persona_adapter(pid): [pid] for pid in personas}
        if self.grid:
            train_with_recipes(context, groups, self.grid, on_top_of_unified=self.stacked,
                               batch_size=self.batch_size, label="personas")
        else:
            train_group_adapters(context, groups, on_top_of_unified=self.stacked,
                                 batch_size=self.batch_size, label="personas")
        context.records["default_route_personas"] = sorted(set(context.dataset.personas) - set(personas))
        table = {pid: persona_route(pid, self.stacked) for pid in personas}
        return RoutingTable(default=Route.single(UNIFIED), table=table)


def persona_route(persona_id: str, stacked: bool) -> Route:
    """The route to a persona's own adapter (over the unified one when it was trained on top)."""
    route = Route.single(persona_adapter(persona_id))
    return route.stacked_on(UNIFIED) if stacked else route


def trainable_personas(context: FitContext, min_train_rows: int) -> list[str]:
    """Personas with at least ``min_train_rows`` train rows, in dataset order."""
    train = rows_by_persona(context.dataset, "train")
    return [pid for pid in context.dataset.personas if len(train[pid]) >= min_train_rows]
