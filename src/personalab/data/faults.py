"""Fault points: named places where a crash test may stop the library on purpose.

A test that must show what survives a ``kill -9`` at an exact moment (a file written but not
yet renamed, a plan step started but not done) cannot hit that moment with a timer. Instead
the library calls ``fault_point(name, **details)`` there, and a test running the library in
a child process installs a hook with ``set_fault_hook`` that, at the point it wants, writes a
marker file and waits to be killed. With no hook installed — always, outside such tests — a
point does nothing but read one module global.

The points (the name, then the details passed):

- ``atomic.written`` (``target``, ``temporary``): a file is complete and fsynced under its
  temporary name beside ``target`` and is about to be renamed over it
  (``personalab.data.atomic``);
- ``plan.step_started`` (``step``, ``out``): a plan step's ledger row says running and its old
  outputs are removed (a training step's are kept for a retry, which resumes); no work done yet (``personalab.plan.runner``);
- ``fleet.step_done`` (``label``): a fleet training step is done (``personalab.train.fleet``);
- ``fleet.shard_saved`` (``run``, ``shard``): fleet shard number ``shard`` (from 1) of run
  folder ``run`` is in the bank (``personalab.strategies.steps``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

FaultHook = Callable[..., None]

_hook: FaultHook | None = None


def set_fault_hook(hook: FaultHook | None) -> FaultHook | None:
    """Install ``hook`` (called as ``hook(name, **details)`` at every point; None removes
    it); returns the hook it replaces, so that a caller can put that back."""
    global _hook
    previous, _hook = _hook, hook
    return previous


def fault_point(name: str, **details: Any) -> None:
    """Mark the point ``name``: the installed hook, if any, decides whether to stop here."""
    if _hook is not None:
        _hook(name, **details)
