"""The one atomic writer: a writer killed between its write and its rename leaves the target
as it was (absent, or the complete old file) and a hidden temporary file that later writes
ignore and the folder's owner removes; folders swap in whole.

The kill tests run the writer in a child process with a fault hook that, once the temporary
file is complete, writes a marker file and waits; the parent waits for the marker (with a
generous deadline, not a timed race) and sends SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from personalab.data.atomic import (
    atomic_file,
    atomic_write_bytes,
    atomic_write_safetensors,
    leftovers,
    move_folder_into_place,
    remove_leftovers,
    replace_folder,
    staging_folder,
    undo_replace_folder,
)
from personalab.data.faults import set_fault_hook

pytestmark = pytest.mark.skipif(os.name != "posix", reason="SIGKILL and signal.pause are POSIX")

# Large enough that writing it takes many write calls: a torn write would show.
NEW = bytes(range(256)) * (32 * 1024)  # 8 MiB
OLD = b"the complete old content\n"

CHILD = """\
import signal, sys
from pathlib import Path
from personalab.data.atomic import atomic_write_bytes, atomic_write_safetensors
from personalab.data.faults import set_fault_hook

target, marker, kind = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

def stop_before_rename(name, **details):
    if name == "atomic.written" and details["target"] == target:
        marker.write_text(str(details["temporary"]))
        while True:
            signal.pause()  # until the parent's SIGKILL

set_fault_hook(stop_before_rename)
data = bytes(range(256)) * (32 * 1024)
if kind == "bytes":
    atomic_write_bytes(target, data)
else:
    import torch
    atomic_write_safetensors(target, {"w": torch.frombuffer(bytearray(data), dtype=torch.uint8)})
"""


def _kill_between_write_and_rename(target: Path, tmp_path: Path, kind: str = "bytes") -> Path:
    """Run the child until its fault point, kill it there; returns the temporary file it
    named in its marker."""
    marker = tmp_path / "marker"
    before = _read_or_none(target)
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(target), str(marker), kind],
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() or not marker.read_text():
            if child.poll() is not None:
                pytest.fail(f"the writer ended (exit {child.returncode}) before its fault point:\n"
                            f"{child.stderr.read()}")
            if time.monotonic() > deadline:
                pytest.fail("the writer never reached its fault point")
            time.sleep(0.05)
        assert _read_or_none(target) == before  # a reader while the new file waits: the old one
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()
    return Path(marker.read_text())


def _read_or_none(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


@pytest.mark.parametrize("old", [OLD, None], ids=["over-an-old-file", "new-file"])
def test_a_writer_killed_before_its_rename_leaves_the_old_file_or_none(tmp_path, old):
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "big.bin"
    if old is not None:
        target.write_bytes(old)
    temporary = _kill_between_write_and_rename(target, tmp_path)
    assert _read_or_none(target) == old  # never the new bytes, never a part of them
    assert leftovers(folder) == [temporary]
    assert temporary.read_bytes() == NEW  # killed after the write, not during it
    assert temporary.name.startswith(".big.bin.") and temporary.name.endswith(".tmp")


def test_a_later_write_ignores_the_leftover_and_its_owner_removes_it(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    target = folder / "big.bin"
    target.write_bytes(OLD)
    temporary = _kill_between_write_and_rename(target, tmp_path)
    atomic_write_bytes(target, b"newer\n")
    assert target.read_bytes() == b"newer\n"
    assert leftovers(folder) == [temporary]  # another live writer's file looks the same: kept
    (folder / "keep.txt").write_text("not a leftover")
    assert remove_leftovers(folder) == [temporary]
    assert sorted(p.name for p in folder.iterdir()) == ["big.bin", "keep.txt"]


def test_a_killed_safetensors_write_leaves_a_readable_old_file(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    target = tmp_path / "head.safetensors"
    atomic_write_safetensors(target, {"w": torch.arange(4.0)}, metadata={"labels": json.dumps(["a"])})
    _kill_between_write_and_rename(target, tmp_path, kind="safetensors")
    assert torch.equal(load_file(target)["w"], torch.arange(4.0))


def test_a_failure_at_the_last_moment_removes_the_temporary_file(tmp_path):
    target = tmp_path / "file.bin"
    target.write_bytes(OLD)
    seen = []

    def refuse(name, **details):
        seen.append((name, details["target"], details["temporary"].read_bytes()))
        raise OSError("disk gone")

    previous = set_fault_hook(refuse)
    try:
        with pytest.raises(OSError, match="disk gone"):
            atomic_write_bytes(target, b"new")
    finally:
        set_fault_hook(previous)
    assert seen == [("atomic.written", target, b"new")]
    assert target.read_bytes() == OLD
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_a_written_file_is_readable_by_others_and_keeps_an_existing_mode(tmp_path):
    fresh = tmp_path / "fresh.txt"
    with atomic_file(fresh) as temporary:
        temporary.write_text("x")
    assert fresh.stat().st_mode & 0o777 == 0o644  # not the temp file's private 0600
    fresh.chmod(0o600)
    atomic_write_bytes(fresh, b"y")
    assert fresh.stat().st_mode & 0o777 == 0o600


def test_a_folder_moves_into_an_empty_place_but_never_onto_a_full_one(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    with staging_folder(tmp_path, prefix=".model-") as staging:
        (staging / "built").mkdir()
        (staging / "built" / "config.json").write_text("{}")
        move_folder_into_place(staging / "built", target)
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # the staging folder is gone
    assert (target / "config.json").read_text() == "{}"
    assert target.stat().st_mode & 0o777 == 0o755
    with staging_folder(tmp_path, prefix=".model-") as staging:
        (staging / "other.json").write_text("[]")
        with pytest.raises(OSError):
            move_folder_into_place(staging, target)
    assert sorted(p.name for p in target.iterdir()) == ["config.json"]


def test_replacing_a_folder_and_undoing_it(tmp_path):
    target = tmp_path / "adapter"
    target.mkdir()
    (target / "v").write_text("1")
    with staging_folder(tmp_path / ".staging") as staging:
        (staging / "new").mkdir()
        (staging / "new" / "v").write_text("2")
        previous = replace_folder(staging / "new", target, staging / "previous")
        assert previous == staging / "previous" and (previous / "v").read_text() == "1"
        assert (target / "v").read_text() == "2"
        undo_replace_folder(target, previous, staging / "failed")
        assert (target / "v").read_text() == "1" and (staging / "failed" / "v").read_text() == "2"
    assert not (tmp_path / ".staging").exists() or not any((tmp_path / ".staging").iterdir())
