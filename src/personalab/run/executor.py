"""Executors: where a run's independent jobs (fleet shards, a plan's candidate runs) execute,
behind one small protocol.

    executor.share(value) -> handle        put a value every task reads (once, by reference)
    executor.submit(fn, *args, label=...)  -> Future     fn(*args) as one task
    executor.as_completed(futures)         -> the futures, each as soon as its task has ended
    executor.cancel(future)                its result is no longer wanted (a task not started never runs)
    executor.close()

A ``Future`` answers ``result()`` (the task's return value, or its error raised) and
``exception()`` (None, or the error that ended it for good). ``events`` lists what the
executor saw beyond plain success (a retry after a worker died, a task given up), as
dictionaries a run records in training.json and a plan in its ledger.

Two kinds: ``local`` (the default: tasks run here, one after another, when their result is
asked for — today's behaviour, and ``in_process``, so a fleet trains its shards over the model
already loaded, and a plan runs its candidates in turn) and ``ray`` (``personalab.run.ray_executor``: each task a Ray task with its own
CPUs and GPUs, retried when its worker or node dies; a plan sends its independent candidates
to it side by side, ``personalab.plan.ahead``). Ray is imported only when asked for.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable, Iterator, Protocol

from personalab.errors import PersonalabError

KINDS = ("local", "ray")


@dataclass(frozen=True)
class ExecutorSpec:
    """How a run's tasks execute: ``executor:`` in a plan, ``--executor`` and friends in the CLI.
    Not part of any fingerprint or step key: where adapters train does not change them."""

    kind: str = "local"
    address: str | None = None
    """A running Ray cluster (``HOST:PORT`` of its head, or ``auto``); None: ``RAY_ADDRESS``
    when set, else a private cluster on this machine for the run's lifetime."""
    cpus_per_task: float = 1
    """CPUs each task asks for; the task runs torch with that many threads."""
    gpus_per_task: float = 0
    """GPUs each task asks for (a fraction shares one GPU between tasks)."""
    max_retries: int = 2
    """Times a task is submitted again when its worker or node dies (0: never)."""
    num_cpus: int | None = None
    """CPUs of a private local cluster (None: all of this machine's)."""
    object_store_memory: int = 500 * 1024**2
    """Bytes of a private local cluster's object store, bounded so that the machine stays
    usable (Ray's default takes 30% of the memory)."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise PersonalabError(f"executor kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.cpus_per_task <= 0 or self.gpus_per_task < 0 or self.max_retries < 0:
            raise PersonalabError("executor: cpus_per_task must be > 0, gpus_per_task and max_retries >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Future(Protocol):
    def result(self) -> Any: ...

    def exception(self) -> BaseException | None: ...


class Executor(Protocol):
    kind: str
    in_process: bool  # tasks run in this process and may use its objects (a loaded model)
    events: list[dict[str, Any]]

    def share(self, value: Any) -> Any: ...

    def submit(self, fn: Callable[..., Any], *args: Any, label: str = "") -> Future: ...

    def as_completed(self, futures: Iterable[Future]) -> Iterator[Future]: ...

    def cancel(self, future: Future) -> None: ...

    def close(self) -> None: ...


class LocalFuture:
    """A task of the local executor: run the first time its outcome is asked for, so that
    only one task's memory (one fleet shard) is alive at a time."""

    def __init__(self, fn: Callable[..., Any], args: tuple):
        self._call: tuple | None = (fn, args)
        self._value: Any = None
        self._error: BaseException | None = None

    def _run(self) -> None:
        if self._call is not None:
            fn, args = self._call
            self._call = None
            try:
                self._value = fn(*args)
            except Exception as error:  # kept for result(), as a pool's future keeps it
                self._error = error

    def result(self) -> Any:
        self._run()
        if self._error is not None:
            raise self._error
        return self._value

    def exception(self) -> BaseException | None:
        self._run()
        return self._error


@dataclass
class LocalExecutor:
    """Tasks run in this process, in submission order: the default, and today's behaviour."""

    kind: str = "local"
    in_process: bool = True
    events: list[dict[str, Any]] = field(default_factory=list)

    def share(self, value: Any) -> Any:
        return value

    def describe(self) -> str:
        return "this process, one task after another"

    def submit(self, fn: Callable[..., Any], *args: Any, label: str = "") -> LocalFuture:
        return LocalFuture(fn, args)

    def as_completed(self, futures: Iterable[LocalFuture]) -> Iterator[LocalFuture]:
        for future in futures:
            future.exception()  # runs it
            yield future

    def cancel(self, future: LocalFuture) -> None:
        future._call = None  # never run; its result reads as None

    def close(self) -> None:
        pass


def make_executor(spec: ExecutorSpec | None, say: Callable[[str], None] = print) -> Executor:
    """The executor ``spec`` describes (None: local). Asking for Ray without it installed, or
    for a cluster that cannot be reached, is a ``PersonalabError`` saying so."""
    if spec is None or spec.kind == "local":
        return LocalExecutor()
    from personalab.run.ray_executor import RayExecutor

    return RayExecutor(spec, say=say)


def executor_spec(kind: str | None = None, address: str | None = None, cpus_per_task: float | None = None,
                  gpus_per_task: float | None = None, max_retries: int | None = None,
                  base: ExecutorSpec | None = None) -> ExecutorSpec | None:
    """``base`` (a plan's ``executor:``) with the CLI's flags over it; a ``--ray-address`` (or
    ``RAY_ADDRESS``) alone does not switch to Ray: ``--executor ray`` does."""
    given = {"kind": kind, "address": address, "cpus_per_task": cpus_per_task, "gpus_per_task": gpus_per_task,
             "max_retries": max_retries}
    merged = {**(base.to_dict() if base else {}), **{k: v for k, v in given.items() if v is not None}}
    if merged.get("kind", "local") == "local" and not base:
        return None if kind is None else ExecutorSpec()
    return ExecutorSpec(**merged)


def ray_address(spec: ExecutorSpec) -> str | None:
    """The cluster to join: the spec's address, else ``RAY_ADDRESS``; None starts a private one."""
    return spec.address or os.environ.get("RAY_ADDRESS") or None
