"""``export_run`` and ``personalab export`` / ``predict`` end to end on runs trained with the
tiny classifier: every exported adapter loads in plain PEFT and, with the exported head,
reproduces the run's own test scores for the personas routed to it (single adapters and
merged mixtures alike); the compatibility checker on real PEFT adapters of the tiny causal
LM; routing and the CLI's answers and errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from personalab.cli import main as cli_main
from personalab.data import write_dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.run.evaluation import evaluate_run
from personalab.export import check_adapter, check_export, export_run
from personalab.export.compat import NOT_SERVABLE
from personalab.models import build_backend, load_head
from personalab.models.base import ModelSpec
from personalab.run.rundir import RunConfig, open_run, train_run
from personalab.train.head import HEAD_FILE
from personalab.train.presets import resolve_settings


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, *synthesize(SynthConfig(n_personas=6, n_groups=2, examples_per_persona=16, seed=7)))
    return root


def config(data, strategy, **options) -> RunConfig:
    return RunConfig(data=str(data), strategy=strategy, strategy_options=options,
                     model=ModelSpec(name="tiny-classifier"), settings=resolve_settings(epochs=1))


@pytest.fixture(scope="module")
def runs(synth_dir, tmp_path_factory):
    """Evaluated runs: per_persona (single adapters; one persona falls back to unified),
    and weighted_merge without materialize (every route a weight-space mixture)."""
    root = tmp_path_factory.mktemp("runs")
    train_run(config(synth_dir, "per_persona"), root / "per_persona", progress=False)
    train_run(config(synth_dir, "weighted_merge", materialize=False, temperature=1.0, k=2), root / "mixture",
              progress=False, reuse=[root / "per_persona"])
    for name in ("per_persona", "mixture"):
        evaluate_run(root / name, progress=False)
    return root


@pytest.fixture(scope="module")
def exports(runs, tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    return {name: (export_run(runs / name, root / name), root / name) for name in ("per_persona", "mixture")}


def cli(argv: list[str]) -> int:
    """``personalab`` with the export and predict commands registered (user errors -> 2)."""
    commands = tuple(dict.fromkeys([*cli_main.SUBCOMMANDS, "export", "predict"]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli_main, "SUBCOMMANDS", commands)
        return cli_main.main(argv)


# --- round trip -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["per_persona", "mixture"])
def test_exported_adapters_reproduce_the_run_scores_in_plain_peft(name, runs, exports):
    run_dir, (report, out) = runs / name, exports[name]
    if name == "mixture":
        assert all(a.source == "merged" and a.max_relative_error < 1e-5 for a in report.adapters
                   if a.route.single_adapter is None)
    assert_export_reproduces_run(run_dir, out)


def assert_export_reproduces_run(run_dir: Path, out: Path) -> None:
    """Every persona's test rows, scored by plain PEFT with the adapter routing.json names
    (and the exported head of a classifier), get the scores the run's evaluation wrote."""
    from peft import PeftModel

    routing = json.loads((out / "routing.json").read_text())
    run = open_run(run_dir)
    backend = build_backend(run.config.model, run.backend.choices, run.dataset.profiles, seed=run.config.seed)
    if (out / HEAD_FILE).exists():  # without it a classifier's head is a fresh random one
        load_head(backend.model, out / HEAD_FILE)
    folders = sorted(set(routing["personas"].values()))
    model = PeftModel.from_pretrained(backend.model, str(out / "adapters" / folders[0]), adapter_name=folders[0])
    for folder in folders[1:]:
        model.load_adapter(str(out / "adapters" / folder), adapter_name=folder)
    reference = _run_scores(run_dir)
    rows = run.dataset.split("test")
    for persona, folder in routing["personas"].items():
        index = [i for i, row in enumerate(rows) if row.persona_id == persona]
        assert index, f"persona {persona} has no test rows: nothing would be compared"
        model.set_adapter(folder)
        scores = backend.scores(model, [rows[i] for i in index]).numpy()
        np.testing.assert_allclose(scores, reference[index], atol=1e-4, err_msg=f"persona {persona} via {folder}")


def _run_scores(run_dir: Path) -> np.ndarray:
    lines = (run_dir / "eval" / "test" / "predictions.jsonl").read_text().splitlines()
    return np.array([list(json.loads(line)["scores"].values()) for line in lines])


def test_routing_covers_every_persona_and_export_json_describes_the_adapters(runs, exports, synth_dir):
    from personalab.data import load_dataset

    personas = set(load_dataset(synth_dir).personas)
    for name, (report, out) in exports.items():
        routing = json.loads((out / "routing.json").read_text())
        info = json.loads((out / "export.json").read_text())
        assert set(routing["personas"]) == personas
        assert set(routing["personas"].values()) | {routing["default"]} <= set(routing["adapters"])
        assert set(info["adapters"]) == set(routing["adapters"]) == {a.folder for a in report.adapters}
        assert all((out / entry["path"] / "adapter_model.safetensors").is_file() for entry in info["adapters"].values())
        assert info["base_model"]["kind"] == "classifier" and info["classifier_head"]["file"] == HEAD_FILE
        assert (out / HEAD_FILE).is_file() and "not a LoRA tensor" in info["classifier_head"]["note"]
        vllm = info["compatibility"]["vllm"]
        assert not vllm["servable"] and any(NOT_SERVABLE in p["message"] for p in vllm["problems"])
    assert json.loads((exports["per_persona"][1] / "routing.json").read_text())["default_personas"]  # a fallback


def test_export_is_atomic_and_refuses_a_non_empty_out(runs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert cli(["export", str(runs / "per_persona"), "--out", str(out)]) == 2
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert cli(["export", str(tmp_path / "not-a-run"), "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli(["export", str(runs / "per_persona"), "--out", str(empty), "--no-check"]) == 0
    assert json.loads((empty / "export.json").read_text())["compatibility"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "out"]  # no staging left behind


def test_export_cli_prints_what_it_wrote_and_the_report(runs, tmp_path, capsys):
    assert cli(["export", str(runs / "mixture"), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "routing.json" in printed and "merged: exact" in printed and NOT_SERVABLE in printed


def test_check_export_reads_back_the_recorded_report(exports):
    report, out = exports["per_persona"]
    assert check_export(out).to_json() == report.compatibility.to_json()


def test_an_ensemble_export_gives_each_persona_its_member_adapters(runs, synth_dir, tmp_path):
    run = tmp_path / "ensemble"
    train_run(config(synth_dir, "ensemble", weight=0.6, second="per_persona"), run, progress=False,
              reuse=[runs / "per_persona"])
    report = export_run(run, tmp_path / "out")
    routing = json.loads((tmp_path / "out" / "routing.json").read_text())
    assert routing["kind"] == "ensemble" and routing["personas"]
    for target in [*routing["personas"].values(), routing["default"]]:
        assert [m["weight"] for m in target["members"]] == pytest.approx([0.6, 0.4])
        assert all(m["adapter"] in routing["adapters"] for m in target["members"])
    assert {a.folder for a in report.adapters} == set(routing["adapters"])


def test_a_moe_export_carries_the_router_and_predict_routes_a_new_persona(runs, synth_dir, tmp_path, capsys):
    run = tmp_path / "moe"
    train_run(config(synth_dir, "moe", k=2, top_k=2, temperature=1.0), run, progress=False, reuse=[runs / "per_persona"])
    export_run(run, tmp_path / "out")
    routing = json.loads((tmp_path / "out" / "routing.json").read_text())
    router = routing["router"]
    assert router and (tmp_path / "out" / "router" / "router.safetensors").is_file()
    assert all((tmp_path / "out" / "adapters" / folder).is_dir() for folder in router["experts"].values())
    assert any(entry.keys() == set(router["experts"]) for entry in routing["adapters"].values())  # a 2-expert mixture
    assert cli(["predict", str(run), "--persona", "newcomer", "--profile", "A young teacher who likes jazz.",
                "I love this movie"]) == 0
    printed = capsys.readouterr().out
    assert "the router, from its profile" in printed and "cluster/" in printed
    assert cli(["predict", str(run), "--persona", "newcomer", "I love this movie"]) == 0
    assert "give --profile to place it with the router" in capsys.readouterr().out


# --- compatibility on real PEFT adapters of the tiny causal LM ------------------------------


def _peft_adapter(base_path: Path, out: Path, **lora_options) -> Path:
    import transformers
    from peft import LoraConfig, get_peft_model

    model = transformers.AutoModelForCausalLM.from_pretrained(str(base_path))
    options = {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"], **lora_options}
    get_peft_model(model, LoraConfig(**options)).save_pretrained(str(out))
    return out


def test_a_rank_8_q_v_adapter_of_the_tiny_causal_lm_passes(tiny_causal_lm_path, tmp_path):
    assert check_adapter(_peft_adapter(tiny_causal_lm_path, tmp_path / "ok")) == []


@pytest.mark.parametrize("options, rule", [
    ({"r": 1040, "lora_alpha": 1040}, "max_lora_rank"),
    ({"use_dora": True}, "use_dora"),
    ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
])
def test_adapters_vllm_refuses_fail(tiny_causal_lm_path, tmp_path, options, rule):
    problems = check_adapter(_peft_adapter(tiny_causal_lm_path, tmp_path / "bad", **options))
    assert rule in [p.rule for p in problems if p.severity == "error"]


def test_a_causal_lm_export_is_servable_by_vllm_and_reproduces_the_run(tmp_path, capsys):
    run, data = tmp_path / "run", tmp_path / "data"
    write_dataset(data, *synthesize(SynthConfig(n_personas=3, n_groups=1, examples_per_persona=10, seed=1)))
    causal = RunConfig(data=str(data), strategy="unified", model=ModelSpec(name="tiny-causal-lm"),
                       settings=resolve_settings(epochs=1))
    train_run(causal, run, progress=False)
    evaluate_run(run, progress=False)
    assert cli(["export", str(run), "--out", str(tmp_path / "out")]) == 0
    assert "vllm: servable (1 adapters, rank 8)" in capsys.readouterr().out
    info = json.loads((tmp_path / "out" / "export.json").read_text())
    assert info["base_model"]["model_type"] == "qwen2" and info["classifier_head"] is None
    assert info["compatibility"]["vllm"]["max_lora_rank"] == 8 and not info["compatibility"]["vllm"]["problems"]
    assert_export_reproduces_run(run, tmp_path / "out")


def test_an_exported_classifier_adapter_is_not_servable_by_vllm(exports):
    _, out = exports["per_persona"]
    problems = check_adapter(out / "adapters" / "unified")
    assert [p.rule for p in problems] == ["architecture"] and NOT_SERVABLE in problems[0].message


# --- predict ----------------------------------------------------------------------------------


def test_predict_answers_a_known_and_an_unknown_persona(runs, capsys):
    run = runs / "per_persona"
    routing_table = json.loads((run / "personalizer.json").read_text())["table"]
    known = sorted(routing_table)[0]
    assert cli(["predict", str(run), "--persona", known, "I love this movie", "what a waste of time"]) == 0
    printed = capsys.readouterr().out
    assert f"persona {known!r}: its own route: persona/{known}" in printed
    choices = open_run(run).backend.choices
    answers = [line for line in printed.splitlines() if " -> " in line]
    assert len(answers) == 2 and all(line.split(" -> ")[1].split()[0] in choices for line in answers)
    assert cli(["predict", str(run), "--persona", "someone-new", "I love this movie"]) == 0
    assert "the default route (a persona new to the run): unified" in capsys.readouterr().out


def test_predict_probabilities_match_the_evaluation(runs):
    from personalab.export.answer import answer

    run = open_run(runs / "mixture")
    row = run.dataset.split("test")[0]
    result = answer(run, row.persona_id, [row.input])
    expected = np.exp(_run_scores(runs / "mixture")[0])
    assert np.allclose(list(result.answers[0].probabilities.values()), expected, atol=1e-4)


def test_predict_refuses_empty_text_and_untrained_runs(runs, tmp_path):
    assert cli(["predict", str(runs / "per_persona"), "--persona", "p0", "  "]) == 2
    assert cli(["predict", str(tmp_path), "--persona", "p0", "text"]) == 2
