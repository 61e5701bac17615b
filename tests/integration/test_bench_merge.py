"""Smoke test of bench/merge.py (BENCHMARK.md section 4): it runs in --quick mode, writes the
JSON its protocol asks for, and its exact merge is exact. Timings are never asserted here."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_merge_bench_quick(tmp_path):
    out = tmp_path / "merge.json"
    # The conftest's environment (offline hub, a session-private PERSONALAB_CACHE) is inherited.
    result = subprocess.run([sys.executable, "bench/merge.py", "--quick", "--device", "cpu", "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "exact merge" in result.stdout and "svd merge r=8" in result.stdout  # the table
    results = json.loads(out.read_text(encoding="utf-8"))
    for key in ("seconds", "max_rel_error_exact", "max_rel_error_svd", "n_adapters", "rank", "layers", "details"):
        assert key in results, key
    assert results["n_adapters"] == 16 and results["rank"] == 8 and results["layers"] == 12  # MiniLM q, v
    assert results["merged_rank"] == 16 * 8
    assert math.isfinite(results["seconds"]) and results["seconds"] > 0
    assert results["max_rel_error_exact"] < 1e-5
    assert results["details"]["materialize_max_rel_error"] < 1e-5
    assert results["details"]["bank_round_trip_bit_identical"] is True
    # Rank 8 of a rank-128 sum loses something; the error it reports is the one it has.
    assert 0 < results["max_rel_error_svd"] < 1
    for svd in results["details"]["svd"].values():
        assert svd["max_reported_vs_measured_diff"] < 1e-5
    assert results["config"]["quick"] is True and results["environment"]["torch"]
