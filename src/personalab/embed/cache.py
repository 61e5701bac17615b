"""The on-disk cache of text embeddings: one SQLite file of float32 vectors keyed by sha256.

A key is ``sha256(model fingerprint, text)``, so a changed model never reads another model's
vectors. SQLite rather than one ``.npy`` file per text: thousands of tiny files are slow to
list and read, and a transaction is atomic by SQLite's own journal — a process killed in the
middle of a write leaves the previous state, never half a row. Vectors are raw float32 bytes
with their length checked on read (no pickle anywhere). A cache that cannot be read or written
(a broken file, a read-only disk) is only a warning: the vectors are then recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

# Bump when what is stored changes meaning (e.g. another normalisation): old rows are then
# simply never matched again.
CACHE_VERSION = 1
# SQLite limits the number of ``?`` in one statement (999 in older builds).
_CHUNK = 500


def cache_root() -> Path:
    """``$PERSONALAB_CACHE`` when set, else ``~/.cache/personalab`` (as ``models.tiny`` does)."""
    root = os.environ.get("PERSONALAB_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "personalab"


def default_cache_path() -> Path:
    return cache_root() / "embeddings" / "embeddings.sqlite"


def cache_key(model_fingerprint: str, text: str) -> str:
    # A NUL cannot occur in the fingerprint (hex), so (model, text) pairs never collide.
    payload = f"v{CACHE_VERSION}\0{model_fingerprint}\0{text}".encode("utf-8")
    return hashlib.sha256(payload).hexdigest()


class EmbeddingCache:
    """Get and put float32 vectors by key; every failure degrades to 'not cached'."""

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_cache_path()

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, np.ndarray] = {}
        if not keys or not self.path.exists():
            return found
        try:
            with self._connect() as conn:
                for start in range(0, len(keys), _CHUNK):
                    chunk = keys[start:start + _CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows = conn.execute(
                        f"SELECT key, dim, vector FROM vectors WHERE key IN ({marks})", chunk
                    )
                    found.update(_decoded(rows))
        except sqlite3.Error as error:
            warnings.warn(f"embedding cache {self.path} unreadable ({error}); recomputing")
        return found

    def put_many(self, items: dict[str, np.ndarray]) -> None:
        if not items:
            return
        rows = [(key, int(v.shape[0]), _encoded(v)) for key, v in items.items()]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn, conn:  # the inner ``with conn`` is one transaction
                conn.executemany(
                    "INSERT OR REPLACE INTO vectors (key, dim, vector) VALUES (?, ?, ?)", rows
                )
        except (sqlite3.Error, OSError) as error:
            warnings.warn(f"embedding cache {self.path} not writable ({error}); not caching")

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A long timeout: another process may be writing its batch (SQLite serialises writers).
        conn = sqlite3.connect(self.path, timeout=60)
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS vectors "
                "(key TEXT PRIMARY KEY, dim INTEGER NOT NULL, vector BLOB NOT NULL)"
            )
            yield conn
        finally:
            conn.close()


def _encoded(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def _decoded(rows: Iterable[tuple[str, int, bytes]]) -> Iterator[tuple[str, np.ndarray]]:
    for key, dim, blob in rows:
        if len(blob) == 4 * dim:  # anything else is damage: skip it, it will be recomputed
            yield key, np.frombuffer(blob, dtype="<f4").astype(np.float32)
