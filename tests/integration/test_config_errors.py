"""Every YAML file the CLI reads — a plan (``plan``, ``demo --plan``), a run config (``train
--config``), a dataset's dataset.yaml (``validate``, ``train --data``) and a run's config.yaml
(``evaluate``, ``export``) — answers an unknown key, a wrong type and a YAML syntax error the
same way: the file, the line and the key on stderr, exit code 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from personalab.models.base import ModelSpec

PLAN = "data: data/synth\nbaseline:\n  strategy: unified\ncandidates:\n  - strategy: per_cluster\nseed: 0\n"
RUN_CONFIG = "strategy: unified\nmodel:\n  name: tiny-classifier\nseed: 0\nsettings:\n  epochs: 1\n"


def _stored_config(tmp_path: Path) -> str:
    # What `personalab train` writes into a run directory (run.rundir.train_run).
    from personalab.run.rundir import RunConfig

    config = RunConfig(data=str(tmp_path / "data"), model=ModelSpec(name="tiny-classifier"))
    return yaml.safe_dump({**config.to_dict(), "data_fingerprint": "0" * 16, "versions": {}}, sort_keys=False)


def _plan(tmp_path, text):
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    return path, ["plan", path, "--out", tmp_path / "out"]


def _demo(tmp_path, text):
    path, _ = _plan(tmp_path, text)
    return path, ["demo", "--plan", path, "--out", tmp_path / "out"]


def _run_config(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path, ["train", "--config", path, "--data", tmp_path / "data", "--out", tmp_path / "out"]


def _dataset(make_dataset, text):
    folder = make_dataset(spec=text)
    return folder / "dataset.yaml", folder


def _validate(tmp_path, text, make_dataset):
    path, folder = _dataset(make_dataset, text)
    return path, ["validate", folder]


def _train_data(tmp_path, text, make_dataset):
    path, folder = _dataset(make_dataset, text)
    return path, ["train", "--data", folder, "--model", "tiny-classifier", "--out", tmp_path / "out"]


def _run_dir(tmp_path, text):
    run = tmp_path / "run"
    run.mkdir()
    (run / "personalizer.json").write_text("{}")
    (run / "config.yaml").write_text(text)
    return run / "config.yaml", run


def _evaluate(tmp_path, text):
    path, run = _run_dir(tmp_path, text)
    return path, ["evaluate", run]


def _export(tmp_path, text):
    path, run = _run_dir(tmp_path, text)
    return path, ["export", run, "--out", tmp_path / "served"]


# kind: (subcommand, the file's valid text, a key holding 0, how the CLI is given the file)
KINDS = {
    "plan": ("plan", lambda tmp: PLAN, "seed", _plan),
    "demo plan": ("demo", lambda tmp: PLAN, "seed", _demo),
    "run config": ("train", lambda tmp: RUN_CONFIG, "seed", _run_config),
    "dataset.yaml (validate)": ("validate", lambda tmp: "name: tiny\nsplit_seed: 0\nchoices: [bad, good]\n",
                                "split_seed", _validate),
    "dataset.yaml (train)": ("train", lambda tmp: "name: tiny\nsplit_seed: 0\nchoices: [bad, good]\n",
                             "split_seed", _train_data),
    "run's config.yaml (evaluate)": ("evaluate", _stored_config, "seed", _evaluate),
    "run's config.yaml (export)": ("export", _stored_config, "seed", _export),
}
# defect: what the `KEY: 0` line becomes
DEFECTS = {
    "unknown key": lambda key: f"{key[:-1]}e{key[-1]}: 0",  # seed -> seeed: a typo
    "wrong type": lambda key: f"{key}: zero",
    "syntax error": lambda key: f"{key}: 0: 1",
}


@pytest.mark.parametrize("defect", DEFECTS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_broken_config_names_file_line_and_key_and_exits_2(kind, defect, tmp_path, cli_runner, make_dataset):
    subcommand, valid, key, given = KINDS[kind]
    text = valid(tmp_path)
    lines = text.splitlines()
    line = lines.index(f"{key}: 0") + 1
    lines[line - 1] = DEFECTS[defect](key)
    args = (tmp_path, "\n".join(lines) + "\n")
    path, argv = given(*args, make_dataset) if "dataset" in kind else given(*args)

    code, _, err = cli_runner((subcommand,))(*argv)

    assert code == 2, err
    assert f"{path}:{line}:" in err and "Traceback" not in err
    named = lines[line - 1].split(":")[0]  # the key as written on the broken line
    assert named in err
    if defect == "unknown key":
        assert f"did you mean '{key}'?" in err
