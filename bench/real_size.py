"""A model of real size (../shared/BENCHMARK.md, section 8): section 2's arms A/B/C on the
Qwen2.5-0.5B architecture, built from its configuration with random weights.

Model: Qwen2ForCausalLM with Qwen2.5-0.5B's configuration written in below (hidden 896, 24
layers, 14 attention heads, 2 key-value heads, MLP 4864, vocabulary 151936, tied embeddings,
RoPE theta 1e6, 32768 positions, RMSNorm eps 1e-6; checked against the model's config.json on
the Hugging Face hub), random weights (initializer range 0.02), nothing downloaded. The
tokenizer is personalab's locally trained byte-level BPE (800 tokens, ChatML template): the
model keeps its 151936-row embedding and output projection, of which the prompts use the first
800 ids. Speed and memory do not depend on the weights' values; the losses are those of a random
model and say nothing about quality. ``--layers N`` keeps the first N layers (a smoke run on a
CPU); the folder is built once per N under $PERSONALAB_CACHE/real-size/ (bfloat16 safetensors).

Arms (bench/fleet_training.py's own functions, on the same rows and settings): A, the PEFT loop
a user writes, one persona after another; B, personalab's fleet training (``--rows-per-step``
rows per pass); C, one unified adapter on all rows (the floor). 64 personas x 30 train rows
(5 val rows each), 3 epochs, LoRA r 8 on q/v, batch 16, as section 2. Dtype: bfloat16 on CUDA,
float32 on the CPU (``--dtype`` overrides); each arm loads a fresh base model.

Reported per arm: seconds, padded input tokens per second (training and validation passes,
the arithmetic each did), peak memory (CUDA: ``torch.cuda.max_memory_allocated`` during the
arm; CPU: the process's peak resident set during the arm, sampled every 5 ms; both include
loading the base model, and on the CPU whatever the process held before the arm),
and a_over_b = A/B, b_over_c = B/C, plus personas_per_hour_b (B's personas / seconds x 3600:
what docs/scale.md extrapolates from). Ratios come from one run; compare them, not absolute
times, on a shared machine.

    python bench/real_size.py --layers 2 --personas 8 --rows 10 --epochs 1 --device cpu   # CPU smoke run
    python bench/real_size.py --out runs/bench/real_size.json                            # full size (GPU)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch
import transformers

from common import environment, persona_rows, resolve_device, synchronize
from fleet_training import TokenCounter, arm_a, arm_b, arm_c
from personalab.data.atomic import move_folder_into_place, staging_folder
from personalab.models import ModelSpec, build_backend
from personalab.models.tiny import tiny_cache_dir, train_byte_level_tokenizer
from personalab.train.presets import resolve_settings

# Qwen/Qwen2.5-0.5B config.json (the Instruct model has the same architecture).
QWEN25_05B = dict(
    hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
    intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True, rope_theta=1_000_000.0,
    max_position_embeddings=32768, rms_norm_eps=1e-6, hidden_act="silu", initializer_range=0.02,
)
BUILD_VERSION = 1  # bump when the folder's contents change


def build_model(folder: Path, layers: int, seed: int = 0) -> None:
    """Qwen2.5-0.5B's architecture with ``layers`` layers and random weights, and the local
    tokenizer, saved as an ordinary model folder (bfloat16 weights: half the disk)."""
    tokenizer = train_byte_level_tokenizer(chat_template=True)
    tokenizer.save_pretrained(str(folder))
    config = transformers.Qwen2Config(**{**QWEN25_05B, "num_hidden_layers": layers},
                                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                      bos_token_id=None)
    # Rope settings moved between transformers versions; make sure the theta is the model's.
    if isinstance(getattr(config, "rope_parameters", None), dict):
        config.rope_parameters["rope_theta"] = QWEN25_05B["rope_theta"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(str(folder))


def model_folder(layers: int) -> Path:
    """The model folder for ``layers`` layers, built on first use (renamed into place)."""
    parent = tiny_cache_dir().parent / "real-size"
    target = parent / f"qwen2.5-0.5b-arch-L{layers}-v{BUILD_VERSION}"
    if not target.is_dir():
        with staging_folder(parent, prefix=f".{target.name}-") as staging:
            built = staging / "model"
            built.mkdir()
            build_model(built, layers)
            move_folder_into_place(built, target)
    return target


class PeakMemory:
    """Peak memory during a ``with`` block, in bytes: CUDA allocations, or the process's
    resident set on the CPU (sampled: a peak shorter than the interval can be missed)."""

    def __init__(self, device: str, interval: float = 0.005):
        self.device, self.interval, self.peak = device, interval, 0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakMemory":
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        else:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        process = psutil.Process(os.getpid())
        while not self._stop.is_set():
            self.peak = max(self.peak, process.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        if self.device.startswith("cuda"):
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()


@dataclass
class Arm:
    seconds: float
    tokens: int
    peak_bytes: int
    result: object


def run_arm(label: str, spec: ModelSpec, data, work) -> Arm:
    """One arm on a freshly loaded base: timed (device synchronized; loading not included) with
    its memory peak (loading included: the base model is part of what an arm holds)."""
    gc.collect()  # the previous arm's model, so that it does not count here
    with PeakMemory(spec.device) as memory:
        backend = build_backend(spec, data.choices, data.profiles)
        counter = TokenCounter(backend)
        torch.manual_seed(0)  # dropout masks
        synchronize(spec.device)
        start = time.perf_counter()
        result = work(backend)
        synchronize(spec.device)
        seconds = time.perf_counter() - start
    print(f"  arm {label}: {seconds:.1f} s, {counter.tokens} tokens, peak {memory.peak / 2**30:.2f} GiB",
          file=sys.stderr)
    return Arm(seconds, counter.tokens, memory.peak, result)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=QWEN25_05B["num_hidden_layers"],
                        help="decoder layers to keep (24: the real model; 2: a CPU smoke run)")
    parser.add_argument("--personas", type=int, default=64)
    parser.add_argument("--rows", type=int, default=30, help="train rows per persona")
    parser.add_argument("--val-rows", type=int, default=5, help="val rows per persona")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rows-per-step", type=int, default=64, help="arm B: rows per fleet forward pass")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda or cuda:N")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                        help="base model dtype (default: bfloat16 on CUDA, float32 on the CPU)")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="in every arm")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--out", type=Path, help="write the full results as JSON to this file")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    # PEFT reads transformers' renamed checkpointing property: a deprecation notice per arm.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft)\b")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = args.dtype or ("bfloat16" if device.startswith("cuda") else "float32")
    folder = model_folder(args.layers)
    spec = ModelSpec(name=str(folder), device=device, dtype=dtype, gradient_checkpointing=args.gradient_checkpointing)
    settings = resolve_settings(epochs=args.epochs, batch_size=16, r=8, target_roles=("query", "value"),
                                patience=args.epochs)
    data = persona_rows(args.personas, args.rows, args.val_rows)
    arms = {
        "a": run_arm("a", spec, data, lambda b: arm_a(b, data, settings, seed=0)),
        "b": run_arm("b", spec, data, lambda b: arm_b(b, data, settings, 0, args.rows_per_step)),
        "c": run_arm("c", spec, data, lambda b: arm_c(b, data, settings, seed=0)),
    }
    results = summarize(arms, data, args)
    results["config"] = config_record(args, spec, settings, folder)
    results["environment"] = environment(device)
    print_table(results)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"results: {args.out}")


def summarize(arms: dict[str, Arm], data, args) -> dict:
    out: dict = {}
    for label, arm in arms.items():
        out[f"seconds_{label}"] = arm.seconds
        out[f"input_tokens_{label}"] = arm.tokens
        out[f"tokens_per_second_{label}"] = arm.tokens / arm.seconds
        out[f"peak_memory_gib_{label}"] = arm.peak_bytes / 2**30
    out["a_over_b"] = arms["a"].seconds / arms["b"].seconds
    out["b_over_c"] = arms["b"].seconds / arms["c"].seconds
    out["personas_per_hour_b"] = len(data.persona_ids) / arms["b"].seconds * 3600
    val_a, fleet = arms["a"].result, arms["b"].result
    out["val_loss_a"] = sum(val_a.values()) / len(val_a)  # random weights: a check that both train alike,
    out["val_loss_b"] = sum(r.val_loss[-1] for r in fleet.values()) / len(fleet)  # never a quality figure
    out["val_loss_c"] = arms["c"].result
    return out


def config_record(args, spec: ModelSpec, settings, folder: Path) -> dict:
    parameters = sum(p.numel() for p in transformers.AutoModelForCausalLM.from_pretrained(str(folder)).parameters())
    return {
        "benchmark": "real_size (BENCHMARK.md section 8)",
        "architecture": {**QWEN25_05B, "num_hidden_layers": args.layers},
        "parameters": parameters,
        "weights": "random (initializer_range 0.02), seed 0; nothing downloaded",
        "tokenizer": "personalab's local byte-level BPE (800 tokens, ChatML template)",
        "dtype": spec.dtype, "device": spec.device, "gradient_checkpointing": spec.gradient_checkpointing,
        "personas": args.personas, "train_rows_per_persona": args.rows, "val_rows_per_persona": args.val_rows,
        "rows_per_step_b": args.rows_per_step, "settings": settings.to_dict(),
        "tokens": "padded input tokens of every forward pass (training and validation), per second of the arm",
        "peak_memory": "cuda: max_memory_allocated in the arm; cpu: peak process RSS in the arm (model included)",
    }


def print_table(results: dict) -> None:
    header = f"{'arm':<4} {'seconds':>9} {'tokens/s':>10} {'peak GiB':>9}"
    print(header + "\n" + "-" * len(header))
    for label in "abc":
        print(f"{label.upper():<4} {results[f'seconds_{label}']:>9.1f} {results[f'tokens_per_second_{label}']:>10.0f} "
              f"{results[f'peak_memory_gib_{label}']:>9.2f}")
    print(f"A/B = {results['a_over_b']:.2f}   B/C = {results['b_over_c']:.2f}   "
          f"personas per hour (B) = {results['personas_per_hour_b']:.0f}   "
          f"({results['config']['parameters'] / 1e6:.0f}M parameters, {results['config']['dtype']}, "
          f"{results['config']['device']})")


if __name__ == "__main__":
    main()
