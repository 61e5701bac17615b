"""A run sent back from a task as files: written into place whole, or — a file damaged on its
way — not at all, the folder that was there left as it was."""

from __future__ import annotations

from dataclasses import replace

import pytest

from personalab.errors import PersonalabError
from personalab.run.step_tasks import install, lender_files, pack


@pytest.fixture
def run(tmp_path):
    folder = tmp_path / "made"
    (folder / "bank" / "persona-a").mkdir(parents=True)
    (folder / "bank" / "manifest.json").write_text("{}")
    (folder / "bank" / "persona-a" / "adapter_model.safetensors").write_bytes(b"\0weights")
    (folder / "classifier_head.safetensors").write_bytes(b"head")
    (folder / "eval" / "val").mkdir(parents=True)
    (folder / "eval" / "val" / "metrics.json").write_text("{}")
    (folder / "personalizer.json").write_text("{}")
    return folder


def test_a_run_goes_into_place_whole_and_replaces_what_was_there(run, tmp_path):
    files = pack(run, skip=("eval",))
    assert sorted(files.data) == ["bank/manifest.json", "bank/persona-a/adapter_model.safetensors",
                                  "classifier_head.safetensors", "personalizer.json"]
    target = tmp_path / "plan" / "runs" / "x"
    (target / "bank").mkdir(parents=True)
    (target / "bank" / "stale").write_text("from a killed attempt")
    install(files, target)
    assert pack(target) == files
    assert [p.name for p in target.parent.iterdir()] == ["x"]  # no staging folder left beside it
    assert sorted(lender_files(run).data) == ["bank/manifest.json", "bank/persona-a/adapter_model.safetensors",
                                              "classifier_head.safetensors"]
    assert lender_files(tmp_path / "nothing") is None


def test_a_damaged_file_is_refused_before_anything_is_written(run, tmp_path):
    files = pack(run)
    damaged = replace(files, data={**files.data, "personalizer.json": b"{'changed': 1}"})
    target = tmp_path / "runs" / "x"
    target.mkdir(parents=True)
    (target / "kept").write_text("as it was")
    with pytest.raises(PersonalabError, match="damaged .* personalizer.json"):
        install(damaged, target)
    assert [p.name for p in target.iterdir()] == ["kept"]
    missing = replace(files, sha256={k: v for k, v in files.sha256.items() if k != "personalizer.json"})
    with pytest.raises(PersonalabError, match="damaged"):
        install(missing, target)
