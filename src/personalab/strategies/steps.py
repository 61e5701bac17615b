"""The training steps strategies share: the unified adapter (and any other adapter shared by
all personas), and a fleet of group adapters (one per persona, or one per cluster of
personas) trained together into the bank.

Every adapter trained here is recorded with a *fingerprint*: a hash of everything that
determines its weights (the data, the model, the settings, the seed, its rows, the adapters
beneath it). An adapter whose fingerprint is already in this bank, or in the bank of a run
given to ``FitContext.reuse``, is taken from there instead of being trained again: a strategy
that builds on the unified adapter or on the persona adapters pays for them once.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import defaultdict
from dataclasses import replace
from typing import Any, Mapping, Sequence

from personalab.bank import AdapterBank
from personalab.data.schema import Dataset, Example
from personalab.data.faults import fault_point
from personalab.engine import Route
from personalab.errors import PersonalabError
from personalab.strategies.base import FitContext
from personalab.strategies.shard_tasks import checked_weights, train_shards_elsewhere
from personalab.engine import MultiLoraModel
from personalab.train.head import HEAD_FILE, head_parameters, load_head, save_head
from personalab.train.fleet import ExtraParameters, Member, train_fleet
from personalab.train.result import seed_everything
from personalab.train.presets import TrainSettings
from personalab.train.vectors import train_with_vectors

UNIFIED = "unified"


def stacked_on_unified(strategy: str, on_top_of: str | None) -> bool:
    """A strategy's ``on_top_of`` option: ``"unified"`` (train its adapters with the unified one
    frozen beneath them) or None (from the base model); anything else is an error."""
    if on_top_of not in (None, UNIFIED):
        raise PersonalabError(f"{strategy} trains on top of 'unified' only, not {on_top_of!r}")
    return on_top_of == UNIFIED


def fingerprint(**parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def dataset_fingerprint(dataset: Dataset) -> str:
    """A hash of the rows and profiles (not of file paths: a copied dataset reuses too)."""
    digest = hashlib.sha256()
    for pid in sorted(dataset.personas):
        digest.update(f"P\0{pid}\0{dataset.personas[pid].profile}\n".encode())
    for e in dataset.examples:
        digest.update(f"E\0{e.persona_id}\0{e.input}\0{e.output}\0{e.split}\0{e.choices}\n".encode())
    digest.update(repr(dataset.spec.choices).encode())
    return digest.hexdigest()[:20]


def unified_fingerprint(context: FitContext, settings: TrainSettings | None = None) -> str:
    return fingerprint(kind=UNIFIED, base=context.base_identity, settings=(settings or context.settings).to_dict())


def reuse_adapter(context: FitContext, name: str, wanted: str) -> bool:
    """Whether ``name`` with fingerprint ``wanted`` is in the bank, after copying it there from
    a reusable run if one has it (with the classifier head that run trained with it)."""
    return name in reuse_adapters(context, {name: wanted})


def reuse_adapters(context: FitContext, wanted: Mapping[str, str]) -> set[str]:
    """The adapters of ``wanted`` (name -> fingerprint) that are in the bank, after copying
    those a reusable run has into it. Each bank's manifest is read once, however many
    adapters are asked for (a fleet may have thousands)."""
    own = _fingerprints(context.bank)
    found = {name for name, print_ in wanted.items() if own.get(name) == print_}
    for run_dir in context.reuse:
        other = AdapterBank(run_dir / "bank")
        theirs = _fingerprints(other)
        for name in [n for n, print_ in wanted.items() if n not in found and theirs.get(n) == print_]:
            entry = other.entry(name)
            meta = {k: v for k, v in entry.items() if k in ("data", "scores", "config_hash", "fingerprint", "on_top_of")}
            context.bank.import_adapter(name, other.path(name), **meta)
            if name == UNIFIED and (run_dir / HEAD_FILE).exists():
                shutil.copyfile(run_dir / HEAD_FILE, context.run_dir / HEAD_FILE)
            context.records.setdefault("reused", {})[name] = str(run_dir)
            found.add(name)
    return found


def _fingerprints(bank: AdapterBank) -> dict[str, str | None]:
    return {name: entry.get("fingerprint") for name, entry in bank.manifest().items()}


def ensure_unified(context: FitContext, settings: TrainSettings | None = None) -> str:
    """Train (or reuse) the unified adapter, and its classifier head; returns its fingerprint.
    Afterwards the backend's base model carries the trained head."""
    settings = settings or context.settings
    wanted = unified_fingerprint(context, settings)
    if reuse_adapter(context, UNIFIED, wanted):
        load_head(context.backend, context.run_dir)
        context.records.setdefault("training", {})
        return wanted
    dataset = context.dataset
    train_shared_adapter(context, UNIFIED, dataset.split("train"), dataset.split("val"), settings, wanted,
                         train_head=True, data={"personas": len(dataset.personas)})
    return wanted


def train_shared_adapter(
    context: FitContext,
    name: str,
    train: Sequence[Example],
    val: Sequence[Example],
    settings: TrainSettings,
    wanted: str,
    *,
    train_head: bool,
    data: Mapping[str, Any] | None = None,
) -> None:
    """One adapter ``name`` trained on ``train`` (best epoch on ``val``) from the base model
    and saved to the bank with fingerprint ``wanted``: the unified adapter, or another adapter
    shared by all personas (``persona_token``'s, on rows carrying identifiers). With
    ``train_head`` the classifier head trains too and is saved in the run (only the run's
    first adapter may: later ones share that head as part of the frozen base)."""
    backend = context.backend
    head = head_parameters(backend) if train_head else []
    extra = [ExtraParameters(head, settings.head_lr)] if head else []
    member = Member(name, list(train), list(val), extra=extra)
    engine = MultiLoraModel(backend.model, backend.target_modules(settings.target_roles))
    try:
        seed_everything(context.seed)  # dropout masks come from the global generator
        results = train_fleet(backend, engine, [member], settings, context.seed, progress=context.progress,
                              label=name)
        if head:
            save_head(backend, context.run_dir)
        save_members(context, engine, [(name, member, results[name], wanted, dict(data or {}))], False, settings)
    finally:
        engine.unwrap()  # leave the backend's base as it was (plus a head trained here)


def train_shared_adapter_with_vectors(
    context: FitContext,
    name: str,
    train: tuple[Sequence[Example], Sequence[str | None]],
    val: tuple[Sequence[Example], Sequence[str | None]],
    vector_lr: float,
    wanted: str,
    data: Mapping[str, Any] | None = None,
) -> None:
    """One adapter ``name`` shared by all personas and trained together with a vector per
    persona (``train_with_vectors``: rows paired with the persona whose vector they add),
    saved to the bank with its vectors and fingerprint ``wanted``."""
    backend = context.backend
    trained = train_with_vectors(backend, name, train, val, context.settings, vector_lr, context.seed,
                                 context.progress)
    context.bank.save_weights(
        name, trained.weights, str(backend.resolved.path), vectors=(trained.personas, trained.vectors),
        data={"rows": len(train[0]), **(data or {})}, scores={"val_loss": trained.result.best_val_loss},
        config_hash=context.config_hash, fingerprint=wanted,
    )
    context.records.setdefault("training", {})[name] = trained.result.to_dict()


def rows_by_persona(dataset: Dataset, split: str) -> dict[str, list[Example]]:
    rows: dict[str, list[Example]] = defaultdict(list)
    for example in dataset.split(split):
        rows[example.persona_id].append(example)
    return rows


def train_group_adapters(
    context: FitContext,
    groups: Mapping[str, Sequence[str]],
    *,
    on_top_of_unified: bool,
    batch_size: int,
    label: str,
) -> dict[str, dict[str, Any]]:
    """One adapter per group (adapter name -> its personas), trained on the group's train rows
    (validated on its val rows) as one fleet, each over the unified adapter when asked.
    Adapters already trained with the same fingerprint are reused. The unified adapter is
    ensured first (it trains a classifier's head). Returns each adapter's manifest entry."""
    unified = ensure_unified(context)
    settings = replace(context.settings, batch_size=batch_size)
    train, val = rows_by_persona(context.dataset, "train"), rows_by_persona(context.dataset, "val")
    members, wanted = [], {}
    for name, personas in groups.items():
        member = Member(name, [r for p in personas for r in train[p]], [r for p in personas for r in val[p]])
        wanted[name] = fingerprint(
            kind="group", name=name, base=context.base_identity, unified=unified, settings=settings.to_dict(),
            under=on_top_of_unified, rows=[(r.persona_id, r.input, r.output) for r in member.train + member.val],
        )
        members.append(member)
    train_sharded(context, members, wanted, settings, on_top_of_unified, label)
    return {name: context.bank.entry(name) for name in groups}


def train_sharded(context, members: Sequence[Member], wanted: Mapping[str, str], settings: TrainSettings,
                  on_top_of_unified: bool, label: str) -> None:
    """Each member trained into the bank under its name and fingerprint ``wanted[name]``, a
    shard of ``context.fleet_shard`` members at a time; members already in the bank (or in a
    reusable run's) are not trained again."""
    done = reuse_adapters(context, wanted)
    # Shards are cut before what is done is taken out, so a resumed run trains the same shards.
    shards = fleet_shards(members, context.fleet_shard)
    todo = [(number, [m for m in shard if m.name not in done]) for number, shard in enumerate(shards, 1)]
    todo = [(number, shard) for number, shard in todo if shard]
    if getattr(context.executor, "in_process", True):
        _train_shards_here(context, todo, len(shards), wanted, settings, on_top_of_unified, label)
        return

    def save(trained) -> None:
        saved = [(a.name, checked_weights(a), a.result, wanted[a.name], len(by_name[a.name].train)) for a in trained]
        _save_adapters(context, saved, on_top_of_unified, settings)

    by_name = {m.name: m for m in members}
    train_shards_elsewhere(context, todo, len(shards), save, settings, on_top_of_unified, label)


def _train_shards_here(context, todo, count: int, wanted, settings, on_top_of_unified: bool, label: str) -> None:
    # In this process, one shard after another over the backend already loaded: what a local
    # executor does, without a task's detour through bytes.
    for number, shard in todo:
        shard_label = label if count == 1 else f"{label} {number}/{count}"
        engine, results = train_members(context, shard, settings, on_top_of_unified, shard_label)
        save_members(context, engine, [(m.name, m, results[m.name], wanted[m.name], {}) for m in shard],
                     on_top_of_unified, settings)
        engine.unwrap()  # the shard's adapters are freed; the base model is as it was
        fault_point("fleet.shard_saved", run=context.run_dir, shard=number)


def fleet_shards(members: Sequence[Member], size: int) -> list[list[Member]]:
    """``members`` cut in order into shards of at most ``size``: a fleet trains one shard at a
    time, so its memory is bounded by the shard, not by the number of members."""
    if size < 1:
        raise PersonalabError(f"fleet_shard must be at least 1, got {size}")
    return [list(members[start : start + size]) for start in range(0, len(members), size)]


def train_members(context, members, settings, on_top_of_unified, label) -> tuple[Any, dict[str, Any]]:
    """``members`` fleet-trained over the unified adapter (when asked) in an engine on the
    backend's base model; returns the engine (the caller saves from it, then unwraps it) and
    each member's training result."""
    backend = context.backend
    under = Route.single(UNIFIED) if on_top_of_unified else Route({})
    engine = context.bank.load_engine(backend.model, [UNIFIED] if on_top_of_unified else [],
                                      backend.target_modules(settings.target_roles))
    # Dropout masks come from the global generator: seeded here, a fleet trains the same
    # whether what came before it in this process (unified trained or reused, ...) drew or not.
    seed_everything(context.seed)
    results = train_fleet(backend, engine, members, settings, context.seed, under=under,
                          progress=context.progress, label=label)
    return engine, results


def save_members(context, engine, saved, on_top_of_unified, settings: TrainSettings) -> None:
    """Trained members saved to the bank in one commit (all or none), each
    ``(bank name, member, its training result, fingerprint, extra data)``, with their records;
    their configs name the target modules as PEFT's would (``settings.target_roles``)."""
    _save_adapters(context, [(name, engine.adapter_weights(member.name), result, wanted, len(member.train), data)
                             for name, member, result, wanted, data in saved], on_top_of_unified, settings)


def _save_adapters(context, saved, on_top_of_unified, settings: TrainSettings) -> None:
    """``(bank name, engine weights, training result, fingerprint, train rows[, extra data])``
    each, into the bank in one commit: the one place a fleet's adapters are written."""
    targets = context.backend.target_modules(settings.target_roles)
    adapters = []
    for name, weights, result, wanted, rows, *data in saved:
        adapters.append((name, weights, {"target_modules": targets,
            "data": {"rows": rows, **(data[0] if data else {})}, "scores": {"val_loss": result.best_val_loss},
            "config_hash": context.config_hash, "fingerprint": wanted,
            "on_top_of": UNIFIED if on_top_of_unified else None}))
        context.records.setdefault("training", {})[name] = result.to_dict()
    context.bank.save_many_weights(adapters, str(context.backend.resolved.path))
