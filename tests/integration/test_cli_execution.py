"""The execution flags (--device, --dtype, --gradient-checkpointing, --train-batch-size,
--score-batch-size) from the command line and plans: bad values exit 2 with a clear message and
no traceback; a run trained with them records them, and the same run under another device or
batch size is kept (same adapters), while another dtype is not."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from personalab.cli import train as train_cli
from personalab.data.io import write_dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.models.base import DTYPES


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    write_dataset(root, *synthesize(SynthConfig(n_personas=3, examples_per_persona=12, seed=3)))
    return root


def test_the_cli_offers_exactly_the_dtypes_the_model_spec_takes():
    assert train_cli.DTYPES == DTYPES


@pytest.mark.parametrize(("flags", "message"), [
    (["--dtype", "float64"], "invalid choice"),
    (["--train-batch-size", "0"], "train_batch_size must be a whole number of at least 1"),
    (["--score-batch-size", "-3"], "score_batch_size must be"),
    (["--device", "tpu please"], "unknown device"),
])
def test_bad_execution_flags_exit_2_without_a_traceback(flags, message, synth_dir, tmp_path, cli_runner):
    code, _, err = cli_runner(("train",))("train", "--data", synth_dir, "--model", "tiny-classifier",
                                          "--out", tmp_path / "out", "--quiet", *flags)
    assert code == 2 and message in err and "Traceback" not in err, err


def test_a_bad_batch_size_in_a_plan_is_reported_at_its_line(synth_dir, tmp_path, cli_runner):
    plan = tmp_path / "plan.yaml"
    plan.write_text(f"data: {synth_dir}\nmodel:\n  name: tiny-classifier\n  score_batch_size: 0\n"
                    "baseline:\n  strategy: unified\ncandidates: []\n")
    code, _, err = cli_runner(("plan",))("plan", plan, "--out", tmp_path / "out", "--quiet")
    assert code == 2 and f"{plan}:2:" in err and "score_batch_size" in err and "Traceback" not in err, err


def test_execution_flags_are_recorded_and_do_not_retrain_but_dtype_does(synth_dir, tmp_path, cli_runner):
    run = cli_runner(("train",))
    out = tmp_path / "run"
    base = ["train", "--data", synth_dir, "--model", "tiny-causal-lm", "--strategy", "per_persona",
            "--epochs", "1", "--out", out, "--quiet"]
    code, _, err = run(*base, "--dtype", "bfloat16", "--gradient-checkpointing", "--train-batch-size", "8",
                       "--score-batch-size", "16", "--device", "cpu")
    assert code == 0, err
    model = yaml.safe_load((out / "config.yaml").read_text())["model"]
    assert (model["dtype"], model["gradient_checkpointing"], model["train_batch_size"],
            model["score_batch_size"], model["device"]) == ("bfloat16", True, 8, 16, "cpu")

    code, printed, err = run(*base, "--dtype", "bfloat16", "--train-batch-size", "32")
    assert code == 0 and "already trained" in printed, printed + err
    code, printed, err = run(*base, "--dtype", "float32")  # other adapters: not this run any more
    assert code == 2 and "already holds a trained run" in err, printed + err
