"""The Ray executor: each task a Ray task with its own CPUs and GPUs, progress as tasks land
(``ray.wait``), and a task submitted again when its worker or node dies.

Ray is optional (``pip install 'personalab[ray]'``) and imported here only, when a run asks for
it. Retries are the driver's, not Ray's (tasks go out with ``max_retries=0``): the driver sees
every death, says so, records it (``events``: into training.json and a plan's ledger) and
submits the task again, up to ``ExecutorSpec.max_retries`` times. An error raised by the task's
own code is not retried — it would fail the same way again — and reaches the caller as is.

The cluster: an address (``--ray-address``, ``executor: {address: ...}`` or ``RAY_ADDRESS``)
joins a running one; none starts a private one on this machine for the run's lifetime, with
no dashboard, a bounded object store and Ray's usage statistics off unless the environment
says otherwise. A process that already called ``ray.init`` keeps its cluster.
"""

from __future__ import annotations

import os
import socket
from typing import Any, Callable, Iterable, Iterator

from personalab.data.faults import fault_point
from personalab.errors import PersonalabError
from personalab.run.executor import ExecutorSpec, ray_address

# Deaths of a worker, a node or the objects a task needs: another attempt may succeed.
SYSTEM_FAILURES = ("WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "ObjectLostError",
                   "OwnerDiedError", "OutOfMemoryError", "RaySystemError")
PROBE_SECONDS = 5.0


def import_ray():
    try:
        import ray
    except ImportError:
        raise PersonalabError("the ray executor needs Ray, which is not installed here: "
                              "pip install 'personalab[ray]' (or leave out --executor ray to train in this process)") from None
    return ray


def run_task(fn: Callable[..., Any], cpus: float, setup: Callable[[], None] | None, label: str, attempt: int,
             *args: Any) -> Any:
    """The body of every task, in the worker: torch gets the task's CPUs as threads (a worker
    would otherwise take every core of its node and fight its neighbours), then ``fn(*args)``.
    ``args`` come at the top level so that Ray resolves shared object references among them."""
    import torch

    torch.set_num_threads(max(1, int(cpus)))
    if setup is not None:
        setup()
    fault_point("executor.task_started", label=label, attempt=attempt)
    return fn(*args)


class RayFuture:
    def __init__(self, fn: Callable[..., Any], args: tuple, label: str):
        self.fn, self.args, self.label = fn, args, label
        self.ref: Any = None
        self.attempt = 0
        self.value: Any = None
        self.error: BaseException | None = None

    def result(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value

    def exception(self) -> BaseException | None:
        return self.error


class RayExecutor:
    """Tasks as Ray tasks on the cluster ``spec`` names. ``setup``: run in the worker before
    each task (tests install a fault hook with it)."""

    kind = "ray"
    in_process = False

    def __init__(self, spec: ExecutorSpec, say: Callable[[str], None] = print,
                 setup: Callable[[], None] | None = None):
        self.ray, self.spec, self.say, self.setup = import_ray(), spec, say, setup
        self.events: list[dict[str, Any]] = []
        self._connected = connect(self.ray, spec)
        self._remote = self.ray.remote(run_task)

    def share(self, value: Any) -> Any:
        return self.ray.put(value)

    def describe(self) -> str:
        total = self.ray.cluster_resources()
        return (f"{total.get('CPU', 0):g} CPUs, {total.get('GPU', 0):g} GPUs in the cluster; per task "
                f"{self.spec.cpus_per_task:g} CPU(s), {self.spec.gpus_per_task:g} GPU(s), {self.spec.max_retries} retries")

    def submit(self, fn: Callable[..., Any], *args: Any, label: str = "") -> RayFuture:
        future = RayFuture(fn, args, label or getattr(fn, "__name__", "task"))
        self._launch(future)
        return future

    def _launch(self, future: RayFuture) -> None:
        future.attempt += 1
        options = {"num_cpus": self.spec.cpus_per_task, "num_gpus": self.spec.gpus_per_task, "max_retries": 0}
        future.ref = self._remote.options(**options).remote(
            future.fn, self.spec.cpus_per_task, self.setup, future.label, future.attempt, *future.args)

    def as_completed(self, futures: Iterable[RayFuture]) -> Iterator[RayFuture]:
        pending = {future.ref: future for future in futures}
        while pending:
            ready, _ = self.ray.wait(list(pending), num_returns=1)
            future = pending.pop(ready[0])
            if self._settle(future):
                yield future
            else:
                pending[future.ref] = future  # submitted again

    def _settle(self, future: RayFuture) -> bool:
        """Take the task's outcome; False when it died and was submitted again."""
        try:
            future.value = self.ray.get(future.ref)
            return True
        except self.ray.exceptions.RayTaskError as error:  # the task's own code raised
            future.error = error.as_instanceof_cause()
            return True
        except Exception as error:
            if type(error).__name__ not in SYSTEM_FAILURES:
                raise
            return not self._retry(future, error)

    def _retry(self, future: RayFuture, error: Exception) -> bool:
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": ")
        retry = future.attempt <= self.spec.max_retries
        event = {"task": future.label, "attempt": future.attempt, "error": reason,
                 "action": "retried" if retry else "failed"}
        self.events.append(event)
        if retry:
            self.say(f"  {future.label}: attempt {future.attempt} lost ({reason}); "
                     f"submitting it again ({future.attempt} of {self.spec.max_retries} retries)")
            self._launch(future)
        else:
            tries = "retries are off" if not self.spec.max_retries else f"after {self.spec.max_retries} retries"
            future.error = PersonalabError(f"its worker died ({reason}), {tries}")
            self.say(f"  {future.label}: failed ({reason}), {tries}")
        return retry

    def cancel(self, future: RayFuture) -> None:
        """A task not yet started is dropped; one running is interrupted (its result is not
        wanted: a plan that stopped at its first winner)."""
        try:
            self.ray.cancel(future.ref)
        except Exception:  # already finished, or its worker gone: nothing left to stop
            pass

    def close(self) -> None:
        if self._connected:
            self.ray.shutdown()
            self._connected = False


def connect(ray, spec: ExecutorSpec) -> bool:
    """Join the cluster ``spec`` names, or start a private one; False when this process was
    already connected (its cluster is left alone at the end)."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network calls unless asked
    address = ray_address(spec)
    try:
        if address:
            probe(address)
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=spec.num_cpus, include_dashboard=False, log_to_driver=False,
                     object_store_memory=spec.object_store_memory)
    except (ConnectionError, TimeoutError, RuntimeError) as error:
        raise PersonalabError(f"cannot start or join the Ray cluster{f' at {address}' if address else ''}: {error}") from None
    return True


def probe(address: str) -> None:
    """Fail in seconds, with a clear message, when a cluster address takes no connection
    (``ray.init`` itself may wait a minute or more before giving up)."""
    host_port = address.removeprefix("ray://")
    if host_port in ("auto", "local") or ":" not in host_port:
        return
    host, _, port = host_port.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=PROBE_SECONDS):
            pass
    except (OSError, ValueError) as error:
        raise PersonalabError(
            f"cannot reach the Ray cluster at {address} ({error}). Start one with `ray start --head` and pass the "
            "address it prints (HOST:6379) with --ray-address, or set RAY_ADDRESS; leave both out to start a "
            "private cluster on this machine") from None
