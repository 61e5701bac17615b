"""Tiny models: deterministic builds, atomic caching, and loading through the normal path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from personalab.models import CausalLMBackend, ClassifierBackend, ModelSpec, build_backend
from personalab.models import tiny
from personalab.models.loading import resolve_model


def _folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("builder", [tiny.build_tiny_classifier, tiny.build_tiny_causal_lm])
def test_building_twice_gives_identical_files(builder, tmp_path):
    first = _folder_bytes(builder(tmp_path / "first", seed=0))
    second = _folder_bytes(builder(tmp_path / "second", seed=0))
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(first)
    assert first == second


def test_seed_changes_the_weights_not_the_tokenizer(tmp_path):
    seed0 = tiny.build_tiny_causal_lm(tmp_path / "s0", seed=0)
    seed1 = tiny.build_tiny_causal_lm(tmp_path / "s1", seed=1)
    weights0 = load_file(str(seed0 / "model.safetensors"))
    weights1 = load_file(str(seed1 / "model.safetensors"))
    name = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(weights0[name], weights1[name])
    assert (seed0 / "tokenizer.json").read_bytes() == (seed1 / "tokenizer.json").read_bytes()


def test_names_resolve_through_the_cache_and_load_like_any_model(
    tiny_classifier_path, personalab_cache
):
    resolved = resolve_model(ModelSpec(name="tiny-classifier"))
    assert resolved.path == tiny_classifier_path
    assert resolved.path.parent == personalab_cache / "tiny"
    assert resolved.kind == "classifier"
    assert resolve_model(ModelSpec(name="tiny-causal-lm")).kind == "causal_lm"


def test_build_backend_dispatches_on_the_resolved_kind(tiny_classifier_path, tiny_causal_lm_path):
    assert isinstance(build_backend(ModelSpec(name="tiny-causal-lm"), ["a"], {}), CausalLMBackend)
    classifier = build_backend(ModelSpec(name=str(tiny_classifier_path)), ["a", "b"], {})
    assert isinstance(classifier, ClassifierBackend)
    assert classifier.model.config.id2label == {0: "a", 1: "b"}


def test_resolve_tiny_builds_once_and_leaves_no_staging_folder(tmp_path, monkeypatch):
    path = tiny.resolve_tiny("tiny-classifier", cache_dir=tmp_path)
    assert path.name == f"tiny-classifier-seed0-v{tiny.TINY_VERSION}"

    def fail(*args, **kwargs):
        raise AssertionError("rebuilt an existing tiny model")

    monkeypatch.setitem(tiny.TINY_BUILDERS, "tiny-classifier", fail)
    assert tiny.resolve_tiny("tiny-classifier", cache_dir=tmp_path) == path
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_failed_build_leaves_nothing_behind(tmp_path, monkeypatch):
    def broken(out_dir, seed):
        (Path(out_dir) / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    monkeypatch.setitem(tiny.TINY_BUILDERS, "tiny-causal-lm", broken)
    with pytest.raises(RuntimeError):
        tiny.resolve_tiny("tiny-causal-lm", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_tiny_causal_lm_is_far_from_uniform(tiny_causal_lm_path):
    # Numeric tests of scores are only meaningful if log-probs differ clearly between tokens.
    backend = CausalLMBackend(ModelSpec(name=str(tiny_causal_lm_path)), [], {})
    token_ids = backend.tokenizer("the quick brown fox")["input_ids"]
    ids = torch.tensor([token_ids], device=backend.device)
    logprobs = torch.log_softmax(backend.model(input_ids=ids).logits, dim=-1)
    assert logprobs.std(dim=-1).min() > 1.0
