"""Gathering concurrent requests into one engine batch: the engine routes every row of a batch
through its own adapters, so requests of different personas cost about one forward pass
together instead of one each.

One worker thread owns the model (torch modules are not safe to drive from several threads at
once, and one batch at a time is what keeps them busy). A request waits in a queue; the worker
takes the first one waiting, keeps gathering for at most ``max_wait_ms`` or until the batch
holds ``max_batch_rows`` rows, answers them all with one call, and hands each caller its own
answers through a ``concurrent.futures.Future`` (an ``asyncio`` handler awaits it with
``asyncio.wrap_future``, so no request holds a thread while it waits).

A batch that fails is answered again one request at a time, so that one bad request fails
alone instead of taking the requests it was batched with down with it. A full queue refuses
new requests (``Busy``) rather than letting memory grow without bound under overload.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Generic, Sequence, TypeVar

Q = TypeVar("Q")  # a question: what one request asks
A = TypeVar("A")  # its answer

_STOP = object()


class Busy(Exception):
    """The queue is full: the server is answering as fast as it can; try again shortly."""


@dataclass(frozen=True)
class BatchSettings:
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for others to join it
    max_batch_rows: int = 256  # a batch closes as soon as it holds this many rows (inputs)
    max_queue: int = 1024  # requests waiting at most; more are refused (503) until it drains

    def __post_init__(self) -> None:
        if self.max_wait_ms < 0 or self.max_batch_rows < 1 or self.max_queue < 1:
            raise ValueError(f"max_wait_ms must be >= 0, max_batch_rows and max_queue >= 1; got {self}")


@dataclass
class BatchStats:
    """What the worker has done: ``batches`` is the number of engine calls it made."""

    requests: int = 0
    batches: int = 0
    rows: int = 0
    largest_batch: int = 0  # in requests
    failed_batches: int = 0  # batches answered again one request at a time

    def to_json(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class _Job(Generic[Q, A]):
    question: Q
    rows: int
    future: Future = field(default_factory=Future)


class Batcher(Generic[Q, A]):
    """Answers questions with ``answer_all`` (questions -> one answer each, in order), many
    questions per call. ``rows_of`` says how many rows (inputs) a question holds."""

    def __init__(self, answer_all: Callable[[list[Q]], Sequence[A]], rows_of: Callable[[Q], int],
                 settings: BatchSettings = BatchSettings()):
        self._answer_all, self._rows_of, self.settings = answer_all, rows_of, settings
        self._queue: queue.Queue = queue.Queue(maxsize=settings.max_queue)
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self.stats = BatchStats()

    def start(self) -> None:
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._loop, name="personalab-batcher", daemon=True)
                self._worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Answer what is already queued, then end the worker."""
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            self._queue.put(_STOP)
            worker.join(timeout)

    def submit(self, question: Q) -> Future:
        """A future of ``question``'s answer (or of the exception answering it raised)."""
        self.start()
        job = _Job(question, self._rows_of(question))
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise Busy(f"{self.settings.max_queue} requests are already waiting; try again shortly") from None
        return job.future

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop = self._gather(first)
            self._answer(batch)
            if stop:
                return

    def _gather(self, first: _Job) -> tuple[list[_Job], bool]:
        """``first`` and the jobs that arrive within the wait, up to the row limit."""
        batch, rows = [first], first.rows
        deadline = time.monotonic() + self.settings.max_wait_ms / 1000
        while rows < self.settings.max_batch_rows:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is _STOP:
                return batch, True
            batch.append(job)
            rows += job.rows
        return batch, False

    def _answer(self, batch: list[_Job]) -> None:
        # A caller that went away cancelled its future: its rows are not scored at all.
        batch = [job for job in batch if job.future.set_running_or_notify_cancel()]
        if batch:
            self._call(batch, retry_alone=True)

    def _call(self, batch: list[_Job], retry_alone: bool) -> None:
        try:
            answers = self._answer_all([job.question for job in batch])
        except Exception as error:  # noqa: BLE001 - handed to the caller, never kills the worker
            if retry_alone and len(batch) > 1:
                self.stats.failed_batches += 1
                for job in batch:
                    self._call([job], retry_alone=False)
                return
            for job in batch:
                job.future.set_exception(error)
            return
        self._count(batch)
        for job, found in zip(batch, answers):
            job.future.set_result(found)

    def _count(self, batch: list[_Job]) -> None:
        self.stats.requests += len(batch)
        self.stats.batches += 1
        self.stats.rows += sum(job.rows for job in batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
