"""Merging benchmark (../shared/BENCHMARK.md, section 4): the exact weighted merge of 262 rank-8
adapters of the embedded classifier (all-MiniLM-L6-v2) into one adapter.

Adapters: LoRA r=8 (alpha 16, scale 2) on the default preset's targets (attention query and
value: 12 layers of 384 x 384), A drawn as PEFT draws it (Kaiming-uniform) and B random
(std ``--b-std``), seeded per adapter. They are random, not trained: merging is linear
algebra on the factors and its cost and accuracy do not depend on what training would have
put in them; training 262 adapters is not what this benchmark measures. Merge weights are a
softmax over seeded random scores, as the playbook's softmax(val x cos) weights would be.

Measured (``time.perf_counter``; on CUDA the device is synchronized before each reading):

- exact: ``merge_exact`` (concatenation; rank 262 x 8 = 2096, scale 1): wall time, and the
  relative Frobenius error ``||dW_merged - sum_i w_i s_i B_i A_i||_F / ||sum ...||_F`` of
  every merged layer, the reference formed directly in float64 (must be < 1e-5);
- svd: ``merge_svd`` to each ``--svd-ranks`` rank: wall time, the error it reports (from the
  discarded singular values) and the same error measured directly;
- bank: writing the exact merge into an adapter bank (``save_weights``: PEFT folder,
  checks, manifest), reading it back (``read_peft_adapter``; checked bit-identical) and
  loading it into the engine (``load_engine``); and ``materialize`` end to end from a bank
  holding all sources (read them, merge, check, write), after filling that bank (untimed).

    python bench/merge.py --out runs/bench/merge.json   # full size
    python bench/merge.py --quick                      # smoke test only (16 adapters)
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import tempfile
from pathlib import Path

import torch

from common import environment, resolve_device, timed
from personalab.bank import AdapterBank
from personalab.bank.merge import materialize
from personalab.engine import LoraWeights, merge_exact, merge_svd, pad_rank, read_peft_adapter, relative_errors
from personalab.models import ModelSpec, build_backend
from personalab.train.presets import resolve_settings

FULL, QUICK = 262, 16
LIMIT = 1e-5  # BENCHMARK.md: exact merges must be below this


def random_adapters(shapes: dict[str, tuple[int, int]], n: int, rank: int, scale: float, b_std: float,
                    seed: int) -> list[dict[str, LoraWeights]]:
    adapters = []
    for i in range(n):
        generator = torch.Generator().manual_seed(seed * 100_003 + i)
        adapter = {}
        for path, (fan_in, fan_out) in shapes.items():
            bound = 1.0 / math.sqrt(fan_in)  # PEFT's kaiming_uniform_(a=sqrt(5)) for A
            a = (torch.rand(rank, fan_in, generator=generator) * 2 - 1) * bound
            b = torch.randn(fan_out, rank, generator=generator) * b_std
            adapter[path] = LoraWeights(a, b, scale)
        adapters.append(adapter)
    return adapters


def merge_weights(n: int, seed: int) -> list[float]:
    generator = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(n, generator=generator, dtype=torch.float64) * 2, 0).tolist()


def on_device(adapters, device: str):
    return [{p: LoraWeights(w.A.to(device), w.B.to(device), w.scale) for p, w in a.items()} for a in adapters]


def bank_timings(backend, merged, adapters, weights, device: str) -> dict:
    """Write the merge into a bank, read it back, load it into the engine; then materialize."""
    out: dict = {}
    base_path = str(backend.resolved.path)
    cpu = {p: LoraWeights(w.A.cpu(), w.B.cpu(), w.scale) for p, w in pad_rank(merged).items()}
    with tempfile.TemporaryDirectory() as folder:
        bank = AdapterBank(Path(folder) / "bank")
        _, out["bank_write_seconds"] = timed(device, lambda: bank.save_weights("merged/all", cpu, base_path))
        back, out["bank_read_seconds"] = timed(device, lambda: read_peft_adapter(bank.path("merged/all")))
        out["bank_round_trip_bit_identical"] = all(
            torch.equal(back[p].A, w.A) and torch.equal(back[p].B, w.B) and back[p].scale == w.scale
            for p, w in cpu.items())
        model = copy.deepcopy(backend.model)
        _, out["bank_load_engine_seconds"] = timed(device, lambda: bank.load_engine(model, ["merged/all"]))
        names = [f"persona/{i:04d}" for i in range(len(adapters))]
        _, out["bank_fill_seconds"] = timed(device, lambda: [
            bank.save_weights(n, a, base_path) for n, a in zip(names, adapters)])
        result, out["materialize_seconds"] = timed(device, lambda: materialize(bank, names, weights, "merged/m"))
        out["materialize_max_rel_error"] = result.max_error
    return out


def run(args) -> dict:
    device = resolve_device(args.device)
    n = args.n_adapters or (QUICK if args.quick else FULL)
    settings = resolve_settings(r=args.rank)  # the default preset: query and value
    backend = build_backend(ModelSpec(name=args.classifier, device=device), ("no", "yes"), {}, seed=args.seed)
    targets = backend.target_modules(settings.target_roles)
    shapes = {path: (m.in_features, m.out_features) for path, m in backend.model.named_modules()
              if isinstance(m, torch.nn.Linear) and any(path == t or path.endswith("." + t) for t in targets)}
    adapters = random_adapters(shapes, n, settings.r, settings.alpha / settings.r, args.b_std, args.seed)
    weights = merge_weights(n, args.seed)
    on = on_device(adapters, device)
    print(f"  {n} adapters x {len(shapes)} layers, rank {settings.r}, on {device}", file=sys.stderr)

    merged, seconds = timed(device, lambda: merge_exact(on, weights))
    errors, check_seconds = timed(device, lambda: relative_errors(merged, on, weights))
    svd = {}
    for rank in args.svd_ranks:
        (svd_merged, reported), svd_seconds = timed(device, lambda: merge_svd(on, weights, rank))
        measured = relative_errors(svd_merged, on, weights)
        svd[str(rank)] = {
            "seconds": svd_seconds,
            "max_rel_error": max(reported.values()),
            "max_rel_error_measured": max(measured.values()),
            "max_reported_vs_measured_diff": max(abs(reported[p] - measured[p]) for p in reported),
            "rel_errors": reported,
        }
    first_svd = svd[str(args.svd_ranks[0])] if svd else {}
    return {
        "seconds": seconds,
        "max_rel_error_exact": max(errors.values()),
        "max_rel_error_svd": first_svd.get("max_rel_error"),
        "svd_rank": args.svd_ranks[0] if svd else None,
        "n_adapters": n,
        "rank": settings.r,
        "layers": len(shapes),
        "merged_rank": max(w.rank for w in merged.values()),
        "exact_below_limit": max(errors.values()) < LIMIT,
        "details": {
            "check_seconds": check_seconds,
            "exact_rel_errors": errors,
            "svd": svd,
            "layer_shapes": {p: list(s) for p, s in shapes.items()},
            **bank_timings(backend, merged, adapters, weights, device),
        },
    }


def print_table(results: dict) -> None:
    d = results["details"]
    rows = [("exact merge", results["seconds"], results["merged_rank"], results["max_rel_error_exact"])]
    rows += [(f"svd merge r={r}", s["seconds"], int(r), s["max_rel_error"]) for r, s in d["svd"].items()]
    rows += [("bank write", d["bank_write_seconds"], None, None), ("bank read", d["bank_read_seconds"], None, None),
             ("bank load_engine", d["bank_load_engine_seconds"], None, None),
             ("materialize (exact)", d["materialize_seconds"], None, d["materialize_max_rel_error"])]
    print(f"{results['n_adapters']} adapters x {results['layers']} layers, rank {results['rank']}")
    print(f"{'step':<20} {'seconds':>9} {'rank':>6} {'max rel error':>14}")
    print(f"{'-' * 20} {'-' * 9} {'-' * 6} {'-' * 14}")
    for step, seconds, rank, error in rows:
        print(f"{step:<20} {seconds:>9.4f} {'-' if rank is None else rank:>6} "
              f"{'-' if error is None else format(error, '.3g'):>14}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK} adapters, 1 thread: a smoke test only")
    parser.add_argument("--out", type=Path, help="write the full results as JSON to this file")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own; 1 under --quick)")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-adapters", type=int, help=f"adapters to merge (default {FULL}; {QUICK} with --quick)")
    parser.add_argument("--rank", type=int, default=8, help="rank of every source adapter")
    parser.add_argument("--svd-ranks", type=int, nargs="*", default=[8, 64], help="ranks of the SVD merges")
    parser.add_argument("--b-std", type=float, default=0.02, help="std of the random LoRA B weights")
    parser.add_argument("--classifier", default="minilm", help="the base model (personalab model name or path)")
    args = parser.parse_args(argv)
    threads = args.threads if args.threads is not None else (1 if args.quick else None)
    if threads is not None:
        torch.set_num_threads(threads)
    env = environment(resolve_device(args.device))  # the load average before the work
    results = run(args)
    results["config"] = {"benchmark": "merge (BENCHMARK.md section 4)", "quick": args.quick, "seed": args.seed,
                         "svd_ranks": args.svd_ranks, "b_std": args.b_std, "classifier": args.classifier,
                         "lora": {"r": args.rank, "alpha": resolve_settings().alpha, "targets": ["query", "value"]},
                         "adapters": "random (seeded), not trained", "weights": "softmax(2 * seeded normal)"}
    results["environment"] = env
    print_table(results)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"results: {args.out}")


if __name__ == "__main__":
    main()
