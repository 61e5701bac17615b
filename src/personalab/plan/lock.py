"""One plan at a time per run directory: an exclusive ``flock`` on ``RUN_DIR/.lock``, held for
the whole run.

The kernel drops the lock when its process ends in any way (``kill -9`` included), so a killed
plan never leaves a stale lock to clean up by hand. The holder writes its PID into the file so
that a refused second plan can say who holds it.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from personalab.errors import PersonalabError

LOCK_FILE = ".lock"


@contextmanager
def plan_lock(out: Path) -> Iterator[None]:
    """Hold the run directory's lock, or refuse at once if another plan holds it."""
    path = Path(out) / LOCK_FILE
    # Opened without truncating: the holder's PID must still be readable by whoever is refused.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PersonalabError(_refusal(out, path)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _refusal(out: Path, path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    holder = f" (process {pid})" if pid.isdigit() else ""
    return (f"{out} is in use by another `personalab plan`{holder}; wait for it to finish, or stop it "
            "and re-run the same command to resume")
