"""Shared pieces of the benchmarks in this folder (see ../shared/BENCHMARK.md): the persona rows,
the models under test, the device, timing, the environment record, the table and the JSON.

The benchmark scripts import this as ``common`` (Python puts a script's own folder first on
``sys.path``), so run them as ``python bench/NAME.py`` from the repository root.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from personalab.data.schema import Example
from personalab.engine import LoraWeights
from personalab.data.synth import SynthConfig, synthesize
from personalab.models import ModelSpec, build_backend
from personalab.train.fleet import new_lora_weights

# Benchmark model key -> default personalab model name (overridable with --causal-lm /
# --classifier, e.g. a larger local model on a GPU).
MODELS = {"tiny_causal_lm": "tiny-causal-lm", "classifier": "minilm"}
SYNTH_SEED = 0


@dataclass
class PersonaRows:
    choices: tuple[str, ...]
    profiles: dict[str, str]
    train: dict[str, list[Example]]  # persona id -> its rows, in the order synth made them
    val: dict[str, list[Example]]

    @property
    def persona_ids(self) -> list[str]:
        return list(self.train)


def persona_rows(n_personas: int, n_train: int, n_val: int = 0) -> PersonaRows:
    """``n_personas`` synthetic personas (readable English inputs about eight topics, labels
    like / dislike), each with exactly its first ``n_train`` train and ``n_val`` val rows.
    Deterministic: the synth generator is seeded and the split is a hash of each row."""
    per_persona = min(288, 3 * (n_train + n_val) + 20)  # the split gives ~60% train, ~20% val
    spec, personas, examples = synthesize(
        SynthConfig(n_personas=n_personas, examples_per_persona=per_persona, seed=SYNTH_SEED)
    )
    split = {"train": defaultdict(list), "val": defaultdict(list)}
    for row in examples:
        if row.split in split:
            split[row.split][row.persona_id].append(row)
    ids = [p.persona_id for p in personas]
    short = [p for p in ids if len(split["train"][p]) < n_train or len(split["val"][p]) < n_val]
    if short:
        raise RuntimeError(f"personas {short[:5]} have too few rows; raise examples_per_persona")
    return PersonaRows(
        choices=tuple(spec.choices),
        profiles={p.persona_id: p.profile for p in personas},
        train={p: split["train"][p][:n_train] for p in ids},
        val={p: split["val"][p][:n_val] for p in ids},
    )


def random_adapters(engine, targets, names, settings, b_std: float, seed: int) -> dict[str, dict]:
    """Seeded LoRA weights per adapter name, B drawn with std ``b_std`` (a fresh LoRA's B is 0:
    every adapter would act as the base model)."""
    adapters = {}
    for i, name in enumerate(names):
        weights = new_lora_weights(engine, targets, settings, seed=seed * 100_003 + i)
        generator = torch.Generator().manual_seed(seed * 100_003 + i)
        adapters[name] = {path: LoraWeights(w.A, torch.randn(w.B.shape, generator=generator) * b_std, w.scale)
                          for path, w in weights.items()}
    return adapters


def model_names(args: argparse.Namespace) -> dict[str, str]:
    names = {"tiny_causal_lm": args.causal_lm, "classifier": args.classifier}
    return {key: names[key] for key in args.models}


def load_backend(name: str, data: PersonaRows, device: str, seed: int = 0):
    """A fresh base model (and backend) for one arm; a classifier's new head is seeded, so
    every arm gets the same head."""
    return build_backend(ModelSpec(name=name, device=device), data.choices, data.profiles, seed=seed)


def resolve_device(choice: str) -> str:
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    return choice


def setup(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Apply ``--threads`` and pick the device; ``(device, environment record)``."""
    threads = args.threads if args.threads is not None else (1 if args.quick else None)
    if threads is not None:
        torch.set_num_threads(threads)
    device = resolve_device(args.device)
    return device, environment(device)


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(device: str, work: Callable[[], Any]) -> tuple[Any, float]:
    """``(work(), seconds)``: wall time by ``time.perf_counter``, the device synchronized
    before the start and before the end (CUDA runs asynchronously)."""
    synchronize(device)
    start = time.perf_counter()
    result = work()
    synchronize(device)
    return result, time.perf_counter() - start


def environment(device: str) -> dict[str, Any]:
    import peft
    import transformers

    import personalab

    record = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "personalab": getattr(personalab, "__version__", "unknown"),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor() or "cpu",
    }
    if hasattr(os, "getloadavg"):
        record["load_average_1m_at_start"] = os.getloadavg()[0]  # the machine is shared
    return record


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test (not for results)")
    parser.add_argument("--out", type=Path, help="write the full results as JSON to this file")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), help="which models to run")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's own; 1 under --quick). "
                        "On a shared CPU, threads beyond the idle cores make timings slow and erratic")
    parser.add_argument("--causal-lm", default=MODELS["tiny_causal_lm"], help="model for the tiny_causal_lm slot")
    parser.add_argument("--classifier", default=MODELS["classifier"], help="model for the classifier slot")
    return parser


def finish(results: dict[str, Any], out: Path | None, columns: Sequence[tuple[str, str]]) -> None:
    """Print one table row per model (``columns``: (key in the model's results, header)),
    and write ``results`` as JSON to ``out`` when given."""
    models = [k for k in MODELS if k in results]
    table = [["model", *(header for _, header in columns)]]
    for model in models:
        table.append([model, *(_cell(results[model].get(key)) for key, _ in columns)])
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for i, row in enumerate(table):
        print("  ".join(cell.rjust(w) if j else cell.ljust(w) for j, (cell, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(f"results: {out}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)
