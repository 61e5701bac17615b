"""Scale of fleets (../shared/BENCHMARK.md, section 7): does a fleet's memory stay flat, and its
time per persona constant, as the number of personas grows?

Setup: N synthetic personas (N in 250, 1000, 4000) x 20 train rows (and 5 val rows each, for
the per-adapter early stopping every fleet does), one epoch, LoRA r=8 on query and value,
batch 8 per persona, the fleet sharded at ``--shard`` adapters (default 64, personalab's own
default). Each N runs in a process of its own, through personalab's own sharded path
(``strategies.steps.train_sharded``: shards trained one at a time on the multi-LoRA engine,
each saved to an adapter bank on disk in one commit and freed), with the tiny classifier and
with the embedded MiniLM.

Reported per model and N: the process's peak RSS (``getrusage``: the model, the rows and the
training), its RSS before training (model and rows loaded), the training seconds and seconds
per persona, and the bank's bytes on disk. ``peak_rss_ratio`` and ``seconds_per_persona_ratio``
compare the largest N with the smallest (same shard size); ``cpu_seconds_per_persona`` (the
process's CPU time, all its threads) and its ratio are moved less by other work on a shared
machine than wall-clock time, which moved by up to 70 % from run to run on a busy 2-core one. Targets (issue 14): the peak RSS
ratio at most 1.25, seconds per persona within 0.8-1.25. The rows themselves (80,000 at
N=4000) are in memory at every size: that part of the growth is the data, not the fleet.

    python bench/scale.py --out runs/bench/scale.json        # both models, N = 250, 1000, 4000
    python bench/scale.py --quick                            # tiny classifier, N = 250, 1000, 4000
    python bench/scale.py --quick --sizes 20 80              # smoke test (seconds)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import environment, load_backend, persona_rows, resolve_device
from personalab.bank import AdapterBank
from personalab.strategies.base import FitContext
from personalab.strategies.steps import train_sharded
from personalab.train.fleet import Member
from personalab.train.presets import resolve_settings

MODELS = {"tiny_classifier": "tiny-classifier", "minilm": "minilm"}
SIZES = (250, 1000, 4000)
TRAIN_ROWS, VAL_ROWS = 20, 5


def measure(model: str, personas: int, shard: int, device: str, seed: int) -> dict:
    """One size, in this process: train the fleet into a bank; what it cost."""
    data = persona_rows(personas, TRAIN_ROWS, VAL_ROWS)
    backend = load_backend(model, data, device, seed=seed)
    settings = resolve_settings(epochs=1, batch_size=8, patience=1)
    members = [Member(f"persona/{pid}", data.train[pid], data.val[pid]) for pid in data.persona_ids]
    with tempfile.TemporaryDirectory() as folder:
        context = FitContext(dataset=None, backend=backend, bank=AdapterBank(Path(folder) / "bank"),
                             settings=settings, run_dir=Path(folder), seed=seed, progress=False, fleet_shard=shard)
        before = peak_rss_mb()
        start, cpu_start = time.perf_counter(), time.process_time()
        train_sharded(context, members, {m.name: m.name for m in members}, settings, False, "fleet")
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        bank_bytes = sum(f.stat().st_size for f in (Path(folder) / "bank").rglob("*") if f.is_file())
    return {"personas": personas, "peak_rss_mb": peak_rss_mb(), "rss_before_training_mb": before,
            "seconds": seconds, "seconds_per_persona": seconds / personas,
            "cpu_seconds_per_persona": cpu_seconds / personas, "bank_bytes": bank_bytes}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def in_child(model: str, personas: int, args) -> dict:
    """``measure`` in a fresh process: each size's peak RSS is its own."""
    command = [sys.executable, __file__, "--child", model, str(personas), "--shard", str(args.shard),
               "--device", args.device, "--seed", str(args.seed)]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{model} at N={personas} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_model(key: str, args) -> dict:
    sizes = [in_child(MODELS[key], n, args) for n in args.sizes]
    for size in sizes:
        print(f"  {key}: N={size['personas']} peak {size['peak_rss_mb']:.0f} MB, "
              f"{size['seconds_per_persona'] * 1000:.1f} ms/persona", file=sys.stderr)
    first, last = sizes[0], sizes[-1]
    return {"sizes": sizes, "peak_rss_ratio": last["peak_rss_mb"] / first["peak_rss_mb"],
            "seconds_per_persona_ratio": last["seconds_per_persona"] / first["seconds_per_persona"],
            "cpu_seconds_per_persona_ratio": last["cpu_seconds_per_persona"] / first["cpu_seconds_per_persona"]}


def print_table(results: dict) -> None:
    print(f"{'model':16} {'N':>5} {'peak MB':>8} {'before MB':>9} {'ms/persona':>10} {'CPU ms':>7} {'bank MB':>8}")
    for key in MODELS:
        if key not in results:
            continue
        for size in results[key]["sizes"]:
            print(f"{key:16} {size['personas']:>5} {size['peak_rss_mb']:>8.0f} {size['rss_before_training_mb']:>9.0f} "
                  f"{size['seconds_per_persona'] * 1000:>10.1f} {size['cpu_seconds_per_persona'] * 1000:>7.1f} "
                  f"{size['bank_bytes'] / 2**20:>8.1f}")
        print(f"{key:16} ratios {args_sizes(results)}: peak RSS {results[key]['peak_rss_ratio']:.3f}, "
              f"seconds per persona {results[key]['seconds_per_persona_ratio']:.3f} "
              f"(CPU seconds {results[key]['cpu_seconds_per_persona_ratio']:.3f})")


def args_sizes(results: dict) -> str:
    sizes = results["config"]["sizes"]
    return f"N={sizes[-1]} / N={sizes[0]}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the tiny classifier alone")
    parser.add_argument("--out", type=Path, help="write the results as JSON to this file")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="numbers of personas")
    parser.add_argument("--shard", type=int, default=64, help="adapters per fleet shard (fleet_shard)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--child", nargs=2, metavar=("MODEL", "N"), help=argparse.SUPPRESS)  # one size, here
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]), args.shard, device, args.seed)))
        return
    args.device = device
    keys = ["tiny_classifier"] if args.quick else list(MODELS)
    results: dict = {key: run_model(key, args) for key in keys}
    results["config"] = {"benchmark": "scale (BENCHMARK.md section 7)", "quick": args.quick, "sizes": args.sizes,
                         "shard": args.shard, "train_rows": TRAIN_ROWS, "val_rows": VAL_ROWS, "epochs": 1,
                         "batch_size": 8, "models": {key: MODELS[key] for key in keys}}
    results["environment"] = environment(device)
    print_table(results)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"results: {args.out}")


if __name__ == "__main__":
    main()
