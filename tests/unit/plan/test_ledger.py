"""The ledger: one row per step, its status moving running -> done / failed, and a re-run
replacing the row (a new key) while counting attempts."""

from __future__ import annotations

import sqlite3

from personalab.plan.ledger import Ledger


def test_a_step_goes_running_then_done(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.start("train:a", "train", "a", "k1", {"config": 1}, {"torch": "2"})
    assert ledger.get("train:a").status == "running" and ledger.get("train:a").finished is None
    ledger.finish("train:a", 1.5, {"accuracy": 0.7}, "runs/a/personalizer.json", "h1")
    row = ledger.get("train:a")
    assert (row.status, row.seconds, row.metrics, row.artifact_hash) == ("done", 1.5, {"accuracy": 0.7}, "h1")
    assert row.inputs == {"config": 1} and row.versions == {"torch": "2"} and row.attempts == 1
    ledger.close()


def test_a_rerun_replaces_the_row_and_counts_attempts(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.start("train:a", "train", "a", "k1", {}, {})
    ledger.fail("train:a", 0.2, "RuntimeError: boom")
    assert ledger.get("train:a").status == "failed" and "boom" in ledger.get("train:a").error
    ledger.start("train:a", "train", "a", "k2", {}, {})
    row = ledger.get("train:a")
    assert (row.key, row.status, row.error, row.attempts) == ("k2", "running", None, 2)
    assert [r.step for r in ledger.rows()] == ["train:a"] and ledger.get("nothing") is None
    ledger.close()


def test_another_connection_sees_committed_rows_in_wal_mode(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.start("evaluate:a", "evaluate", "a", "k", {}, {})
    with sqlite3.connect(tmp_path / "ledger.sqlite") as reader:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert reader.execute("SELECT status FROM steps").fetchall() == [("running",)]
    ledger.close()
    reopened = Ledger(tmp_path / "ledger.sqlite")
    assert reopened.get("evaluate:a").key == "k"
    reopened.close()
