"""Fleet shards on the Ray executor: the same adapters as in this process, a worker that dies
retried (or, with retries off, recorded as failed and redone alone by the next run), a plan
whose driver is killed resuming to the uninterrupted local result, and workers that never get
a path into the run. A plan's independent candidates run side by side as Ray tasks, to the
local plan's decision, metrics, predictions and adapters. One small local Ray cluster serves
the whole session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from personalab.bank import AdapterBank
from personalab.data import write_dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.models.base import ModelSpec
from personalab.plan import parse_plan, run_plan
from personalab.plan.ledger import Ledger
from personalab.run.executor import ExecutorSpec
from personalab.run.rundir import RunConfig, train_run, training_records
from personalab.train.presets import resolve_settings

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'personalab[ray]')")

PERSONAS = 6  # three shards of two


@pytest.fixture(scope="session")
def ray_cluster():
    """One local cluster for the session: 2 CPUs, no dashboard, a bounded object store."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False)
    # Test hooks travel to the workers by value: this module is not importable there.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(autouse=True)
def one_thread():
    # Each Ray task runs torch with one thread (its one CPU); the local runs compared with
    # them do too, so that every sum is taken in the same order.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    write_dataset(folder, *synthesize(SynthConfig(n_personas=PERSONAS, examples_per_persona=12, seed=5)))
    return folder


def config_for(data: Path, model: str) -> RunConfig:
    return RunConfig(data=str(data), strategy="per_persona", strategy_options={"min_train_rows": 1},
                     model=ModelSpec(name=model), settings=resolve_settings(epochs=2, lr=5e-3), fleet_shard=2)


def executor(spec: ExecutorSpec = ExecutorSpec(kind="ray"), kill: str | None = None):
    from personalab.run.ray_executor import RayExecutor

    return RayExecutor(spec, say=print, setup=(lambda: install_killer(kill)) if kill else None)


def install_barrier(folder: str, count: int) -> None:
    """In the worker: a plan step's task waits, at its start, until ``count`` step tasks have
    started (each leaves a file in ``folder``); if they never do, it fails the plan: the steps
    were not in flight together."""
    from personalab.data.faults import set_fault_hook

    def hook(name, **details):
        if name == "executor.task_started" and details["label"].startswith("step "):
            Path(folder, details["label"].replace(":", "-").replace(" ", "_")).touch()
            deadline = time.monotonic() + 120
            while len(list(Path(folder).iterdir())) < count:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{details['label']}: no other plan step started beside it")
                time.sleep(0.05)

    set_fault_hook(hook)


def install_killer(label_end: str) -> None:
    """In the worker: the task whose label ends with ``label_end`` kills its own worker
    process on its first attempt (as an OOM killer or a lost node would)."""
    from personalab.data.faults import set_fault_hook

    def hook(name, **details):
        if name == "executor.task_started" and details["label"].endswith(label_end) and details["attempt"] == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    set_fault_hook(hook)


def bank_weights(run: Path) -> dict[str, dict]:
    bank = AdapterBank(run / "bank")
    return {name: bank.read_weights(name) for name in bank.names()}


def assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and len(a) == PERSONAS + 1  # and unified
    for name in a:
        for path in a[name]:
            assert torch.equal(a[name][path].A, b[name][path].A), (name, path)
            assert torch.equal(a[name][path].B, b[name][path].B), (name, path)


@pytest.fixture(scope="module")
def local_classifier(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local-classifier")
    torch.set_num_threads(1)
    train_run(config_for(data, "tiny-classifier"), out, progress=False)
    return out


def test_ray_shards_give_the_local_adapters_bit_for_bit(ray_cluster, data, local_classifier, tmp_path):
    """The classifier's head, trained with unified in the driver, reaches the workers too."""
    train_run(config_for(data, "tiny-classifier"), tmp_path, progress=False, executor=executor())
    assert_identical(bank_weights(tmp_path), bank_weights(local_classifier))
    assert training_records(tmp_path)["executor"] == {"kind": "ray", "events": []}


def test_a_worker_killed_on_its_first_attempt_is_retried_and_changes_nothing(ray_cluster, data, local_classifier,
                                                                           tmp_path, capsys):
    train_run(config_for(data, "tiny-classifier"), tmp_path, progress=False, executor=executor(kill="2/3"))
    assert_identical(bank_weights(tmp_path), bank_weights(local_classifier))
    events = training_records(tmp_path)["executor"]["events"]
    assert [(e["task"], e["attempt"], e["action"]) for e in events] == [("shard personas 2/3", 1, "retried")]
    assert "WorkerCrashedError" in events[0]["error"]
    assert "shard personas 2/3: attempt 1 lost" in capsys.readouterr().out  # said as it happens


# ----- plans ----------------------------------------------------------------------------------

def plan_data(data: Path, **extra) -> dict:
    return {"data": str(data), "model": {"name": "tiny-causal-lm"}, "settings": {"epochs": 2, "lr": 5e-3},
            "fleet_shard": 2, "baseline": {"strategy": "unified"},
            "candidates": [{"strategy": "per_persona", "options": {"min_train_rows": 1}}],
            "acceptance": {"n_resamples": 199}, **extra}


def outcome(out: Path) -> dict:
    """What a plan found: every candidate's metrics and comparisons, and the decision."""
    plan = json.loads((out / "plan.json").read_text())
    return {"candidates": [{k: c[k] for k in ("name", "status", "metrics", "comparisons")} for c in plan["candidates"]],
            "decision": plan["decision"]["chosen"], "summary": plan["decision"]["summary"]}


@pytest.fixture(scope="module")
def local_plan(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local-plan")
    torch.set_num_threads(1)
    run_plan(parse_plan(plan_data(data)), out, progress=False)
    return out


def test_retries_off_record_the_failure_and_a_rerun_redoes_only_that_shard(ray_cluster, data, local_plan, tmp_path):
    spec = parse_plan(plan_data(data, executor={"kind": "ray", "max_retries": 0}))
    # A candidate that cannot train is recorded as failed, and the plan goes on without it.
    failed = run_plan(spec, tmp_path, progress=False, executor=executor(spec.executor, kill="2/3"))
    assert failed.candidate("per_persona")["status"] == "failed"
    assert "1 of 3 fleet shard(s) failed: shard personas 2/3" in failed.candidate("per_persona")["reason"]
    assert "retries are off" in failed.candidate("per_persona")["reason"]
    ledger = Ledger(tmp_path / "ledger.sqlite")
    row = ledger.get("train:per_persona")
    ledger.close()
    assert row.status == "failed" and "shard personas 2/3" in row.error and "WorkerCrashedError" in row.error
    run_dir = tmp_path / "runs" / "per_persona"
    first = {n for n in AdapterBank(run_dir / "bank").names() if n.startswith("persona/")}
    assert len(first) == 4  # shards 1 and 3 landed; 2 did not

    # Again, retries on, the same worker death: only shard 2 trains, once retried, and the
    # ledger's training row shows the retry.
    spec = parse_plan(plan_data(data, executor={"kind": "ray", "max_retries": 1}))
    run_plan(spec, tmp_path, progress=False, executor=executor(spec.executor, kill="2/3"))
    trained = {n for n in training_records(run_dir)["training"] if n.startswith("persona/")}
    assert len(trained) == 2 and not trained & first
    ledger = Ledger(tmp_path / "ledger.sqlite")
    row = ledger.get("train:per_persona")
    ledger.close()
    assert row.status == "done" and row.attempts == 2
    assert [(e["task"], e["action"]) for e in row.metrics["executor"]["events"]] == [("shard personas 2/3", "retried")]
    assert outcome(tmp_path) == outcome(local_plan)


CHILD = """
import json, signal, sys
from pathlib import Path
from personalab.data.faults import set_fault_hook
from personalab.plan import parse_plan, run_plan
import torch

torch.set_num_threads(1)
plan, out = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])


def stop(name, **details):
    if PAUSE(name, details):
        (out / ".paused").write_text("paused")
        while True:
            signal.pause()


set_fault_hook(stop)
run_plan(parse_plan(plan), out, progress=False)
"""
AFTER_FIRST_SHARD = 'lambda name, d: name == "fleet.shard_saved" and d["shard"] == 1 and "per_persona" in str(d["run"])'


def kill_the_driver(tmp_path: Path, plan: dict, pause: str) -> Path:
    """Run ``plan`` in a driver process of its own, kill it (SIGKILL) where ``pause`` (a fault
    point predicate, as source) says, and return the plan folder it left."""
    out = tmp_path / "plan"
    out.mkdir()
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    (tmp_path / "child.py").write_text(CHILD.replace("PAUSE(", f"({pause})("))
    child = subprocess.Popen([sys.executable, str(tmp_path / "child.py"), str(tmp_path / "plan.json"), str(out)],
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while not (out / ".paused").exists():
        if child.poll() is not None:
            pytest.fail(f"the plan's driver ended (exit {child.returncode}) before pausing:\n{child.stderr.read()}")
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail("the plan's driver never reached its pause point")
        time.sleep(0.1)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stderr.close()
    return out


def test_a_plan_whose_ray_driver_is_killed_resumes_to_the_local_result(ray_cluster, data, local_plan, tmp_path):
    plan = plan_data(data, executor={"kind": "ray", "address": ray_cluster})
    out = kill_the_driver(tmp_path, plan, AFTER_FIRST_SHARD)

    landed = {n for n in AdapterBank(out / "runs" / "per_persona" / "bank").names() if n.startswith("persona/")}
    assert len(landed) >= 2  # at least the shard it paused after
    spec = parse_plan(plan)
    run_plan(spec, out, progress=False, executor=executor(spec.executor))
    trained = {n for n in training_records(out / "runs" / "per_persona")["training"] if n.startswith("persona/")}
    assert not trained & landed and len(trained) == PERSONAS - len(landed)  # only the unfinished shards
    assert outcome(out) == outcome(local_plan)


# ----- plan steps as tasks ----------------------------------------------------------------------

TWO = {"candidates": [{"strategy": "per_persona", "options": {"min_train_rows": 1}},
                      {"name": "per_persona_stacked", "strategy": "per_persona",
                       "options": {"min_train_rows": 1, "on_top_of": "unified"}}]}


@pytest.fixture(scope="module")
def local_two(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local-two")
    torch.set_num_threads(1)
    run_plan(parse_plan(plan_data(data, **TWO)), out, progress=False)
    return out


def recording(spec: ExecutorSpec, setup):
    """A Ray executor that keeps what crosses the wire: every task's call and every shared value."""
    from personalab.run.ray_executor import RayExecutor

    class Recording(RayExecutor):
        payloads: list[bytes] = []
        labels: list[str] = []

        def share(self, value):
            self.payloads.append(ray.cloudpickle.dumps(value))
            return super().share(value)

        def submit(self, fn, *args, label=""):
            self.payloads.append(ray.cloudpickle.dumps((fn, args)))
            self.labels.append(label)
            return super().submit(fn, *args, label=label)

    return Recording(spec, say=print, setup=setup)


def test_independent_candidates_run_side_by_side_as_ray_tasks_to_the_local_result(ray_cluster, data, local_two,
                                                                                  tmp_path):
    out, started = tmp_path / "plan", tmp_path / "started"
    started.mkdir()
    spec = parse_plan(plan_data(data, executor={"kind": "ray"}, **TWO))
    # Both candidates' tasks must be running at once, or neither gets past its start.
    ray_executor = recording(spec.executor, lambda: install_barrier(str(started), 2))
    run_plan(spec, out, progress=False, executor=ray_executor)
    assert outcome(out) == outcome(local_two)
    for name in ("unified", "per_persona", "per_persona_stacked"):
        for split in ("val", "test"):
            predictions = Path("runs", name, "eval", split, "predictions.jsonl")
            assert (out / predictions).read_bytes() == (local_two / predictions).read_bytes()
        here, there = bank_weights(local_two / "runs" / name), bank_weights(out / "runs" / name)
        assert here.keys() == there.keys()
        for adapter in here:
            assert all(torch.equal(here[adapter][p].A, there[adapter][p].A) and
                       torch.equal(here[adapter][p].B, there[adapter][p].B) for p in here[adapter])

    ledger = Ledger(out / "ledger.sqlite")
    rows = {row.step: row for row in ledger.rows()}
    ledger.close()
    assert rows["train:unified"].task == {}  # the baseline ran in the driver: the others reuse its adapter
    tasks = [rows[f"{step}"].task for name in ("per_persona", "per_persona_stacked")
             for step in (f"train:{name}", f"evaluate:{name}@test")]
    assert all(task.get("task_id") and task["label"] == f"step train:{name}"
               for task, name in zip(tasks, ("per_persona",) * 2 + ("per_persona_stacked",) * 2))
    assert tasks[0]["task_id"] != tasks[2]["task_id"]
    assert sorted(p.name for p in started.iterdir()) == ["step_train-per_persona", "step_train-per_persona_stacked"]
    # The stacked candidate took unified from the baseline's run, named by its place in the plan.
    assert training_records(out / "runs" / "per_persona_stacked")["reused"] == {"unified": "runs/unified"}

    # Workers get no path into the plan: not its folder, bank or ledger.
    assert ray_executor.payloads
    for payload in ray_executor.payloads:
        assert str(out).encode() not in payload
        assert b"AdapterBank" not in payload and b"Ledger" not in payload and b"FitContext" not in payload


def test_a_killed_driver_resubmits_only_the_unfinished_candidate(ray_cluster, data, local_two, tmp_path):
    """Killed once the first candidate's run is in place (both went out together): the next
    run keeps it, and trains only the second."""
    plan = plan_data(data, executor={"kind": "ray", "address": ray_cluster}, **TWO)
    out = kill_the_driver(tmp_path, plan, 'lambda name, d: d.get("step") == "compare:per_persona@val"')
    ledger = Ledger(out / "ledger.sqlite")
    before = {row.step: row for row in ledger.rows()}
    ledger.close()
    assert before["train:per_persona"].status == "done" and before["train:per_persona"].task  # ran as a task
    assert "train:per_persona_stacked" not in before  # sent out, never landed

    spec = parse_plan(plan)
    ray_executor = recording(spec.executor, None)
    run_plan(spec, out, progress=False, executor=ray_executor)
    ledger = Ledger(out / "ledger.sqlite")
    after = {row.step: row for row in ledger.rows()}
    ledger.close()
    for step in ("train:unified", "train:per_persona", "evaluate:per_persona@val", "evaluate:per_persona@test"):
        assert after[step].attempts == 1 and after[step].finished == before[step].finished, step  # kept
    assert after["train:per_persona_stacked"].attempts == 1
    # Alone now, it ran in this driver, its fleet shards the only tasks submitted.
    assert after["train:per_persona_stacked"].task == {}
    assert ray_executor.labels == [f"shard personas {n}/3" for n in (1, 2, 3)]
    assert outcome(out) == outcome(local_two)
