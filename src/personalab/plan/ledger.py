"""The ledger of a plan run: one SQLite row per step (``RUN_DIR/ledger.sqlite``).

A row says what a step is (``step`` id such as ``train:per_cluster``, its ``kind`` and the
strategy ``name``), the content hash ``key`` of its inputs, its ``status`` (running / done /
failed), when it started and finished, how long it took, its metrics and the library versions
(JSON), the artifact it produced (a path relative to the run directory, and its hash), and
``task``: where it ran when not in the driver (JSON: executor, task id, node, worker process,
when the task started and ended), empty for a step the driver ran itself.

Only the plan's driver writes, each change in its own short transaction, in WAL mode (readers
such as a report never block the writer). A row is marked running *before* the step touches
anything and done only *after* its artifact is in place, so a process killed at any moment
leaves either a done step whose artifact is complete or a step that is not done.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS steps (
    step          TEXT PRIMARY KEY,  -- kind:name, e.g. train:per_cluster
    kind          TEXT NOT NULL,     -- cluster | train | evaluate | compare
    name          TEXT NOT NULL,     -- the strategy (or clustering) the step belongs to
    key           TEXT NOT NULL,     -- content hash of the step's inputs
    status        TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    started       TEXT NOT NULL,     -- ISO 8601, UTC
    finished      TEXT,
    seconds       REAL,
    metrics       TEXT,              -- JSON
    versions      TEXT,              -- JSON: library versions the step ran with
    inputs        TEXT,              -- JSON: what the key hashes, for auditing
    artifact      TEXT,              -- path relative to the run directory
    artifact_hash TEXT,
    error         TEXT,
    attempts      INTEGER NOT NULL DEFAULT 1,
    task          TEXT               -- JSON: where the step ran when not in the driver (a Ray task)
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Row:
    step: str
    kind: str
    name: str
    key: str
    status: str
    started: str
    finished: str | None
    seconds: float | None
    metrics: dict[str, Any]
    versions: dict[str, Any]
    inputs: dict[str, Any]
    artifact: str | None
    artifact_hash: str | None
    error: str | None
    attempts: int
    task: dict[str, Any]


class Ledger:
    """The ledger file at ``path`` (created when missing)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # isolation_level=None: no implicit transactions; each write is an explicit one below.
        self.connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")  # a committed "done" survives a crash
        self.connection.executescript(SCHEMA)  # runs in its own transaction
        columns = {row[1] for row in self.connection.execute("PRAGMA table_info(steps)")}
        if "task" not in columns:  # a ledger written before steps ran as tasks
            self.connection.execute("ALTER TABLE steps ADD COLUMN task TEXT")
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self.connection.close()

    def get(self, step: str) -> Row | None:
        found = self.connection.execute(f"SELECT {_COLUMNS} FROM steps WHERE step = ?", (step,)).fetchone()
        return _row(found) if found else None

    def rows(self) -> list[Row]:
        return [_row(r) for r in self.connection.execute(f"SELECT {_COLUMNS} FROM steps ORDER BY started, step")]

    def start(self, step: str, kind: str, name: str, key: str, inputs: dict, versions: dict) -> None:
        """Mark ``step`` running with a new key: whatever it recorded before no longer counts."""
        with self._transaction() as db:
            db.execute(
                """INSERT INTO steps (step, kind, name, key, status, started, versions, inputs)
                   VALUES (?, ?, ?, ?, 'running', ?, ?, ?)
                   ON CONFLICT (step) DO UPDATE SET
                     kind = excluded.kind, name = excluded.name, key = excluded.key, status = 'running',
                     started = excluded.started, finished = NULL, seconds = NULL, metrics = NULL,
                     versions = excluded.versions, inputs = excluded.inputs, artifact = NULL,
                     artifact_hash = NULL, error = NULL, attempts = steps.attempts + 1, task = NULL""",
                (step, kind, name, key, _now(), _json(versions), _json(inputs)),
            )

    def finish(self, step: str, seconds: float, metrics: dict, artifact: str, artifact_hash: str,
               task: dict | None = None) -> None:
        with self._transaction() as db:
            db.execute(
                """UPDATE steps SET status = 'done', finished = ?, seconds = ?, metrics = ?, artifact = ?,
                   artifact_hash = ?, task = ? WHERE step = ?""",
                (_now(), seconds, _json(metrics), artifact, artifact_hash, _json(task) if task else None, step),
            )

    def fail(self, step: str, seconds: float, error: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE steps SET status = 'failed', finished = ?, seconds = ?, error = ? WHERE step = ?",
                       (_now(), seconds, error, step))

    def _transaction(self):
        return _Transaction(self.connection)


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on an error): one short write."""

    def __init__(self, connection: sqlite3.Connection):
        self.connection = connection

    def __enter__(self) -> sqlite3.Connection:
        self.connection.execute("BEGIN IMMEDIATE")
        return self.connection

    def __exit__(self, kind, error, traceback) -> None:
        self.connection.execute("ROLLBACK" if kind else "COMMIT")


_COLUMNS = ", ".join(Row.__dataclass_fields__)


def _row(values: tuple) -> Row:
    data = dict(zip(Row.__dataclass_fields__, values))
    for name in ("metrics", "versions", "inputs", "task"):
        data[name] = json.loads(data[name]) if data[name] else {}
    return Row(**data)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
