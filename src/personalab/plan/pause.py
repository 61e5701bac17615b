"""A test-only hook that stops the plan runner at a known point, so that a test can kill it
there with SIGKILL deterministically instead of guessing with a timer.

Set ``PERSONALAB_TEST_PAUSE_AT=<step>@<phase>`` (e.g. ``train:per_persona@start`` or
``compare:constrained@write``): when the runner reaches that point it writes the file named by
``PERSONALAB_TEST_PAUSE_MARKER`` (default ``RUN_DIR/.paused``), then sleeps. Phases:

- ``start``: the step's ledger row says running and its old outputs are removed; no work yet;
- ``write``: half of an artifact the runner writes itself is in its temporary file;
- ``finish``: the artifact is complete but the ledger does not say done yet.

Unset (always, outside tests) it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV = "PERSONALAB_TEST_PAUSE_AT"
MARKER_ENV = "PERSONALAB_TEST_PAUSE_MARKER"


def requested(step: str, phase: str) -> bool:
    return os.environ.get(ENV) == f"{step}@{phase}"


def pause_point(step: str, phase: str, out: Path) -> None:
    """Pause here for good if the test asked for this point (the test kills the process)."""
    if not requested(step, phase):
        return
    marker = Path(os.environ.get(MARKER_ENV) or Path(out) / ".paused")
    marker.write_text(f"{os.getpid()} {step}@{phase}\n")
    while True:
        time.sleep(1)
