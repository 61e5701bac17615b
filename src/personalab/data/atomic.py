"""The one atomic writer: every file and folder personalab writes goes into place through here,
so that no reader ever sees half of one.

A file is written to a hidden temporary name beside its target (``.<name>.<random>.tmp``: the
same folder, so the rename is atomic on one file system), fsynced, renamed over the target,
and then the folder is fsynced so that the rename itself survives a power cut. A folder is
built in a staging folder, every file in it fsynced, then renamed into place the same way.

What a killed writer leaves behind: only its temporary file (or staging folder), never a
partial target. Later writes ignore such leftovers — every write takes a fresh random name,
so a leftover can never be mistaken for, or collide with, a new write — and a writer that
owns a folder (holds its lock) removes them with ``remove_leftovers``. Nothing else deletes
them, because a temporary file of another live writer looks the same.

Fault point ``atomic.written`` (see ``personalab.data.faults``) sits between the complete,
fsynced temporary file and its rename.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from personalab.data.faults import fault_point

TEMP_SUFFIX = ".tmp"
FILE_MODE = 0o644  # temporary files are created private (0600); results are for reading
FOLDER_MODE = 0o755  # and so are folders made with mkdtemp (0700)


# --- files -----------------------------------------------------------------------------------


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` for the block to fill (any writer: ``open``,
    ``savefig``, ``safetensors``); when the block succeeds it is fsynced and renamed over
    ``path``, when it fails it is deleted and ``path`` is untouched."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=target.parent)
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        _fsync_file(temporary)
        os.chmod(temporary, target.stat().st_mode & 0o7777 if target.exists() else FILE_MODE)
        fault_point("atomic.written", target=target, temporary=temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)


@contextmanager
def _text_file(path: str | os.PathLike) -> Iterator[IO[str]]:
    with atomic_file(path) as temporary, open(temporary, "w", encoding="utf-8", newline="\n") as handle:
        yield handle


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the new one."""
    with atomic_file(path) as temporary:
        temporary.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` line ends on every platform) to ``path``, atomically."""
    with _text_file(path) as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike, document: Any, **dumps_options: Any) -> None:
    """Write ``document`` as JSON (``json.dumps`` with ``dumps_options``) and a final newline."""
    atomic_write_text(path, json.dumps(document, **dumps_options) + "\n")


def atomic_write_jsonl(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write one JSON object per line (UTF-8, non-ASCII kept readable), atomically; the rows
    are streamed, and an error while producing them leaves the old file."""
    with _text_file(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def atomic_write_safetensors(path: str | os.PathLike, tensors: Mapping[str, Any],
                             metadata: Mapping[str, str] | None = None) -> None:
    """Write torch ``tensors`` (contiguous, on the CPU) as a safetensors file, atomically."""
    from safetensors.torch import save_file  # here: reading data files needs no torch

    with atomic_file(path) as temporary:
        save_file(dict(tensors), str(temporary), metadata=dict(metadata) if metadata else None)


def leftovers(folder: str | os.PathLike) -> list[Path]:
    """The temporary files in ``folder`` (not below it) that killed writers left behind."""
    folder = Path(folder)
    return sorted(folder.glob(f".*{TEMP_SUFFIX}")) if folder.is_dir() else []


def remove_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Delete ``leftovers(folder)``; only for a caller sure that no other writer is at work
    in ``folder`` (it holds the folder's lock). Returns what was removed."""
    removed = [path for path in leftovers(folder) if path.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


# --- folders ---------------------------------------------------------------------------------


@contextmanager
def staging_folder(parent: str | os.PathLike, prefix: str = "") -> Iterator[Path]:
    """A new private folder inside ``parent`` (the target's file system, so that what is built
    in it can be renamed into place), removed afterwards whatever happens. A killed process
    leaves it behind; it is hidden when ``prefix`` starts with a dot, and never read."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def move_folder_into_place(source: Path, target: Path) -> None:
    """Rename the finished folder ``source`` to ``target``, which must be absent or an empty
    folder (removed first: renaming onto a folder is not portable). Raises ``OSError`` when
    ``target`` holds anything — for example another process's finished copy."""
    _seal_folder(source)
    if target.is_dir():
        target.rmdir()
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    _fsync_folder(target.parent)


def replace_folder(staged: Path, target: Path, previous: Path) -> Path | None:
    """Rename ``staged`` to ``target``; an older ``target`` is first renamed to ``previous``,
    which is returned (None when there was none). Between the two renames no folder is at
    ``target``: a reader sees the old folder, none, or the new one, never a mix."""
    _seal_folder(staged)
    target.parent.mkdir(parents=True, exist_ok=True)
    moved = None
    if target.exists():
        os.replace(target, previous)
        moved = previous
    os.replace(staged, target)
    _fsync_folder(target.parent)
    return moved


def undo_replace_folder(target: Path, previous: Path | None, failed: Path) -> None:
    """Undo ``replace_folder``: ``target`` goes to ``failed`` and ``previous`` (if any) back."""
    os.replace(target, failed)
    if previous is not None:
        os.replace(previous, target)
    _fsync_folder(target.parent)


def move_file(source: Path, target: Path) -> None:
    """Rename the file ``source`` to ``target`` inside a staging folder (same file system);
    its bytes reach the disk when the folder is renamed into place."""
    os.replace(source, target)


# --- durability ------------------------------------------------------------------------------


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_folder(folder: Path) -> None:
    """Make the renames in ``folder`` durable: a rename lives in the folder's own entry."""
    if os.name == "nt":  # Windows cannot open a folder to fsync it; NTFS journals the rename
        return
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _seal_folder(folder: Path) -> None:
    """fsync every file and folder under ``folder`` (whoever wrote them), then make it
    readable: the folder is about to become visible under its real name."""
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync_file(Path(root) / name)
        _fsync_folder(Path(root))
    os.chmod(folder, FOLDER_MODE)
