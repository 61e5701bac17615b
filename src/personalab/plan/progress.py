"""Honest progress lines for a plan run, on stderr:

    [3/9] train per_cluster ... (elapsed 1:29, about 6:11 left)
    [3/9] train per_cluster ... done in 41 s (elapsed 2:10, about 5:30 left)

The estimate of what is left adds, for every step still ahead, the mean time of the finished
steps of its kind (train, evaluate, ...) — times recorded by earlier runs of the plan count
too — and nothing for steps the ledger already holds, since those will not be redone. Under
``stop: first_win`` a winner ends the plan early, so the estimate is an upper bound ("up to").
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from typing import Sequence, TextIO


class Progress:
    def __init__(self, planned: Sequence[tuple[str, str]], done_before: set[str] = frozenset(),
                 enabled: bool = True, upper_bound: bool = False, stream: TextIO | None = None):
        """``planned``: (step id, kind) of every step the plan may run, in order;
        ``done_before``: step ids the ledger says are done (likely to be skipped)."""
        self.planned, self.done_before = list(planned), set(done_before)
        self.enabled, self.upper_bound = enabled, upper_bound
        self.stream = stream
        self.index = 0
        self.started = time.perf_counter()
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.visited: set[str] = set()

    def begin(self, step: str) -> None:
        # A whole line, and the outcome on a line of its own: whatever the step prints in
        # between (bars, library notices) cannot break either.
        times = self._times() if self.seconds else ""  # before the step counts as visited: it is still ahead
        self._advance(step)
        self._write(f"{self._prefix(step)} ..." + (f" ({times})" if times else ""))

    def done(self, step: str, kind: str, seconds: float) -> None:
        self.seconds[kind].append(seconds)
        self._write(f"{self._prefix(step)} ... done in {_duration(seconds)} ({self._times()})")

    def failed(self, step: str, error: BaseException) -> None:
        self._write(f"{self._prefix(step)} ... failed: {error}")

    def reused(self, step: str, kind: str, seconds: float | None) -> None:
        self._advance(step)
        if seconds is not None:
            self.seconds[kind].append(seconds)
        took = f" (took {_duration(seconds)})" if seconds is not None else ""
        self._write(f"{self._prefix(step)} ... already done{took}, not redone")

    def skipped(self, steps: Sequence[str], what: str, reason: str) -> None:
        for step in steps:
            self._advance(step)
        self._write(f"[{self.index}/{len(self.planned)}] {what}: {reason}")

    def note(self, text: str) -> None:
        self._write(text)

    def estimate_left(self) -> float | None:
        """Seconds the steps still ahead should take, or None before anything was timed."""
        measured = [s for values in self.seconds.values() for s in values]
        if not measured:
            return None
        overall = sum(measured) / len(measured)
        left = 0.0
        for step, kind in self.planned:
            if step in self.visited or step in self.done_before:
                continue
            values = self.seconds.get(kind)
            left += sum(values) / len(values) if values else overall
        return left

    def _times(self) -> str:
        elapsed = f"elapsed {_clock(time.perf_counter() - self.started)}"
        left = self.estimate_left()
        if left is None:
            return elapsed
        if left < 1:
            return f"{elapsed}, nothing left"
        return f"{elapsed}, {'up to' if self.upper_bound else 'about'} {_clock(left)} left"

    def _prefix(self, step: str) -> str:
        return f"[{self.index}/{len(self.planned)}] {_label(step)}"

    def _advance(self, step: str) -> None:
        if step not in self.visited:  # a step is counted once however often it is looked up
            self.visited.add(step)
            self.index += 1

    def _write(self, text: str) -> None:
        if self.enabled:
            stream = self.stream or sys.stderr
            stream.write(text + "\n")
            stream.flush()


def _label(step: str) -> str:
    kind, _, name = step.partition(":")
    return f"{kind} {name}"


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s" if seconds < 120 else _clock(seconds)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
