"""The vLLM compatibility rules on small hand-made PEFT folders (no model needed): adapters
that vLLM loads pass, and each rule fails on the adapter that breaks it, with a clear line."""

from __future__ import annotations

import json

import pytest
import torch

from personalab.engine import LoraWeights, write_peft_adapter
from personalab.errors import PersonalabError
from personalab.export.compat import (
    NOT_SERVABLE,
    ServingBase,
    base_of_adapter,
    check_adapter,
    check_adapters,
    read_facts,
    vllm_max_lora_rank,
)

QWEN = ServingBase("causal_lm", "qwen2")
HIDDEN = 16


def lora(rank: int, scale: float = 2.0, out: int = HIDDEN) -> LoraWeights:
    generator = torch.Generator().manual_seed(rank)
    return LoraWeights(A=torch.randn(rank, HIDDEN, generator=generator), B=torch.randn(out, rank, generator=generator),
                       scale=scale)


def adapter(tmp_path, name="a", rank=8, modules=("q_proj", "v_proj"), **config_changes):
    weights = {f"model.layers.0.self_attn.{m}": lora(rank) for m in modules}
    folder = write_peft_adapter(tmp_path / name, weights, "some/base")
    if config_changes:
        path = folder / "adapter_config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **config_changes}))
    return folder


def rules(problems) -> list[str]:
    return [p.rule for p in problems if p.severity == "error"]


def test_a_rank_8_q_v_adapter_of_a_qwen2_model_passes(tmp_path):
    assert check_adapter(adapter(tmp_path), base=QWEN) == []


def test_rank_above_512_fails_with_the_rank_in_the_message(tmp_path):
    problems = check_adapter(adapter(tmp_path, "persona-x", rank=1040), base=QWEN)
    assert rules(problems) == ["max_lora_rank"]
    assert str(problems[0]).startswith("persona-x: rank 1040 exceeds vLLM's maximum 512")


def test_rank_512_is_the_largest_that_passes(tmp_path):
    assert check_adapter(adapter(tmp_path, rank=512), base=QWEN) == []


@pytest.mark.parametrize("change, rule", [
    ({"use_dora": True}, "use_dora"),
    ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
    ({"bias": "lora_only"}, "bias"),
    ({"peft_type": "IA3"}, "peft_type"),
])
def test_each_unsupported_option_fails_its_rule(tmp_path, change, rule):
    assert rules(check_adapter(adapter(tmp_path, **change), base=QWEN)) == [rule]


def test_modules_vllm_has_no_lora_for_fail(tmp_path):
    problems = check_adapter(adapter(tmp_path, modules=("q_proj", "c_attn")), base=QWEN)
    assert rules(problems) == ["target_modules"] and "c_attn" in problems[0].message


def test_all_llama_like_projections_pass(tmp_path):
    modules = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    assert check_adapter(adapter(tmp_path, modules=modules), base=QWEN) == []


def test_a_classifier_base_is_reported_not_servable_rather_than_raising(tmp_path):
    problems = check_adapter(adapter(tmp_path), base=ServingBase("classifier", "bert"))
    assert rules(problems) == ["architecture"] and NOT_SERVABLE in problems[0].message


def test_an_unknown_architecture_is_a_warning_not_an_error(tmp_path):
    problems = check_adapter(adapter(tmp_path), base=ServingBase("causal_lm", "mamba"))
    assert [p.severity for p in problems] == ["warning"] and "mamba" in problems[0].message


def test_per_module_scales_vllm_would_not_apply_fail(tmp_path):
    weights = {"model.layers.0.self_attn.q_proj": lora(8, scale=2.0), "model.layers.0.self_attn.v_proj": lora(8, scale=0.5)}
    folder = write_peft_adapter(tmp_path / "scaled", weights, "some/base")
    assert json.loads((folder / "adapter_config.json").read_text())["alpha_pattern"]  # the case under test
    problems = check_adapter(folder, base=QWEN)
    assert rules(problems) == ["scale"]


def test_per_module_ranks_with_one_scale_pass(tmp_path):
    weights = {"model.layers.0.self_attn.q_proj": lora(8, scale=1.0), "model.layers.0.self_attn.v_proj": lora(4, scale=1.0)}
    folder = write_peft_adapter(tmp_path / "ranks", weights, "some/base")
    assert check_adapter(folder, base=QWEN) == []


def test_a_folder_without_weights_is_reported(tmp_path):
    folder = adapter(tmp_path)
    (folder / "adapter_model.safetensors").unlink()
    assert rules(check_adapter(folder, base=QWEN)) == ["format"]


@pytest.mark.parametrize("rank, expected", [(1, 1), (8, 8), (9, 16), (300, 320), (321, 512), (512, 512), (513, None)])
def test_max_lora_rank_is_the_smallest_allowed_value_that_holds_the_rank(rank, expected):
    assert vllm_max_lora_rank(rank) == expected


def test_a_set_of_adapters_reports_the_flag_to_pass_and_the_rank_spread(tmp_path):
    folders = {"small": adapter(tmp_path, "small", rank=8), "large": adapter(tmp_path, "large", rank=24)}
    report = check_adapters(folders, base=QWEN)
    assert report.servable and report.max_rank == 24 and report.max_lora_rank == 32
    assert [p.rule for p in report.problems] == ["rank_uniformity"]
    assert "--max-lora-rank 32" in "\n".join(report.lines())
    assert report.to_json()["max_lora_rank"] == 32


def test_a_set_with_a_failing_adapter_names_it(tmp_path):
    folders = {"ok": adapter(tmp_path, "ok"), "persona-x": adapter(tmp_path, "x", rank=1040)}
    report = check_adapters(folders, base=QWEN)
    assert not report.servable and report.max_lora_rank is None
    assert any(line.endswith("persona-x: rank 1040 exceeds vLLM's maximum 512 (--max-lora-rank takes one of "
                             "[1, 8, 16, 32, 64, 128, 256, 320, 512]); merge it at a lower rank (SVD) or serve with PEFT")
               for line in report.lines())


def test_the_base_is_read_from_a_local_model_folder(tmp_path):
    base = tmp_path / "model"
    base.mkdir()
    (base / "config.json").write_text(json.dumps({"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"]}))
    folder = write_peft_adapter(tmp_path / "a", {"model.layers.0.self_attn.q_proj": lora(8)}, str(base))
    facts, _ = read_facts(folder, "a")
    assert base_of_adapter(facts) == QWEN
    assert check_adapter(folder) == []


def test_an_encoder_is_recognised_by_its_module_names(tmp_path):
    folder = write_peft_adapter(tmp_path / "a", {"bert.encoder.layer.0.attention.self.query": lora(8)}, "nowhere")
    facts, _ = read_facts(folder, "a")
    assert base_of_adapter(facts).kind == "classifier"


def test_an_unknown_server_is_a_user_error(tmp_path):
    with pytest.raises(PersonalabError, match="unknown server"):
        check_adapter(adapter(tmp_path), server="tgi")
