"""The one interface every strategy shares, and the personalizer it returns.

A strategy differs from another only in what it trains and how it routes: evaluation, export,
reports and the planner see nothing but ``fit(context) -> personalizer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from personalab.bank import AdapterBank
from personalab.data.schema import Dataset, Example
from personalab.engine.routes import Route
from personalab.models.base import Backend
from personalab.train.presets import TrainSettings


@dataclass
class FitContext:
    """Everything a strategy may use to train: data, the model backend, the bank, settings."""

    dataset: Dataset
    backend: Backend
    bank: AdapterBank
    settings: TrainSettings
    run_dir: Path
    seed: int = 0
    progress: bool = True
    config_hash: str = ""  # of the run config, recorded with every adapter trained
    base_identity: str = ""  # hash of data, model and seed: the root of adapter fingerprints
    reuse: list[Path] = field(default_factory=list)  # runs whose identical adapters are reused
    records: dict[str, Any] = field(default_factory=dict)  # what the strategy wants reported


@dataclass
class RoutingTable:
    """A personalizer that routes by persona: a table, with a default for personas not in it
    (new personas, or those with too few rows for an adapter of their own)."""

    default: Route
    table: dict[str, Route] = field(default_factory=dict)

    def route(self, persona_id: str, example: Example | None = None) -> Route:
        return self.table.get(persona_id, self.default)

    def uses_default(self, persona_id: str) -> bool:
        return persona_id not in self.table

    def adapters(self) -> list[str]:
        routes = [self.default, *self.table.values()]
        return sorted({name for route in routes for name in route.adapters})

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "routing_table",
            "default": self.default.to_json(),
            "table": {pid: r.to_json() for pid, r in self.table.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RoutingTable":
        table = {pid: Route(r) for pid, r in data.get("table", {}).items()}
        return cls(default=Route(data["default"]), table=table)


class Strategy(Protocol):
    name: str
    summary: str  # one line for `personalab ls strategies`

    def fit(self, context: FitContext) -> RoutingTable:
        """Train what the strategy needs into ``context.bank``; return how to route personas."""
