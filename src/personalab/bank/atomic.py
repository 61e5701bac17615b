"""Putting an adapter folder into place so that nobody ever sees half of it.

A folder is built in a private work folder on the same file system (so renames are atomic),
then renamed into place under a lock that serialises the bank's writers. Replacing a folder
takes two renames (old away, new in): between them no folder is there, so a reader sees no
adapter of that name for a moment, never a mix of two versions.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows has no flock: there, one writer at a time per bank
    fcntl = None


@contextlib.contextmanager
def staging_folder(parent: Path, prefix: str = "") -> Iterator[Path]:
    """A new private folder inside ``parent``, removed afterwards whatever happens. A killed
    process leaves it behind; it is hidden and never read."""
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` (across processes) for the block."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed
        yield


def swap_in(staged: Path, target: Path, previous: Path) -> Path | None:
    """Rename ``staged`` to ``target``; an older ``target`` is first renamed to ``previous``,
    which is returned (None when there was none)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    moved = None
    if target.exists():
        os.replace(target, previous)
        moved = previous
    os.replace(staged, target)
    return moved


def swap_back(target: Path, previous: Path | None, failed: Path, root: Path) -> None:
    """Undo ``swap_in``: ``target`` goes to ``failed`` and ``previous`` (if any) comes back."""
    os.replace(target, failed)
    if previous is not None:
        os.replace(previous, target)
    elif target.parent != root:
        with contextlib.suppress(OSError):
            target.parent.rmdir()  # the kind folder made for this adapter, if now empty
