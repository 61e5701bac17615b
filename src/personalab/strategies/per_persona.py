"""``per_persona``: one adapter per persona, all fleet-trained together in one pass.

The unified adapter is trained first: it trains a classifier's head (part of the frozen base
from then on), it is the route of personas with too few rows for an adapter of their own, and
with ``on_top_of="unified"`` every persona adapter is trained with it active and frozen
beneath (route ``{unified: 1, persona/p: 1}``: the playbook's "train from unified").
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from personalab.engine import Route
from personalab.errors import PersonalabError
from personalab.strategies.base import FitContext, RoutingTable
from personalab.strategies.registry import register
from personalab.strategies.unified import ADAPTER as UNIFIED
from personalab.strategies.unified import Unified
from personalab.train.fleet import Member, train_fleet


def persona_adapter(persona_id: str) -> str:
    return f"persona/{persona_id}"


@register
class PerPersona:
    name = "per_persona"
    summary = "one adapter per persona, fleet-trained in one pass; few-row personas route to unified"

    def __init__(self, on_top_of: str | None = None, min_train_rows: int = 8, batch_size: int = 8):
        if on_top_of not in (None, UNIFIED):
            raise PersonalabError(f"per_persona trains on top of 'unified' only, not {on_top_of!r}")
        self.on_top_of = on_top_of
        self.min_train_rows = min_train_rows
        # A persona has ~30 rows: small batches give its adapter enough steps to learn.
        self.batch_size = batch_size

    def fit(self, context: FitContext) -> RoutingTable:
        Unified().fit(context)
        under = Route.single(UNIFIED) if self.on_top_of else Route({})
        members = self._members(context)
        settings = replace(context.settings, batch_size=self.batch_size)
        backend = context.backend
        engine = context.bank.load_engine(backend.model, [UNIFIED], backend.target_modules(settings.target_roles))
        results = train_fleet(backend, engine, list(members.values()), settings, context.seed,
                              under=under, progress=context.progress, label="personas")
        base_path = str(backend.resolved.path)
        for member in members.values():
            context.bank.save_weights(
                member.name, engine.adapter_weights(member.name), base_path,
                data={"rows": len(member.train)}, scores={"val_loss": results[member.name].best_val_loss},
                config_hash=context.config_hash, on_top_of=self.on_top_of,
            )
            context.records["training"][member.name] = results[member.name].to_dict()
        context.records["default_route_personas"] = sorted(set(context.dataset.personas) - set(members))
        table = {pid: Route({**under.to_json(), m.name: 1.0}) for pid, m in members.items()}
        return RoutingTable(default=Route.single(UNIFIED), table=table)

    def _members(self, context: FitContext) -> dict[str, Member]:
        """Personas with enough train rows, each with its train and validation rows."""
        rows = {split: defaultdict(list) for split in ("train", "val")}
        for example in context.dataset.examples:
            if example.split in rows:
                rows[example.split][example.persona_id].append(example)
        return {
            pid: Member(persona_adapter(pid), rows["train"][pid], rows["val"][pid])
            for pid in context.dataset.personas
            if len(rows["train"][pid]) >= self.min_train_rows
        }
