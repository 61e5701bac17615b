"""A whole run as one task of an executor elsewhere (a Ray worker): a strategy trained and
evaluated in the worker's private temporary folder, sent back to the driver as files, each
with its sha256, which the driver alone writes where the run belongs.

What a task is given (``RunJob``, and ``RunInputs`` shared by reference among the tasks of a
plan): the run config, the splits to evaluate, the data already loaded (``config.data`` is
recorded in the run's config.yaml, never read there), and the runs it may take adapters from
(``reuse``) as files — their bank and classifier head — under a label the driver chose. No
path into the driver's folders: no plan folder, no bank, no ledger. The worker loads the
base model from its own node (the same local path or cache), as a fleet shard's task does.
A fleet inside the run trains its shards in the worker, one after another: a task that waited
on tasks of its own while holding a GPU could starve them of it.

What it returns (``RunResult``): the run folder less ``eval/`` (``train``), each split's
``eval/<split>/`` (``evaluations``), the seconds training and each evaluation took there, and
where it ran (``where``). ``install`` checks every hash before it writes anything, builds the
folder under a hidden staging name and renames it into place: a half-written run is never seen.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from personalab.data.atomic import replace_folder, staging_folder
from personalab.data.schema import Dataset
from personalab.errors import PersonalabError
from personalab.run.rundir import TRAINING, train_run
from personalab.train.head import HEAD_FILE


@dataclass(frozen=True)
class Files:
    """A folder's files as bytes by their path relative to it, with the sha256 of each."""

    data: dict[str, bytes]
    sha256: dict[str, str]


@dataclass(frozen=True)
class RunJob:
    config: Any  # personalab.run.rundir.RunConfig
    splits: tuple[str, ...]
    label: str  # how the driver names the task (``step train:<name>``)
    own: Files | None = None  # what a killed attempt of this very run left (its bank): resumed from


@dataclass(frozen=True)
class RunInputs:
    """What every run task of one submission reads, put once into the executor's store."""

    dataset: Dataset
    lenders: dict[str, Files] = field(default_factory=dict)  # label -> a reusable run's bank and head


@dataclass(frozen=True)
class RunResult:
    train: Files
    evaluations: dict[str, Files]
    seconds: dict[str, float]  # "train" and each split
    where: dict[str, Any]


def pack(folder: Path, include: tuple[str, ...] | None = None, skip: tuple[str, ...] = ()) -> Files:
    """The files under ``folder`` (only the top-level entries in ``include``, when given; never
    those in ``skip``), with their hashes."""
    data = {}
    for path in sorted(Path(folder).rglob("*")):
        top = path.relative_to(folder).parts[0]
        if path.is_file() and top not in skip and (include is None or top in include):
            data[path.relative_to(folder).as_posix()] = path.read_bytes()
    return Files(data, {name: hashlib.sha256(blob).hexdigest() for name, blob in data.items()})


def lender_files(run_dir: Path) -> Files | None:
    """What a run lends to another (``reuse``): its bank and classifier head; None without a bank."""
    return pack(run_dir, include=("bank", HEAD_FILE)) if (Path(run_dir) / "bank" / "manifest.json").exists() else None


def install(files: Files, target: Path) -> None:
    """``files`` as the folder ``target`` (replacing what is there), once every hash matches."""
    damaged = sorted(name for name, blob in files.data.items()
                     if hashlib.sha256(blob).hexdigest() != files.sha256.get(name))
    if damaged or files.data.keys() != files.sha256.keys():
        raise PersonalabError(f"{target.name}: {len(damaged) or 'some'} file(s) came back damaged from their task "
                              f"(sha256 mismatch: {', '.join(damaged[:3])}); run the command again to redo the step")
    target = Path(target)
    with staging_folder(target.parent, prefix=f".{target.name}.") as staging:
        _write(files, staging / "new")
        replace_folder(staging / "new", target, staging / "old")  # the old one goes with the staging folder


def _write(files: Files, folder: Path) -> None:
    folder.mkdir(parents=True)
    for name, blob in files.data.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)


def run_task(job: RunJob, inputs: RunInputs) -> RunResult:
    """The task: train ``job.config`` into a private folder, evaluate it on ``job.splits``,
    return the folder's files. Runs in a worker; writes nothing outside its temporary folder."""
    from personalab.run.evaluation import evaluate_run

    where = {**_identity(), "label": job.label, "started": time.time()}
    with tempfile.TemporaryDirectory(prefix="personalab-run-") as temporary:
        root = Path(temporary)
        lenders = {label: root / "lenders" / str(number) for number, label in enumerate(inputs.lenders)}
        for label, folder in lenders.items():
            _write(inputs.lenders[label], folder)
        run_dir = root / "run"
        if job.own is not None:
            _write(job.own, run_dir)
        started = time.perf_counter()
        train_run(job.config, run_dir, progress=False, reuse=list(lenders.values()), dataset=inputs.dataset)
        _relabel_lenders(run_dir, {str(folder): label for label, folder in lenders.items()})
        seconds = {"train": time.perf_counter() - started}
        for split in job.splits:
            started = time.perf_counter()
            evaluate_run(run_dir, split, progress=False, dataset=inputs.dataset)
            seconds[split] = time.perf_counter() - started
        trained = pack(run_dir, skip=("eval",))
        evaluations = {split: pack(run_dir / "eval" / split) for split in job.splits}
    return RunResult(trained, evaluations, seconds, {**where, "ended": time.time()})


def _relabel_lenders(run_dir: Path, labels: dict[str, str]) -> None:
    # training.json names the run each adapter was reused from: the driver's label for it, not
    # the worker's temporary copy (which is gone once the task ends).
    path = run_dir / TRAINING
    records = json.loads(path.read_text(encoding="utf-8"))
    if records.get("reused"):
        records["reused"] = {name: labels.get(lender, lender) for name, lender in records["reused"].items()}
        path.write_text(json.dumps(records, indent=2), encoding="utf-8")


def _identity() -> dict[str, Any]:
    """Where this task runs: host and process, and Ray's task and node ids inside a Ray worker
    (Ray is looked up, never imported: the default path has no Ray)."""
    where: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        context = ray.get_runtime_context()
        where.update(task_id=context.get_task_id(), node_id=context.get_node_id())
    return where
