"""Fleet shards trained as tasks of an executor elsewhere (Ray workers): what a task is given,
what it does, what it returns, and how the driver takes the result into the bank.

A task gets no path into the run: no bank, no run folder, no ledger. It is given the members
of its shard (their rows), the training settings and seed, a picklable way to build the base
model itself, and — shared once by reference among all the tasks — the base's trained extra
parameters (a classifier's head) and the frozen adapters beneath (``unified`` when stacked).
It returns each adapter as safetensors bytes with their sha256; the driver checks every hash
before it writes the shard into the bank in one commit, as the in-process path does. A task
trains exactly what ``steps.train_members`` trains in this process (same engine, same seeding
of the global generator per shard), so its adapters are the same bit for bit.

A worker process keeps the base model it built (``worker_backend``): the next shard of the same
fleet that lands on it trains over the model already loaded, as the in-process path does, and
a shard of another model replaces it (one base model in a worker's memory at a time).
"""

from __future__ import annotations

import hashlib
import pickle
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import torch

from personalab.data.faults import fault_point
from personalab.engine import MultiLoraModel, Route
from personalab.engine.weights import weights_from_bytes, weights_to_bytes
from personalab.errors import PersonalabError
from personalab.models.base import Backend
from personalab.train.fleet import Member, train_fleet
from personalab.train.presets import TrainSettings
from personalab.train.result import TrainResult, seed_everything

UNIFIED = "unified"


@dataclass(frozen=True)
class ShardJob:
    """One shard's own part of a task (the shared part travels by reference)."""

    number: int  # from 1, as the in-process path counts shards
    members: list[Member]
    settings: TrainSettings
    seed: int
    label: str


@dataclass(frozen=True)
class Shared:
    """What every shard task of one fleet needs, put once into the executor's object store."""

    build_backend: Callable[[], Backend]
    head: dict[str, torch.Tensor]  # the base's trained parameters (a classifier's head), by name
    under: dict[str, Any] | None  # the frozen unified adapter's weights, when stacked


@dataclass(frozen=True)
class TrainedAdapter:
    name: str
    data: bytes  # the adapter's weights, safetensors
    sha256: str
    result: TrainResult


def shared_for(context, on_top_of_unified: bool) -> Shared:
    """The shared part of a fleet's tasks, read by the driver from its backend and bank."""
    if context.build_backend is None:
        raise PersonalabError("this run cannot train fleet shards elsewhere: it has no way to build its model "
                              "in another process (FitContext.build_backend)")
    backend = context.backend
    head = {name: backend.model.get_parameter(name).detach().cpu().clone()
            for name in backend.trainable_base_parameters()}
    under = context.bank.read_weights(UNIFIED) if on_top_of_unified else None
    return Shared(context.build_backend, head, under)


def train_shard_task(job: ShardJob, shared: Shared) -> list[TrainedAdapter]:
    """The task: build the base, train the shard's members as one fleet, return the adapters.
    Runs in a worker; touches nothing on disk but the model it loads."""
    backend = worker_backend(shared.build_backend)
    with torch.no_grad():
        for name, tensor in shared.head.items():
            backend.model.get_parameter(name).copy_(tensor)
    targets = backend.target_modules(job.settings.target_roles)
    under = shared.under or {}
    # The modules wrapped are those ``AdapterBank.load_engine`` wraps in the driver: the same
    # engine, so the same arithmetic.
    engine = MultiLoraModel(backend.model, sorted(set(under) | set(targets)))
    if shared.under is not None:
        engine.add_adapter(UNIFIED, shared.under)
    seed_everything(job.seed)  # as train_members does: a shard's draws depend on the shard alone
    try:
        results = train_fleet(backend, engine, job.members, job.settings, job.seed,
                              under=Route.single(UNIFIED) if shared.under is not None else Route({}),
                              progress=False, label=job.label)
        trained = []
        for member in job.members:
            data = weights_to_bytes(engine.adapter_weights(member.name))
            trained.append(TrainedAdapter(member.name, data, hashlib.sha256(data).hexdigest(), results[member.name]))
        return trained
    finally:
        engine.unwrap()  # the cached base is left as built (plus the head, overwritten by every task)


_BACKEND: dict[str, Backend] = {}  # this worker process's base model, by the build call's hash


def worker_backend(build: Callable[[], Backend]) -> Backend:
    """The backend ``build`` makes, built once per worker process and kept for the next task
    with the same build call (same model, labels, profiles, seed). Safe for shard tasks: each
    overwrites every trainable base parameter (the head) and unwraps its engine at the end,
    so a kept backend trains exactly as a fresh one."""
    try:
        key = hashlib.sha256(pickle.dumps(build)).hexdigest()
    except (pickle.PicklingError, AttributeError, TypeError):  # a call with no stable identity
        return build()
    if key not in _BACKEND:
        _BACKEND.clear()  # one base model in memory at a time
        _BACKEND[key] = build()
    return _BACKEND[key]


def checked_weights(adapter: TrainedAdapter) -> dict[str, Any]:
    """The adapter's weights, once its bytes match the hash the task computed: a blob damaged
    on its way is refused, never written into the bank."""
    if hashlib.sha256(adapter.data).hexdigest() != adapter.sha256:
        raise PersonalabError(f"adapter {adapter.name!r} came back damaged from its task (sha256 mismatch); "
                              "run the command again to retrain its shard")
    return weights_from_bytes(adapter.data)


def train_shards_elsewhere(context, shards: Sequence[tuple[int, list[Member]]], count: int,
                           save: Callable[[list[TrainedAdapter]], None], settings: TrainSettings,
                           on_top_of_unified: bool, label: str) -> None:
    """Submit every shard (``(number, members)``) at once and save each as it lands, with
    ``save``; a shard whose task failed for good (its worker died more often than retries
    allow) is reported after the others are saved, so the next run redoes only it."""
    executor = context.executor
    seen = len(executor.events)  # what it saw before: an executor serves a whole plan
    shared = executor.share(shared_for(context, on_top_of_unified))
    futures = {}
    for number, members in shards:
        name = f"{label} {number}/{count}" if count > 1 else label
        job = ShardJob(number, members, settings, context.seed, name)
        futures[executor.submit(train_shard_task, job, shared, label=f"shard {name}")] = (number, name)
    failed, started = [], time.perf_counter()
    for future in executor.as_completed(list(futures)):
        number, name = futures[future]
        error = future.exception()
        if error is not None:
            failed.append(f"shard {name}: {error}")
            continue
        save(future.result())
        if context.progress:
            print(f"  {name}: {len(future.result())} adapter(s) in the bank "
                  f"({time.perf_counter() - started:.1f} s since submission)", flush=True)
        fault_point("fleet.shard_saved", run=context.run_dir, shard=number)
    _record(context, executor, executor.events[seen:])
    if failed:
        raise PersonalabError(f"{len(failed)} of {len(shards)} fleet shard(s) failed: " + "; ".join(failed)
                              + ". The other shards are in the bank: run the same command again to train "
                              "only the failed ones.")


def _record(context, executor, events: Sequence[dict[str, Any]]) -> None:
    """What the executor saw of these tasks (retries, failures) into the run's records
    (training.json), and so into a plan's ledger row for the training step."""
    entry = context.records.setdefault("executor", {"kind": executor.kind, "events": []})
    entry["events"] += list(events)
