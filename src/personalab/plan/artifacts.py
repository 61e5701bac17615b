"""The files the plan runner writes itself — comparisons, clusterings, ``plan.json`` — and the
cleaning of what a killed run left half-written.

Every file is written through ``personalab.data.atomic``, so that a reader sees the old file or
the new one, never a part. A killed write leaves only a hidden ``.*.tmp`` file, which no reader
opens and the next run removes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from personalab.data.atomic import atomic_write_json, remove_leftovers


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    atomic_write_json(path, data, indent=2, default=str)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def remove(path: Path) -> None:
    """Remove a step's output (a file or a folder) before the step is run again."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def clean_leftovers(out: Path) -> list[Path]:
    """Remove the temporary files of writes a killed run did not finish (we hold the lock, so
    no other writer is at work) in the folders the runner writes; returns what was removed."""
    folders = (out, *sorted((out / "compare").glob("*")), *sorted((out / "cluster").glob("*")), out / "references")
    removed = [path for folder in folders for path in remove_leftovers(folder)]
    # A run a task sent back is built in a hidden staging folder beside it (run/step_tasks.install).
    staging = [path for path in sorted((out / "runs").glob(".*")) if path.is_dir()]
    for path in staging:
        shutil.rmtree(path, ignore_errors=True)
    return removed + staging
