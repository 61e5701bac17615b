"""The executor protocol without a cluster: the local executor, the payload a task elsewhere
would get (no path into the run), and the CLI's clear errors when Ray is missing or its
cluster unreachable (exit 2, no traceback)."""

from __future__ import annotations

import pickle
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from personalab.errors import PersonalabError
from personalab.run.executor import ExecutorSpec, LocalExecutor, executor_spec, make_executor


def test_the_local_executor_runs_each_task_when_its_outcome_is_asked_for():
    ran = []
    executor = LocalExecutor()
    futures = [executor.submit(lambda x: ran.append(x) or x * 2, n) for n in (1, 2, 3)]
    assert ran == []  # nothing yet: one task's memory at a time
    assert [f.result() for f in executor.as_completed(futures)] == [2, 4, 6]
    failing = executor.submit(lambda: 1 / 0)
    assert isinstance(failing.exception(), ZeroDivisionError)
    with pytest.raises(ZeroDivisionError):
        failing.result()


def test_flags_override_the_plan_and_an_address_alone_is_not_ray():
    assert executor_spec() is None  # the default: in this process
    assert executor_spec("ray", "h:1", 2, 0.5).to_dict()["gpus_per_task"] == 0.5
    plan = ExecutorSpec(kind="ray", cpus_per_task=4)
    assert executor_spec(max_retries=0, base=plan) == replace_spec(plan, max_retries=0)
    with pytest.raises(PersonalabError, match="executor kind 'dask'"):
        ExecutorSpec(kind="dask")


def replace_spec(spec, **changes):
    from dataclasses import replace

    return replace(spec, **changes)


@dataclass
class PicklingExecutor(LocalExecutor):
    """Runs each task here, but only after pickling it as a remote executor must: what the
    task is given is exactly what crossed the wire."""

    in_process: bool = False
    kind: str = "pickling"
    payloads: list[bytes] = field(default_factory=list)

    def submit(self, fn, *args, label=""):
        payload = pickle.dumps((fn, args))
        self.payloads.append(payload)
        fn, args = pickle.loads(payload)
        return super().submit(fn, *args, label=label)


def test_tasks_elsewhere_get_no_path_to_the_bank_or_run_and_give_the_same_adapters(synth, tmp_path):
    import torch

    from personalab.bank import AdapterBank
    from personalab.models.base import ModelSpec
    from personalab.run.rundir import RunConfig, train_run
    from personalab.train.presets import resolve_settings

    data = synth
    config = RunConfig(data=str(data), strategy="per_persona", strategy_options={"min_train_rows": 1},
                       model=ModelSpec(name="tiny-classifier"), settings=resolve_settings(epochs=1), fleet_shard=2)
    pickling = PicklingExecutor()
    train_run(config, tmp_path / "elsewhere", progress=False, executor=pickling)
    train_run(config, tmp_path / "here", progress=False)
    assert len(pickling.payloads) == 2  # two shards
    for payload in pickling.payloads:
        assert str(tmp_path).encode() not in payload  # no run folder, bank or ledger path
        assert b"AdapterBank" not in payload and b"Ledger" not in payload and b"FitContext" not in payload
    here, there = AdapterBank(tmp_path / "here" / "bank"), AdapterBank(tmp_path / "elsewhere" / "bank")
    assert here.names() == there.names()
    for name in here.names():
        a, b = here.read_weights(name), there.read_weights(name)
        assert all(torch.equal(a[p].A, b[p].A) and torch.equal(a[p].B, b[p].B) for p in a)


def test_a_damaged_adapter_is_refused_before_the_bank():
    from personalab.strategies.shard_tasks import TrainedAdapter, checked_weights

    with pytest.raises(PersonalabError, match="sha256 mismatch"):
        checked_weights(TrainedAdapter("persona/a", b"xx", "0" * 64, None))


@pytest.fixture
def synth(tmp_path) -> Path:
    from personalab.data import write_dataset
    from personalab.data.synth import SynthConfig, synthesize

    write_dataset(tmp_path / "data", *synthesize(SynthConfig(n_personas=4, examples_per_persona=8, seed=1)))
    return tmp_path / "data"


def cli(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from personalab.cli.main import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def test_ray_missing_is_a_clear_error(synth, tmp_path):
    # A `ray` that cannot be imported, as on a machine without the extra.
    (tmp_path / "noray").mkdir()
    (tmp_path / "noray" / "ray.py").write_text("raise ImportError('No module named ray')\n")
    data = synth
    code = f"import sys; sys.path.insert(0, {str(tmp_path / 'noray')!r}); from personalab.cli.main import main; sys.exit(main())"
    result = subprocess.run([sys.executable, "-c", code, "train", "--data", str(data), "--out", str(tmp_path / "r"),
                             "--model", "tiny-classifier", "--executor", "ray"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "pip install 'personalab[ray]'" in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_cluster_is_a_clear_error(synth, tmp_path):
    pytest.importorskip("ray")
    data = synth
    result = cli("train", "--data", str(data), "--out", str(tmp_path / "r"), "--model", "tiny-classifier",
                 "--executor", "ray", "--ray-address", "127.0.0.1:1")
    assert result.returncode == 2, result.stderr
    assert "cannot reach the Ray cluster at 127.0.0.1:1" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "r" / "bank").exists()  # refused before any work


def test_the_default_path_and_help_never_import_ray():
    code = ("import sys; from personalab.cli.main import main; sys.argv = ['personalab', 'train', '--help'];\n"
            "try: main()\nexcept SystemExit: pass\nassert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=120)


def test_a_worker_keeps_one_base_model_for_the_shards_of_the_same_build():
    from functools import partial

    from personalab.strategies.shard_tasks import worker_backend

    built = []

    first = worker_backend(partial(dict, model="a"))
    assert worker_backend(partial(dict, model="a")) is first  # an equal build call: the model kept
    other = worker_backend(partial(dict, model="b"))
    assert other is not first and worker_backend(partial(dict, model="a")) is not first  # one kept at a time
    assert worker_backend(lambda: built.append(1) or {}) is not worker_backend(lambda: built.append(1) or {})
    assert len(built) == 2  # a build call that cannot be pickled has no identity: built each time
