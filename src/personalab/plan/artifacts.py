"""The files the plan runner writes itself — comparisons, clusterings, ``plan.json`` — and the
cleaning of what a killed run left half-written.

Every file is written to a temporary name beside its target and renamed into place, so that a
reader sees the old file or the new one, never a part. A killed write leaves only a hidden
``.*.tmp`` file, which no reader opens and the next run removes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from personalab.data.atomic import atomic_write_text
from personalab.plan.pause import pause_point, requested


def write_json(path: Path, data: Any, step: str = "", out: Path | None = None) -> None:
    """Write ``data`` as JSON to ``path`` atomically (``step``: the test pause hook's name)."""
    text = json.dumps(data, indent=2, default=str) + "\n"
    if step and requested(step, "write"):
        # Simulate a kill in the middle of the write: half the bytes in a temporary file.
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        (Path(path).parent / f".{Path(path).name}.partial.tmp").write_text(text[: len(text) // 2])
        pause_point(step, "write", out or Path(path).parent)
    atomic_write_text(path, text)


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
    removed = []
    folders = (out, *sorted((out / "compare").glob("*")), *sorted((out / "cluster").glob("*")), out / "references")
    for folder in folders:
        for leftover in sorted(Path(folder).glob(".*.tmp")) if Path(folder).is_dir() else []:
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed
