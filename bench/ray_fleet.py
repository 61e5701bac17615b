"""Distributed execution (../shared/BENCHMARK.md, section 10): the same sharded fleet on the
local executor and on a local Ray cluster of 2 workers on this machine.

Setup: a synthetic dataset of ``--personas`` personas (default 12) x 16 rows, ``per_persona``
on the tiny causal LM, 2 epochs, ``--fleet-shard`` adapters per shard (default 2: 6 shards),
one torch thread everywhere (each task gets one CPU). The unified adapter trains in the driver
in both arms (it is one job, not a fleet).

Reported (JSON on stdout):
- ``local_s`` / ``ray_s``: wall time of ``train_run`` on each executor (cluster already up);
- ``ratio``: ray_s / local_s (above 1: Ray costs more than it gives on this machine);
- ``cluster_start_s``: ``ray.init`` of a private 2-CPU cluster (paid once per run, or never
  when joining a running cluster);
- ``per_task_overhead_s``: the mean round trip of an empty task (submit -> result), and
  ``first_task_s``: a worker's first task, which imports torch and transformers;
- ``identical``: whether every adapter of the Ray run equals the local one bit for bit.

What a 2-core machine can and cannot show: both workers share the 2 cores with the driver (and
here with other users), so the Ray arm cannot be faster; what it shows is the fixed cost a user
pays (cluster start, each worker's imports and model load, a few ms per task) and that the
results are identical. On a node with G GPUs each shard task gets a GPU: with S shards of
t seconds each, the local executor takes S x t, Ray about ceil(S / G) x t + load + start, e.g.
S = 64 shards of t = 60 s (64 Qwen-0.5B adapters each) on G = 8 GPUs: 64 min locally against
8 min + ~1 min of model loads and ~10 s of cluster start, about 7x.

usage: python bench/ray_fleet.py [--personas 12] [--fleet-shard 2] [--out /tmp/ray_fleet]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path


def empty() -> int:
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--personas", type=int, default=12)
    parser.add_argument("--fleet-shard", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    import torch

    from personalab.bank import AdapterBank
    from personalab.data import write_dataset
    from personalab.data.synth import SynthConfig, synthesize
    from personalab.models.base import ModelSpec
    from personalab.run.executor import ExecutorSpec
    from personalab.run.ray_executor import RayExecutor
    from personalab.run.rundir import RunConfig, train_run
    from personalab.train.presets import resolve_settings

    torch.set_num_threads(1)
    out = args.out or Path(tempfile.mkdtemp(prefix="ray_fleet_"))
    shutil.rmtree(out, ignore_errors=True)
    write_dataset(out / "data", *synthesize(SynthConfig(n_personas=args.personas, examples_per_persona=16, seed=5)))
    config = RunConfig(data=str(out / "data"), strategy="per_persona", strategy_options={"min_train_rows": 1},
                       model=ModelSpec(name="tiny-causal-lm"), settings=resolve_settings(epochs=2, lr=5e-3),
                       fleet_shard=args.fleet_shard)

    started = time.perf_counter()
    train_run(config, out / "local", progress=False)
    local_s = time.perf_counter() - started

    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False)
    cluster_start_s = time.perf_counter() - started
    remote = ray.remote(empty).options(num_cpus=1)
    started = time.perf_counter()
    ray.get([remote.remote() for _ in range(2)])  # each worker's start and first task
    first_task_s = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(20):
        ray.get(remote.remote())
    per_task_s = (time.perf_counter() - started) / 20

    executor = RayExecutor(ExecutorSpec(kind="ray"), say=lambda line: None)
    started = time.perf_counter()
    train_run(config, out / "ray", progress=False, executor=executor)
    ray_s = time.perf_counter() - started
    ray.shutdown()

    local, remote_bank = AdapterBank(out / "local" / "bank"), AdapterBank(out / "ray" / "bank")
    identical = local.names() == remote_bank.names() and all(
        torch.equal(a.A, b.A) and torch.equal(a.B, b.B)
        for name in local.names()
        for a, b in zip(local.read_weights(name).values(), remote_bank.read_weights(name).values()))
    shards = -(-args.personas // args.fleet_shard)
    print(json.dumps({"personas": args.personas, "shards": shards, "local_s": round(local_s, 2),
                      "ray_s": round(ray_s, 2), "ratio": round(ray_s / local_s, 2),
                      "cluster_start_s": round(cluster_start_s, 2), "first_task_s": round(first_task_s, 2),
                      "per_task_overhead_s": round(per_task_s, 4), "identical": identical,
                      "cpu_count": os.cpu_count(), "ray": ray.__version__}, indent=2))


if __name__ == "__main__":
    main()
