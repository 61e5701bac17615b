"""Offline, safe loading: local folders, the HF cache, pickles, remote code, kinds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest
import torch
from safetensors.torch import load_file, save_file

from personalab.data.schema import Example
from personalab.errors import PersonalabError
from personalab.models import ClassifierBackend, ModelSpec
from personalab.models import loading


@pytest.fixture
def classifier_copy(tiny_classifier_path, tmp_path) -> Path:
    """A private copy of the tiny classifier folder that a test may damage."""
    return Path(shutil.copytree(tiny_classifier_path, tmp_path / "model"))


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def test_minilm_resolves_to_the_embedded_folder():
    resolved = loading.resolve_model(ModelSpec(name="minilm"))
    assert (resolved.path / "model.safetensors").is_file()
    assert resolved.config.model_type == "bert"
    assert resolved.kind == "classifier"


def test_pickled_only_weights_are_refused_with_the_opt_in_named(classifier_copy):
    weights = load_file(str(classifier_copy / "model.safetensors"))
    (classifier_copy / "model.safetensors").unlink()
    torch.save(weights, classifier_copy / "pytorch_model.bin")
    with pytest.raises(PersonalabError, match="pickle") as error:
        loading.resolve_model(ModelSpec(name=str(classifier_copy)))
    assert "--allow-pickle" in str(error.value)
    assert "pytorch_model.bin" in str(error.value)


def test_pickled_weights_load_when_allowed(classifier_copy, tiny_classifier_path):
    weights = load_file(str(classifier_copy / "model.safetensors"))
    (classifier_copy / "model.safetensors").unlink()
    torch.save(weights, classifier_copy / "pytorch_model.bin")
    spec = ModelSpec(name=str(classifier_copy), allow_pickle=True)
    from_pickle = ClassifierBackend(spec, ["a", "b"], {}).model
    reference = ClassifierBackend(ModelSpec(name=str(tiny_classifier_path)), ["a", "b"], {}).model
    expected = dict(reference.named_parameters())
    for name, value in from_pickle.named_parameters():
        assert torch.equal(value, expected[name]), name


def test_pickles_beside_safetensors_are_never_opened(classifier_copy):
    (classifier_copy / "pytorch_model.bin").write_bytes(b"not a pickle: opening it would fail")
    backend = ClassifierBackend(ModelSpec(name=str(classifier_copy)), ["a", "b"], {})
    assert backend.model.config.num_labels == 2


def test_a_folder_without_weights_is_refused(classifier_copy):
    (classifier_copy / "model.safetensors").unlink()
    with pytest.raises(PersonalabError, match="no model weights"):
        loading.resolve_model(ModelSpec(name=str(classifier_copy)))


def test_weights_that_do_not_fit_the_config_are_refused(classifier_copy):
    weights = load_file(str(classifier_copy / "model.safetensors"))
    dropped = next(name for name in weights if "layer.1.attention.self.query" in name)
    del weights[dropped]
    save_file(weights, str(classifier_copy / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(PersonalabError, match="do not fit"):
        ClassifierBackend(ModelSpec(name=str(classifier_copy)), ["a", "b"], {})


def test_config_with_auto_map_needs_trust_remote_code(classifier_copy):
    _edit_config(classifier_copy, auto_map={"AutoModel": "modeling_evil.EvilModel"})
    with pytest.raises(PersonalabError, match="--trust-remote-code"):
        loading.resolve_model(ModelSpec(name=str(classifier_copy)))


def test_unknown_model_type_names_trust_remote_code(classifier_copy):
    _edit_config(classifier_copy, model_type="definitely-not-a-transformers-model")
    with pytest.raises(PersonalabError, match="--trust-remote-code"):
        loading.resolve_model(ModelSpec(name=str(classifier_copy)))


def test_unknown_hub_id_is_a_clear_error_not_a_download(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(PersonalabError, match="not found locally") as error:
        loading.resolve_model(ModelSpec(name="no-such-org/no-such-model"))
    assert "download" in str(error.value) and "pass that path" in str(error.value)


def test_hub_id_resolves_from_the_local_cache_with_its_revision(
    tiny_classifier_path, tmp_path, monkeypatch
):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--some-org--tiny"
    shutil.copytree(tiny_classifier_path, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    resolved = loading.resolve_model(ModelSpec(name="some-org/tiny"))
    assert resolved.path == repo / "snapshots" / commit
    assert resolved.revision == commit


def test_kind_is_inferred_from_architectures_unless_given(
    tiny_causal_lm_path, tiny_classifier_path
):
    assert loading.resolve_model(ModelSpec(name=str(tiny_causal_lm_path))).kind == "causal_lm"
    assert loading.resolve_model(ModelSpec(name=str(tiny_classifier_path))).kind == "classifier"
    forced = ModelSpec(name=str(tiny_causal_lm_path), kind="classifier")
    assert loading.resolve_model(forced).kind == "classifier"


def test_device_and_dtype(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert loading.resolve_device(ModelSpec(device="auto")) == torch.device("cpu")
    assert loading.resolve_dtype(ModelSpec(dtype="bfloat16")) is torch.bfloat16
    with pytest.raises(PersonalabError, match="dtype"):
        loading.resolve_dtype(ModelSpec(dtype="int8"))
    with pytest.raises(PersonalabError, match="device"):
        loading.resolve_device(ModelSpec(device="gpu please"))


def test_model_is_loaded_in_the_requested_dtype_with_a_float32_head(tiny_classifier_path):
    spec = ModelSpec(name=str(tiny_classifier_path), dtype="bfloat16")
    backend = ClassifierBackend(spec, ["a", "b"], {"p": "a reader"})
    head = set(backend.trainable_base_parameters())
    dtypes = {name: p.dtype for name, p in backend.model.named_parameters()}
    assert {dtypes[n] for n in dtypes if n not in head} == {torch.bfloat16}
    assert {dtypes[n] for n in head} == {torch.float32}  # the head trains with the first adapter
    logits = backend.scores(backend.model, [Example("p", "hello there", "a", "train")])
    assert torch.isfinite(logits).all()  # bfloat16 encoder output goes into the float32 head


def test_bad_execution_settings_are_refused_clearly(monkeypatch):
    with pytest.raises(PersonalabError, match="dtype 'float64'"):
        ModelSpec(dtype="float64")
    for key in ("train_batch_size", "score_batch_size"):
        with pytest.raises(PersonalabError, match=key):
            ModelSpec(**{key: 0})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PersonalabError, match="no CUDA device"):
        loading.resolve_device(ModelSpec(device="cuda"))


def test_batch_sizes_default_per_device_unless_given():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert loading.batch_sizes(ModelSpec(), cpu) == loading.DEFAULT_BATCH_SIZES["cpu"]
    assert loading.batch_sizes(ModelSpec(), cuda).score > loading.batch_sizes(ModelSpec(), cpu).score
    given = loading.batch_sizes(ModelSpec(train_batch_size=8, score_batch_size=32), cuda)
    assert (given.train, given.score) == (8, 32)


def test_execution_settings_stay_out_of_the_model_identity():
    base = ModelSpec(name="m").identity()
    assert ModelSpec(name="m", device="cuda", gradient_checkpointing=True, train_batch_size=8,
                     score_batch_size=8).identity() == base
    assert ModelSpec(name="m", dtype="bfloat16").identity() != base  # a 16-bit base computes otherwise


def test_tokenizer_without_pad_token_pads_with_eos(tiny_causal_lm_path):
    spec = ModelSpec(name=str(tiny_causal_lm_path))
    tokenizer = loading.load_tokenizer(loading.resolve_model(spec), spec)
    assert tokenizer.pad_token == "<|endoftext|>"  # its own pad token is kept
    tokenizer.pad_token = None
    assert loading.ensure_pad_token(tokenizer).pad_token == "<|im_end|>"
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
