"""A plan folder is a run: ``personalab predict`` and ``export`` on the folder a tiny demo
wrote use the run of the strategy its plan chose (here the baseline it kept, or the one it
confirmed) and say which; ``--strategy`` takes another trained one; mistakes exit 2 with the
names to choose from. ``personalab serve`` refuses a folder that is no run before starting."""

from __future__ import annotations

import json

import pytest

from personalab.cli.main import main

PLAN = """\
data: unused
model: {name: tiny-classifier}
settings: {epochs: 1}
baseline: {strategy: unified}
candidates:
  - {name: per_cluster, strategy: per_cluster, options: {k: 2}}
stop: first_win
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    (root / "plan.yaml").write_text(PLAN)
    assert main(["demo", "--out", str(root / "demo"), "--plan", str(root / "plan.yaml"), "--personas", "8",
                 "--quiet"]) == 0
    return root / "demo" / "plan"


def chosen_name(plan_dir) -> str:
    return json.loads((plan_dir / "plan.json").read_text())["decision"]["chosen"]


def test_predict_on_a_plan_folder_uses_the_run_the_plan_chose(demo, capsys):
    capsys.readouterr()
    assert main(["predict", str(demo), "--persona", "p0", "I love this movie"]) == 0
    printed = capsys.readouterr().out
    name = chosen_name(demo)
    assert f"using {demo / 'runs' / name}: {name} (" in printed
    assert "persona 'p0':" in printed and " -> " in printed


def test_strategy_picks_another_trained_run_of_the_plan(demo, capsys):
    capsys.readouterr()
    assert main(["predict", str(demo), "--strategy", "per_cluster", "--persona", "p0", "I love this movie"]) == 0
    printed = capsys.readouterr().out
    assert f"using {demo / 'runs' / 'per_cluster'}: per_cluster (per_cluster)" in printed
    assert "its own route: cluster/" in printed


def test_export_of_a_plan_folder_writes_the_chosen_run(demo, tmp_path, capsys):
    assert main(["export", str(demo), "--out", str(tmp_path / "out"), "--no-check"]) == 0
    printed = capsys.readouterr().out
    assert f"using {demo / 'runs' / chosen_name(demo)}" in printed
    assert (tmp_path / "out" / "routing.json").is_file()


def test_mistakes_name_what_to_choose_from(demo, tmp_path, capsys):
    assert main(["predict", str(demo), "--strategy", "per_clster", "--persona", "p0", "x"]) == 2
    error = capsys.readouterr().err
    assert "did you mean per_cluster?" in error and "Traceback" not in error
    assert main(["predict", str(demo / "runs" / "unified"), "--strategy", "per_cluster", "--persona", "p0", "x"]) == 2
    assert "single trained run" in capsys.readouterr().err
    assert main(["predict", str(tmp_path), "--persona", "p0", "x"]) == 2
    assert "neither a trained run" in capsys.readouterr().err


def test_serve_refuses_a_folder_that_is_no_run_before_starting(tmp_path, capsys):
    assert main(["serve", str(tmp_path), "--port", "1"]) == 2
    assert "neither a trained run" in capsys.readouterr().err


def test_serve_without_its_extra_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def without_uvicorn(name, *args, **kwargs):
        if name == "uvicorn":
            raise ModuleNotFoundError("No module named 'uvicorn'", name="uvicorn")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_uvicorn)
    assert main(["serve", str(tmp_path)]) == 2
    assert "pip install 'personalab[serve]'" in capsys.readouterr().err
