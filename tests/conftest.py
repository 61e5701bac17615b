"""Shared test fixtures. Keep it small: a fixture used by one test file lives in that file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# --- data: a tiny valid dataset folder, any file of which a test can replace ------------------

TINY_SPEC = "name: tiny\ntask: classification\nchoices: [bad, good]\n"
TINY_PERSONAS = [
    {"persona_id": "a", "profile": "A careful reader."},
    {"persona_id": "b", "attributes": {"age": 30, "city": "Lyon"}},
]
TINY_EXAMPLES = [
    {"persona_id": "a", "input": "x1", "output": "good", "split": "train"},
    {"persona_id": "a", "input": "x2", "output": "bad", "split": "test"},
    {"persona_id": "b", "input": "x1", "output": "bad", "split": "train"},
    {"persona_id": "b", "input": "x3", "output": "good"},
]


def _jsonl_bytes(lines: list) -> bytes:
    """Dicts become JSON lines; str and bytes lines are written as given (for broken lines)."""
    encoded = []
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line)
        encoded.append(line if isinstance(line, bytes) else line.encode("utf-8"))
    return b"\n".join(encoded) + b"\n"


@pytest.fixture
def make_dataset(tmp_path: Path):
    """``make_dataset(spec=..., personas=[...], examples=[...])`` -> a dataset folder.

    Anything not given is the tiny valid dataset above; ``None`` for a file leaves it out.
    ``make_dataset.personas`` / ``.examples`` are copies of the defaults, to extend.
    """
    counter = iter(range(1000))

    def make(spec=TINY_SPEC, personas=TINY_PERSONAS, examples=TINY_EXAMPLES) -> Path:
        root = tmp_path / f"dataset{next(counter)}"
        root.mkdir()
        if spec is not None:
            (root / "dataset.yaml").write_text(spec, encoding="utf-8")
        if personas is not None:
            (root / "personas.jsonl").write_bytes(_jsonl_bytes(personas))
        if examples is not None:
            (root / "examples.jsonl").write_bytes(_jsonl_bytes(examples))
        return root

    make.personas = [dict(row) for row in TINY_PERSONAS]
    make.examples = [dict(row) for row in TINY_EXAMPLES]
    return make


# --- models: tiny random base models, built once per test session ---------------------------

import os  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network


@pytest.fixture(scope="session", autouse=True)
def personalab_cache(tmp_path_factory) -> Path:
    """A session-private PERSONALAB_CACHE: ``ModelSpec(name="tiny-...")`` builds there, never
    in the user's home."""
    cache = tmp_path_factory.mktemp("personalab-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERSONALAB_CACHE", str(cache))
        yield cache


@pytest.fixture(scope="session")
def tiny_classifier_path(personalab_cache) -> Path:
    """The folder ``ModelSpec(name="tiny-classifier")`` loads (a headless 2-layer BERT)."""
    from personalab.models.tiny import resolve_tiny

    return resolve_tiny("tiny-classifier")


@pytest.fixture(scope="session")
def tiny_causal_lm_path(personalab_cache) -> Path:
    """The folder ``ModelSpec(name="tiny-causal-lm")`` loads (2-layer Qwen2, ChatML template)."""
    from personalab.models.tiny import resolve_tiny

    return resolve_tiny("tiny-causal-lm")


@pytest.fixture(scope="session")
def tiny_plain_causal_lm_path(tmp_path_factory) -> Path:
    """A tiny causal LM whose tokenizer has no chat template (the plain prompt format)."""
    from personalab.models.tiny import build_tiny_causal_lm

    return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny-plain-lm"), chat_template=False)


@pytest.fixture
def cli_runner(monkeypatch, capsys):
    """``cli_runner(subcommands) -> run(*argv) -> (exit code, stdout, stderr)``: the CLI with
    only ``subcommands`` registered (the others import torch and models, which takes seconds)."""
    from personalab.cli import main as cli_main

    def runner(subcommands):
        monkeypatch.setattr(cli_main, "SUBCOMMANDS", tuple(subcommands))

        def run_cli(*argv) -> tuple[int, str, str]:
            try:
                code = cli_main.main([str(a) for a in argv])
            except SystemExit as stop:  # argparse: --help, or a usage error
                code = stop.code
            out, err = capsys.readouterr()
            return code, out, err

        return run_cli

    return runner
