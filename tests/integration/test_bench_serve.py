"""Smoke test of bench/serve.py in --quick mode: real servers on 127.0.0.1 with the tiny
classifier. Timings are never asserted (BENCHMARK.md: timings go in benchmarks); that every
request is answered, the same in both arms, and batched, is."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_serve_quick(tmp_path):
    pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")
    out = tmp_path / "serve.json"
    result = subprocess.run([sys.executable, "bench/serve.py", "--quick", "--rounds", "1", "--work", str(tmp_path),
                             "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["errors"] == 0 and results["mismatches"] == 0
    for key in ("throughput_ratio", "p99_ms", "p50_ms", "requests_per_second_concurrent"):
        assert math.isfinite(results[key]) and results[key] > 0, key
    assert results["batches"]["batches"] < results["batches"]["requests"]  # the concurrent arm batched
    assert "throughput ratio" in result.stdout
