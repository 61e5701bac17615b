"""The one interface every strategy shares: a ``FitContext`` in, a personalizer
(``personalab.routing``) out.

A strategy differs from another only in what it trains and how it routes: evaluation, export,
reports and the planner see nothing but ``fit(context) -> personalizer``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from personalab.bank import AdapterBank
from personalab.data.schema import Dataset
from personalab.models.base import Backend
from personalab.routing import Personalizer
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
    fleet_shard: int = 64  # at most this many adapters of a fleet train at once (memory)
    records: dict[str, Any] = field(default_factory=dict)  # what the strategy wants reported
    memo: dict[str, Any] = field(default_factory=dict)  # computed once per fit, shared, not recorded
    executor: Any = None
    """Where fleet shards train (``personalab.run.executor``): None or a local executor, in
    this process one after another; else as tasks elsewhere (Ray), each returning its
    adapters as bytes for this process alone to write into the bank."""
    build_backend: Callable[[], Backend] | None = None
    """Builds ``backend`` afresh (before any head is loaded into it), picklable: how a worker
    of an executor elsewhere loads the same base model itself."""


class Strategy(Protocol):
    name: str
    summary: str  # one line for `personalab ls strategies`

    def fit(self, context: FitContext) -> Personalizer:
        """Train what the strategy needs into ``context.bank``; return how to route personas."""
