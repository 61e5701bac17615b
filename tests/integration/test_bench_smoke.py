"""Smoke test of the benchmarks in bench/: each runs in --quick mode and writes the JSON its
protocol asks for. Timings are never asserted here (BENCHMARK.md: timings go in benchmarks)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODELS = ("tiny_causal_lm", "classifier")
FLEET_KEYS = ("a_over_b", "b_over_c", "seconds_a", "seconds_b", "seconds_c", "val_loss_a", "val_loss_b", "val_loss_c")
EVAL_KEYS = ("engine_over_peft", "engine_over_single", "rows_per_second_engine", "rows_per_second_peft",
             "rows_per_second_single")
GENERATE_KEYS = ("engine_over_generate", "rows_per_second_generate")


def run_quick(script: str, out: Path) -> dict:
    # The conftest's environment (offline hub, a session-private PERSONALAB_CACHE) is inherited.
    result = subprocess.run([sys.executable, f"bench/{script}", "--quick", "--device", "cpu", "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "tiny_causal_lm" in result.stdout  # the table
    return json.loads(out.read_text(encoding="utf-8"))


def assert_finite_positive(results: dict, model: str, keys) -> None:
    for key in keys:
        value = results[model][key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (model, key, value)


def assert_records(results: dict) -> None:
    assert results["config"]["quick"] is True
    environment = results["environment"]
    for key in ("torch", "transformers", "peft", "cpu_count", "device"):
        assert environment[key], key


@pytest.mark.slow
def test_fleet_training_quick(tmp_path):
    results = run_quick("fleet_training.py", tmp_path / "fleet.json")
    for model in MODELS:
        assert_finite_positive(results, model, FLEET_KEYS)
    assert_records(results)


@pytest.mark.slow
def test_mixed_eval_quick(tmp_path):
    results = run_quick("mixed_eval.py", tmp_path / "mixed.json")
    for model in MODELS:
        assert_finite_positive(results, model, EVAL_KEYS)
        # Not a timing: the engine and PEFT's mixed batch must score alike.
        assert results[model]["engine_peft_agreement"] >= 0.99
    assert_finite_positive(results, "tiny_causal_lm", GENERATE_KEYS)
    assert "engine_over_generate" not in results["classifier"]
    assert_records(results)


@pytest.mark.slow
def test_persona_identity_quick(tmp_path):
    results = run_quick("persona_identity.py", tmp_path / "identity.json")
    for model in MODELS:
        assert_finite_positive(results, model, ("seconds_unified", "seconds_persona_token", "token_over_unified",
                                                "seconds_persona_token_learned", "learned_over_unified"))
        for strategy in ("persona_token", "persona_token_learned", "persona_bias"):
            low, high = results[model][f"ci_{strategy}"]
            assert low <= results[model][f"difference_{strategy}"] <= high
            assert 0 < results[model][f"p_{strategy}"] <= 1
    assert_records(results)


@pytest.mark.slow
def test_generation_eval_quick(tmp_path):
    results = run_quick("generation_eval.py", tmp_path / "generation.json")
    assert_finite_positive(results, "tiny_causal_lm", ("speedup", "rows_per_second_engine", "rows_per_second_loop"))
    # Not a timing: batched generation through per-row routes must answer exactly as the loop.
    assert results["identical"] is True and results["tiny_causal_lm"]["rows_differing"] == 0
    assert results["tiny_causal_lm"]["distinct_answers"] > 1  # the adapters and prompts differ: not vacuous
    assert_records(results)


@pytest.mark.slow
def test_scale_quick(tmp_path):
    out = tmp_path / "scale.json"
    result = subprocess.run([sys.executable, "bench/scale.py", "--quick", "--sizes", "12", "24", "--shard", "8",
                             "--device", "cpu", "--threads", "1", "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text(encoding="utf-8"))["tiny_classifier"]
    assert [size["personas"] for size in results["sizes"]] == [12, 24]
    for size in results["sizes"]:
        assert size["peak_rss_mb"] >= size["rss_before_training_mb"] > 0
        # every persona's adapter reached the bank: the larger fleet wrote about twice the bytes
        assert size["bank_bytes"] > 0
    assert 1.5 < results["sizes"][1]["bank_bytes"] / results["sizes"][0]["bank_bytes"] < 2.5
    assert results["peak_rss_ratio"] > 0 and results["seconds_per_persona_ratio"] > 0
    assert all(size["cpu_seconds_per_persona"] > 0 for size in results["sizes"])
    assert results["cpu_seconds_per_persona_ratio"] > 0


@pytest.mark.slow
def test_real_size_smoke_run(tmp_path):
    # The Qwen2.5-0.5B architecture cut to one layer (its 151936-token embedding stays): the
    # script runs end to end on a CPU and reports what BENCHMARK.md section 8 asks for.
    out = tmp_path / "real_size.json"
    flags = ["--layers", "1", "--personas", "2", "--rows", "4", "--val-rows", "2", "--epochs", "1", "--device", "cpu",
             "--threads", "1", "--out", str(out)]
    result = subprocess.run([sys.executable, "bench/real_size.py", *flags],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "A/B =" in result.stdout and "B/C =" in result.stdout
    results = json.loads(out.read_text(encoding="utf-8"))
    for key in ("a_over_b", "b_over_c", "personas_per_hour_b", *(f"{m}_{arm}" for arm in "abc" for m in
                ("seconds", "tokens_per_second", "peak_memory_gib"))):
        assert math.isfinite(results[key]) and results[key] > 0, key
    assert results["config"]["architecture"]["hidden_size"] == 896 and results["config"]["dtype"] == "float32"
