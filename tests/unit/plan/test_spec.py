"""Plan files: every shipped plan loads, and a wrong one fails with the file, line, key path and
what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from personalab.errors import PersonalabError
from personalab.plan import load_plan, parse_plan

REPO = Path(__file__).resolve().parents[3]
PLAN = """\
data: data/synth
baseline:
  strategy: unified
candidates:
  - name: clusters
    strategy: per_cluster
    options: {k: 4}
  - strategy: ensemble
    options: {weight: 0.6}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_plan_loads(path):
    spec = load_plan(path)
    assert spec.baseline.strategy == "unified" and spec.candidates
    for strategy in spec.strategies():
        spec.run_config(strategy)  # the settings resolve
    assert spec.select_on == "val" and spec.acceptance.harm_alpha == 0.05  # picked on val, harm checked


def test_the_playbook_follows_the_tree_in_cost_order():
    spec = load_plan(REPO / "configs" / "playbook.yaml")
    assert [c.strategy for c in spec.candidates] == [
        "persona_bias", "per_cluster", "persona_token", "weighted_merge", "from_unified", "ensemble", "ensemble",
        "per_cluster", "per_cluster", "moe"]
    assert spec.candidates[0].options == {"over": "unified"}
    assert spec.candidates[5].options == {"weight": 0.6} and "weight" not in spec.candidates[6].options
    assert spec.candidates[7].preset == "constrained"
    assert spec.run_config(spec.candidates[7]).settings.r == 4
    assert spec.run_config(spec.candidates[8]).augment and not spec.run_config(spec.candidates[1]).augment


def test_a_good_plan_reads_with_defaults(tmp_path):
    spec = load_plan(write(tmp_path, PLAN))
    assert [c.name for c in spec.candidates] == ["clusters", "ensemble"]
    assert spec.acceptance.alpha == 0.05 and spec.acceptance.harm_alpha == 0.05
    assert not spec.acceptance.require_every_repeat and spec.repeats == 1
    assert spec.model.name == "minilm" and spec.stop == "first_win" and spec.select_on == "val"
    config = spec.run_config(spec.candidates[0])
    assert config.strategy_options == {"k": 4} and Path(config.data).is_absolute()


def test_strategy_with_a_preset_suffix():
    spec = parse_plan({"data": "d", "baseline": {"strategy": "unified"},
                       "candidates": [{"strategy": "per_cluster:constrained"}]})
    assert spec.candidates[0].name == "per_cluster-constrained" and spec.candidates[0].preset == "constrained"


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(PersonalabError) as raised:
        load_plan(write(tmp_path, text))
    return str(raised.value)


def test_unknown_strategy_has_a_close_match_hint_with_file_line_and_path(tmp_path):
    message = error(tmp_path, PLAN.replace("strategy: per_cluster", "strategy: per_clustr"))
    assert f"{tmp_path / 'plan.yaml'}:6: candidates[0].strategy: unknown strategy 'per_clustr'" in message
    assert "did you mean per_cluster?" in message


def test_unknown_key_is_named_with_a_hint(tmp_path):
    message = error(tmp_path, PLAN + "acceptance:\n  alhpa: 0.01\n")
    assert "plan.yaml:11: acceptance.alhpa: unknown key; did you mean 'alpha'?" in message


def test_wrong_types_and_ranges_are_all_reported(tmp_path):
    text = PLAN.replace("{k: 4}", "[4]") + "seed: one\nstop: never\nacceptance: {alpha: 1.5}\n"
    message = error(tmp_path, text)
    assert "3 problems" not in message and "4 problems" in message
    assert "plan.yaml:7: candidates[0].options: expected a mapping, got a list ([4])" in message
    assert "plan.yaml:10: seed: expected an integer, got a string ('one')" in message
    assert "stop: 'never' is not one of first_win, all" in message
    assert "acceptance.alpha: 1.5 is out of range (0, 1)" in message


def test_missing_baseline_and_bad_option(tmp_path):
    message = error(tmp_path, PLAN.replace("baseline:\n  strategy: unified\n", "").replace("{k: 4}", "{kk: 4}"))
    assert "baseline: missing" in message
    assert "candidates[0].options: strategy 'per_cluster' has no option kk" in message


def test_a_persona_token_candidate_loads_and_its_bad_options_are_named(tmp_path):
    text = PLAN.replace("strategy: per_cluster\n    options: {k: 4}",
                        "strategy: persona_token\n    options: {identity: text, tokens: 4}")
    spec = load_plan(write(tmp_path, text))
    assert spec.run_config(spec.candidates[0]).strategy_options == {"identity": "text", "tokens": 4}
    message = error(tmp_path, text.replace("{identity: text, tokens: 4}", "{identity: vector, tokens: 0}"))
    assert "candidates[0].options: persona_token identity must be one of: 'text'" in message
    message = error(tmp_path, text.replace("{identity: text, tokens: 4}", "{identity: learned, vector_lr: fast}"))
    assert "candidates[0].options: persona_token vector_lr must be a number in (0, 1]" in message


def test_bad_settings_preset_and_duplicate_names(tmp_path):
    text = PLAN.replace("options: {k: 4}", "options: {k: 4}\n    preset: tight\n    settings: {epochs: many}")
    text += "  - strategy: ensemble\n"
    message = error(tmp_path, text)
    assert "candidates[0].preset: unknown preset 'tight'" in message
    assert "candidates[2].name: 'ensemble' is already the name of candidates[1]" in message


def test_not_a_mapping_invalid_yaml_and_missing_file(tmp_path):
    assert "a plan must be a mapping" in error(tmp_path, "- a\n- b\n")
    assert "plan.yaml:2: invalid YAML" in error(tmp_path, "data: x\n  bad: [\n")
    with pytest.raises(PersonalabError, match="cannot read the plan file"):
        load_plan(tmp_path / "nothing.yaml")


def test_a_candidate_passes_its_augmenters_to_its_run(tmp_path):
    from personalab.plan import parse_plan

    spec = parse_plan({"data": str(tmp_path), "baseline": {"strategy": "unified"},
                       "candidates": [{"strategy": "per_cluster", "augment": ["swap", {"name": "delete", "rate": 0.2}]}]},
                      "plan.yaml")
    assert spec.run_config(spec.candidates[0]).augment == ["swap", {"name": "delete", "rate": 0.2}]
    with pytest.raises(PersonalabError, match="unknown augmenter 'swp'"):
        parse_plan({"data": str(tmp_path), "baseline": {"strategy": "unified"},
                    "candidates": [{"strategy": "per_cluster", "augment": ["swp"]}]}, "plan.yaml")


def test_the_new_keys_read_and_turn_off(tmp_path):
    text = PLAN + "select_on: test\nrepeats: 3\nacceptance: {harm_alpha: null, require_every_repeat: true}\n"
    spec = load_plan(write(tmp_path, text))
    assert spec.select_on == "test" and spec.repeats == 3
    assert spec.acceptance.harm_alpha is None and spec.acceptance.require_every_repeat
    assert [spec.run_config(spec.baseline, seed).seed for seed in (None, 2)] == [0, 2]


def test_bad_values_of_the_new_keys_are_clear(tmp_path):
    text = PLAN + ("select_on: train\nrepeats: 0\n"
                   "acceptance: {harm_alpha: 2, require_every_repeat: sometimes}\n")
    message = error(tmp_path, text)
    assert "4 problems" in message
    assert "plan.yaml:10: select_on: 'train' is not one of val, test" in message
    assert "plan.yaml:11: repeats: must be between 1 and 20" in message
    assert "acceptance.harm_alpha: 2 is out of range (0, 1)" in message
    assert "acceptance.require_every_repeat: expected a boolean, got a string ('sometimes')" in message


def test_retired_keys_say_what_replaced_them(tmp_path):
    text = PLAN + "split: test\nacceptance: {max_share_worse: 0.1, correction: holm}\n"
    message = error(tmp_path, text)
    assert "plan.yaml:10: split: replaced by `select_on: val | test`" in message
    assert "acceptance.max_share_worse: replaced by `harm_alpha`" in message
    assert "acceptance.correction: removed" in message
    assert "unknown key" not in message


def test_a_plan_error_exits_2_without_a_traceback(tmp_path, capsys):
    from personalab.cli.main import main

    path = write(tmp_path, PLAN + "repeats: many\n")
    assert main(["plan", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "repeats: expected an integer, got a string ('many')" in err and "Traceback" not in err
