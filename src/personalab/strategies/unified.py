"""``unified``: one adapter trained on every persona's train rows; all personas route to it.

The baseline every other strategy must beat. As the first adapter of a run it also trains the
classifier head (when the backend has one), which then stays frozen in the shared base.
"""

from __future__ import annotations

from personalab.engine.routes import Route
from personalab.strategies.base import FitContext, RoutingTable
from personalab.strategies.registry import register
from personalab.train.adapters import add_lora, save_head
from personalab.train.loop import train_adapter

ADAPTER = "unified"


@register
class Unified:
    name = "unified"
    summary = "one adapter trained on all personas' train rows; every persona routes to it"

    def fit(self, context: FitContext) -> RoutingTable:
        backend, dataset = context.backend, context.dataset
        model = add_lora(backend, context.settings, adapter_name=ADAPTER, train_head=True)
        result = train_adapter(
            backend,
            model,
            dataset.split("train"),
            dataset.split("val"),
            context.settings,
            head_parameters=backend.trainable_base_parameters(),
            seed=context.seed,
            progress=context.progress,
            label=ADAPTER,
        )
        save_head(backend, model, context.run_dir)
        context.bank.save(
            ADAPTER,
            model,
            adapter_name=ADAPTER,
            data={"rows": len(dataset.split("train")), "personas": len(dataset.personas)},
            scores={"val_loss": result.best_val_loss},
            config_hash=context.config_hash,
        )
        context.records["training"] = {ADAPTER: result.to_dict()}
        model.unload()  # leave the backend's base as it was, plus the trained head
        return RoutingTable(default=Route.single(ADAPTER))
