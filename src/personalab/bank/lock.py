"""The bank writers' lock: one process at a time changes a bank's folders and manifest.

Adapter folders are built in staging folders and swapped into place through
``personalab.data.atomic``; this lock serialises those swaps with the manifest rewrite that
records them, across processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows has no flock: there, one writer at a time per bank
    fcntl = None


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (across processes) for the block."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield
