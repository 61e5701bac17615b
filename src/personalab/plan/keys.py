"""Content hashes: of a step's inputs (its ledger key), of files and folders (the artifacts a
later step reads), and the library versions every key includes.

A step's key hashes everything its result depends on: its resolved config, the hashes of the
artifacts it reads (a dataset's files, a trained run, the baseline's predictions) and the
versions of the libraries that compute it. Two runs of a step with the same key must give the
same artifact, so a done step with an unchanged key is never run again — and a change anywhere
upstream changes every key downstream of it.
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

from personalab.errors import PersonalabError

# What computes the results; read from package metadata, so that no heavy import is needed.
LIBRARIES = ("torch", "transformers", "peft", "numpy", "scipy", "statsmodels", "scikit-learn",
             "sentence-transformers", "safetensors")
_CHUNK = 1 << 20


def step_key(inputs: dict[str, Any]) -> str:
    """The key of a step with these inputs (plain JSON data)."""
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def library_versions() -> dict[str, str | None]:
    from personalab import __version__

    versions: dict[str, str | None] = {"personalab": __version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def hash_files(root: Path, paths: Iterable[Path]) -> str:
    """One hash over the given files' contents and their paths relative to ``root``."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def hash_tree(root: Path, skip: tuple[str, ...] = ()) -> str:
    """A hash of every file under ``root`` except the top-level entries named in ``skip`` and
    hidden work files (temporary names, locks): what a folder holds, not how it got there."""
    root = Path(root)
    files = [
        path for path in root.rglob("*")
        if path.is_file() and path.relative_to(root).parts[0] not in skip
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    ]
    return hash_files(root, files)


def artifact_hash(output: Path, skip: tuple[str, ...] = ()) -> str:
    """The hash of a step's output: a file, or a folder (less its top-level ``skip`` entries)."""
    output = Path(output)
    return hash_tree(output, skip) if output.is_dir() else hash_files(output.parent, [output])


def dataset_hash(folder: str | Path, source: str = "<plan>") -> str:
    """The hash of a dataset folder's files: every step that reads the data depends on it."""
    from personalab.data.io import DATASET_FILES

    root = Path(folder)
    if not root.is_dir():
        raise PersonalabError(f"{source}: data: {root} is not a dataset folder (it does not exist); "
                              "create it first (the comment at the top of the plan file says how) or pass --data DIR")
    return hash_files(root, [root / name for name in DATASET_FILES if (root / name).exists()])
