"""PEFT adapter folders <-> per-module LoRA weights: exact reads, exact round trips, refusals."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from torch import nn

from personalab.engine import AdapterFormatError, LoraWeights, read_peft_adapter, write_peft_adapter
from personalab.engine import peft_io
from personalab.engine.peft_io import exact_alpha


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.query = nn.Linear(8, 8)
        self.value = nn.Linear(8, 6)
        self.out = nn.Linear(6, 8)

    def forward(self, x):
        return x + self.out(torch.tanh(self.value(x) + self.query(x)[..., :6]))


class Toy(nn.Module):
    """Nested names (``layers.0.query``), so that prefix handling is really exercised."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([Block(), Block()])

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


@pytest.fixture
def base() -> Toy:
    torch.manual_seed(0)
    return Toy()


def peft_model(base: nn.Module, **config) -> PeftModel:
    settings = {"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]}
    # init_lora_weights=False draws B non-zero: a default LoRA is the identity and hides bugs.
    torch.manual_seed(1)
    config = LoraConfig(init_lora_weights=False, **{**settings, **config})
    return get_peft_model(copy.deepcopy(base), config)


def saved(model: PeftModel, folder) -> str:
    model.save_pretrained(str(folder))
    return str(folder)


def peft_layers(model: PeftModel) -> dict:
    prefix = "base_model.model."
    return {
        name.removeprefix(prefix): module
        for name, module in model.named_modules()
        if hasattr(module, "lora_A") and "default" in module.lora_A
    }


def test_read_gives_base_model_paths_weights_and_scales(base, tmp_path):
    model = peft_model(base, rank_pattern={"value": 2}, alpha_pattern={"layers.1.query": 3})
    weights = read_peft_adapter(saved(model, tmp_path / "a"))
    layers = peft_layers(model)
    assert sorted(weights) == sorted(layers) == [
        "layers.0.query", "layers.0.value", "layers.1.query", "layers.1.value"
    ]
    for path, layer in layers.items():
        assert torch.equal(weights[path].A, layer.lora_A["default"].weight)
        assert torch.equal(weights[path].B, layer.lora_B["default"].weight)
        assert weights[path].scale == layer.scaling["default"]
    assert weights["layers.0.value"].rank == 2 and weights["layers.0.value"].scale == 4.0
    assert weights["layers.1.query"].scale == 3 / 4


def test_rslora_scale_is_alpha_over_sqrt_r(base, tmp_path):
    model = peft_model(base, use_rslora=True, r=9, lora_alpha=6)
    weights = read_peft_adapter(saved(model, tmp_path))
    assert all(w.scale == 6 / math.sqrt(9) for w in weights.values())


def test_write_then_peft_load_gives_identical_outputs(base, tmp_path):
    model = peft_model(base, r=3, lora_alpha=7, rank_pattern={"layers.0.value": 5},
                       alpha_pattern={"value": 2.5}).eval()
    weights = read_peft_adapter(saved(model, tmp_path / "original"))
    written = write_peft_adapter(tmp_path / "copy", weights, "toy", ["query", "value"])
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), str(written)).eval()
    x = torch.randn(5, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        assert not torch.allclose(loaded(x), base(x))  # the adapter does act
    again = read_peft_adapter(written)
    assert sorted(again) == sorted(weights)
    for path, lora in weights.items():
        assert torch.equal(again[path].A, lora.A) and torch.equal(again[path].B, lora.B)
        assert again[path].scale == lora.scale


def test_write_defaults_to_exact_module_names_and_rslora_scales_survive(base, tmp_path):
    model = peft_model(base, use_rslora=True, r=3, lora_alpha=0.1)
    weights = read_peft_adapter(saved(model, tmp_path / "a"))
    written = write_peft_adapter(tmp_path / "b", weights, None)
    config = json.loads((written / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == sorted(weights)
    assert config["use_rslora"]  # 0.1 / sqrt(3) is no x / 3 in float64
    assert all(w.scale == weights[p].scale for p, w in read_peft_adapter(written).items())
    loaded = PeftModel.from_pretrained(copy.deepcopy(base), str(written))
    assert {p: l.scaling["default"] for p, l in peft_layers(loaded).items()} == {
        p: w.scale for p, w in weights.items()
    }


def test_write_replaces_an_older_adapter_and_leaves_no_temporary_folder(base, tmp_path):
    weights = read_peft_adapter(saved(peft_model(base), tmp_path / "src"))
    target = tmp_path / "out" / "adapter"
    write_peft_adapter(target, weights, "toy")
    doubled = {p: LoraWeights(w.A, 2 * w.B, w.scale) for p, w in weights.items()}
    write_peft_adapter(target, doubled, "toy")
    assert torch.equal(read_peft_adapter(target)["layers.0.query"].B, doubled["layers.0.query"].B)
    assert [p.name for p in target.parent.iterdir()] == ["adapter"]


def test_a_failed_write_leaves_no_visible_adapter(base, tmp_path, monkeypatch):
    weights = read_peft_adapter(saved(peft_model(base), tmp_path / "src"))

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(peft_io, "save_file", broken_save)
    with pytest.raises(OSError):
        write_peft_adapter(tmp_path / "out" / "adapter", weights, "toy")
    assert list((tmp_path / "out").iterdir()) == []


def test_write_refuses_targets_that_miss_a_module(base, tmp_path):
    weights = read_peft_adapter(saved(peft_model(base), tmp_path / "src"))
    with pytest.raises(ValueError, match="layers.0.value"):
        write_peft_adapter(tmp_path / "out", weights, "toy", ["query"])


@pytest.mark.parametrize("rank", [1, 3, 7, 49, 96, 100])
@pytest.mark.parametrize("alpha", [1, 2.5, 8, 16, 0.1, 1 / 3])
def test_exact_alpha_reproduces_the_scale_bit_for_bit(rank, alpha):
    assert exact_alpha(alpha / rank, rank) / rank == alpha / rank
    root = math.sqrt(rank)
    assert exact_alpha(alpha / root, root) / root == alpha / root


# --- refusals --------------------------------------------------------------------------------


def test_refuses_a_folder_with_only_pickled_weights(base, tmp_path):
    folder = saved(peft_model(base), tmp_path / "a")
    (tmp_path / "a" / "adapter_model.safetensors").unlink()
    torch.save({"x": torch.zeros(1)}, tmp_path / "a" / "adapter_model.bin")
    with pytest.raises(AdapterFormatError, match="adapter_model.bin.*pickled"):
        read_peft_adapter(folder)


def test_refuses_a_folder_without_config(tmp_path):
    save_file({"x": torch.zeros(1)}, str(tmp_path / "adapter_model.safetensors"))
    with pytest.raises(AdapterFormatError, match="adapter_config.json"):
        read_peft_adapter(tmp_path)


def test_refuses_dora(base, tmp_path):
    folder = saved(peft_model(base, use_dora=True), tmp_path / "a")
    with pytest.raises(AdapterFormatError, match="DoRA"):
        read_peft_adapter(folder)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"bias": "all"}, "bias"),
        ({"modules_to_save": ["classifier"]}, "modules_to_save"),
        ({"lora_bias": True}, "lora_bias"),
        ({"peft_type": "IA3"}, "peft_type"),
        ({"init_lora_weights": "pissa"}, "modified base"),
        ({"alora_invocation_tokens": [1, 2]}, "alora_invocation_tokens"),
    ],
)
def test_refuses_unsupported_options(base, tmp_path, change, message):
    folder = tmp_path / "a"
    saved(peft_model(base), folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(AdapterFormatError, match=message):
        read_peft_adapter(folder)


def test_refuses_tensors_that_are_not_plain_lora(base, tmp_path):
    folder = tmp_path / "a"
    saved(peft_model(base), folder)
    tensors = {"base_model.model.layers.0.query.lora_A.weight": torch.zeros(4, 8),
               "base_model.model.layers.0.query.lora_magnitude_vector": torch.zeros(8)}
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    with pytest.raises(AdapterFormatError, match="lora_magnitude_vector"):
        read_peft_adapter(folder)


def test_refuses_weights_whose_rank_disagrees_with_the_config(base, tmp_path):
    folder = tmp_path / "a"
    saved(peft_model(base), folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "r": 2}))
    with pytest.raises(AdapterFormatError, match="rank 2"):
        read_peft_adapter(folder)
