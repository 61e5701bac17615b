"""Fleet training benchmark (../shared/BENCHMARK.md, section 2): the time to train one LoRA
adapter per persona, three ways, on the same rows, settings and base model.

Setup: 64 personas x 30 train rows (plus 5 val rows each, for the quality check), 3 epochs,
LoRA r=8 (alpha 16, dropout 0.05) on the attention query and value projections, batch size
16, AdamW (lr 5e-4, linear decay, gradient clipping 1.0), no early stopping (patience = epochs,
so every arm does every epoch). A classifier's new head is seeded and frozen in every arm.

- A, the loop a user writes with PEFT alone (written out below, no personalab training code):
  ``get_peft_model`` for the first persona, then ``add_adapter`` / ``set_adapter`` for each
  next one, a new AdamW and linear schedule, and a plain loop over the persona's rows shuffled
  each epoch (batch 16); then its validation loss on its own val rows. Rows become tensors and
  a loss through the backend's ``collate`` / ``loss``, as in B and C, so only the loop differs.
- B, personalab's fleet training: ``train_fleet`` of all adapters at once on the multi-LoRA
  engine; each persona still gets its own batches of 16, its own AdamW state and schedule,
  and ``--rows-per-step`` (default 64) rows of several personas share one forward pass. Its
  time includes its own validation before training and after every epoch. With the causal LM
  each persona's rows in a pass run their shared prompt beginning once (template,
  instruction, profile: ``personalab.models.shared_prefix``), which A and C, written with
  PEFT alone, do not: that is personalab's arithmetic saving, visible in the token counts.
- C, one unified adapter on all rows (the compute floor): arm A's plain PEFT loop on one
  adapter, batch 16; the standard one-adapter LoRA path, with no routing, so that B/C charges
  the engine for all of its overhead. It validates once, at the end, as A does; B validates
  before training and after each epoch (a forward pass over 5 val rows per 30 train rows).
- C64 (context only): C with batches of ``--rows-per-step`` rows, the size of B's forward
  passes: B/C64 separates the engine's overhead from the gain of larger batches.

Timing: ``time.perf_counter`` around the training alone (the adapter set-up included, the
model loading not); each arm gets a freshly loaded base model; on CUDA the device is
synchronized before each reading. Reported: each arm's seconds, a_over_b = A/B, b_over_c =
B/C, b_over_c64, and mean validation losses after the last epoch: A and B as the mean over
personas of each adapter's loss on its own val rows, C on all val rows (plus B - A with its
standard error over personas: B should match A within noise). Ratios come from one run; on
this shared machine compare ratios, not absolute times, and give ``--threads`` no more than
the idle cores (an oversubscribed CPU made a 2-thread run 5-20x slower and erratic). The JSON
also holds each arm's padded input tokens (training and validation; for B a shared prefix
counts once), the arithmetic it did.
``--quick`` (4 personas x 20 rows, 3 val rows, 1 epoch, 1 thread) only checks that it runs.

    python bench/fleet_training.py --out runs/bench/fleet.json        # full size
    python bench/fleet_training.py --quick                            # smoke test only
"""

from __future__ import annotations

import math
import statistics
import sys
from dataclasses import replace

import torch
from peft import LoraConfig, get_peft_model
from transformers import get_linear_schedule_with_warmup

from common import base_parser, finish, load_backend, model_names, persona_rows, setup, timed
from personalab.engine import MultiLoraModel
from personalab.train.fleet import Member, StepBudget, train_fleet
from personalab.train.presets import resolve_settings

FULL = dict(personas=64, train=30, val=5, epochs=3)
QUICK = dict(personas=4, train=20, val=3, epochs=1)


class TokenCounter:
    """Wraps a backend's ``collate`` to count the (padded) input tokens of every batch."""

    def __init__(self, backend):
        self.tokens, self._collate = 0, backend.collate
        backend.collate = self

    def __call__(self, rows, route_ids=None, share_prefixes=False):
        batch = self._collate(rows, route_ids=route_ids, share_prefixes=share_prefixes)
        self.tokens += batch["input_ids"].numel() + (batch["prefix_ids"].numel() if "prefix_ids" in batch else 0)
        return batch


@torch.inference_mode()
def own_val_loss(backend, model, rows) -> float:
    """Mean loss per prediction (per target token for a causal LM) over ``rows``, in eval mode:
    the definition fleet training uses for each member."""
    model.eval()
    sums, counts = backend.loss_terms(model, backend.collate(rows))
    return (sums.sum() / counts.sum()).item()


def arm_a(backend, data, settings, seed: int) -> dict[str, float]:
    """The PEFT loop: one adapter after another. Returns each persona's final val loss."""
    model, val = None, {}
    for i, pid in enumerate(data.persona_ids):
        model = peft_adapter(backend, model, pid, settings)
        peft_loop(backend, model, data.train[pid], settings, torch.Generator().manual_seed(seed * 100_003 + i))
        val[pid] = own_val_loss(backend, model, data.val[pid])
    return val


def peft_adapter(backend, model, name: str, settings):
    """A fresh PEFT adapter ``name`` (on ``model``, or a new PEFT model when None), active."""
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=backend.target_modules(settings.target_roles), bias="none")
    if model is None:
        model = get_peft_model(backend.model, config, adapter_name=name)
    else:
        model.add_adapter(name, config)
    model.set_adapter(name)  # active and trainable; every other adapter frozen
    return model


def peft_loop(backend, model, rows, settings, order: torch.Generator) -> None:
    """The plain loop a user writes: AdamW, a linear schedule, shuffled batches, clipping."""
    params = [p for p in model.parameters() if p.requires_grad]
    steps = math.ceil(len(rows) / settings.batch_size) * settings.epochs
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, 0, steps)
    model.train()
    for _ in range(settings.epochs):
        permutation = torch.randperm(len(rows), generator=order).tolist()
        for start in range(0, len(rows), settings.batch_size):
            batch = backend.collate([rows[j] for j in permutation[start : start + settings.batch_size]])
            loss = backend.loss(model, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, settings.max_grad_norm)
            optimizer.step()
            scheduler.step()


def arm_b(backend, data, settings, seed: int, rows_per_step: int):
    engine = MultiLoraModel(backend.model, backend.target_modules(settings.target_roles))
    members = [Member(pid, data.train[pid], data.val[pid]) for pid in data.persona_ids]
    budget = replace(StepBudget.for_backend(backend), rows=rows_per_step)  # the model's own token bound
    return train_fleet(backend, engine, members, settings, seed=seed, budget=budget, progress=False)


def arm_c(backend, data, settings, seed: int) -> float:
    """One PEFT adapter on all rows, the plain loop (the head stays frozen); its val loss."""
    model = peft_adapter(backend, None, "unified", settings)
    train = [row for pid in data.persona_ids for row in data.train[pid]]
    val = [row for pid in data.persona_ids for row in data.val[pid]]
    peft_loop(backend, model, train, settings, torch.Generator().manual_seed(seed))
    return own_val_loss(backend, model, val)


def run_model(name: str, data, settings, args, device: str) -> dict:
    out: dict = {"model": name}

    def arm(label: str, work) -> object:
        backend = load_backend(name, data, device, seed=args.seed)
        counter = TokenCounter(backend)
        torch.manual_seed(args.seed)  # dropout masks
        result, seconds = timed(device, lambda: work(backend))
        out[f"seconds_{label}"] = seconds
        out[f"input_tokens_{label}"] = counter.tokens  # padded, training and validation
        print(f"  {name}: arm {label} {seconds:.2f} s", file=sys.stderr)
        return result

    val_a = arm("a", lambda b: arm_a(b, data, settings, args.seed))
    fleet = arm("b", lambda b: arm_b(b, data, settings, args.seed, args.rows_per_step))
    unified = arm("c", lambda b: arm_c(b, data, settings, args.seed))
    wide = replace(settings, batch_size=args.rows_per_step)
    unified_wide = arm("c64", lambda b: arm_c(b, data, wide, args.seed))

    ids = data.persona_ids
    val_b = {pid: fleet[pid].val_loss[-1] for pid in ids}  # after the last epoch, as A's
    differences = [val_b[pid] - val_a[pid] for pid in ids]
    out.update(
        a_over_b=out["seconds_a"] / out["seconds_b"],
        b_over_c=out["seconds_b"] / out["seconds_c"],
        b_over_c64=out["seconds_b"] / out["seconds_c64"],
        val_loss_a=statistics.fmean(val_a.values()),
        val_loss_b=statistics.fmean(val_b.values()),
        val_loss_c=unified,
        val_loss_c64=unified_wide,
        val_loss_untrained=statistics.fmean(fleet[pid].val_loss[0] for pid in ids),
        val_loss_b_minus_a=statistics.fmean(differences),
        val_loss_b_minus_a_se=statistics.stdev(differences) / math.sqrt(len(ids)) if len(ids) > 1 else 0.0,
    )
    return out


def main(argv=None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--rows-per-step", type=int, default=64, help="arm B: rows per fleet forward pass")
    args = parser.parse_args(argv)
    device, env = setup(args)
    size = QUICK if args.quick else FULL
    settings = resolve_settings(epochs=size["epochs"], batch_size=16, r=8, target_roles=("query", "value"),
                                patience=size["epochs"])
    data = persona_rows(size["personas"], size["train"], size["val"])
    results: dict = {}
    for key, name in model_names(args).items():
        results[key] = run_model(name, data, settings, args, device)
    results["config"] = {
        "benchmark": "fleet_training (BENCHMARK.md section 2)",
        "quick": args.quick,
        "personas": size["personas"],
        "train_rows_per_persona": size["train"],
        "val_rows_per_persona": size["val"],
        "settings": settings.to_dict(),
        "rows_per_step_b": args.rows_per_step,
        "seed": args.seed,
        "data": "personalab synth, SynthConfig(seed=0): first train / val rows of each persona",
        "arm_a": "PEFT loop: get_peft_model / add_adapter + set_adapter per persona, AdamW, plain shuffled batches",
        "arm_b": "personalab train_fleet on MultiLoraModel, batch 16 per persona, rows_per_step rows per pass",
        "arm_c": "the plain PEFT loop of arm A on one adapter, all rows, batch 16: the floor",
        "arm_c64": "as arm_c with batch = rows_per_step (context: B's forward-pass size)",
        "val_loss": "after the last epoch; A, B: mean over personas of own-val-row loss; C: all val rows",
    }
    results["environment"] = env
    columns = [("seconds_a", "A s"), ("seconds_b", "B s"), ("seconds_c", "C s"), ("a_over_b", "A/B"),
               ("b_over_c", "B/C"), ("b_over_c64", "B/C64"), ("val_loss_a", "val A"), ("val_loss_b", "val B"),
               ("val_loss_c", "val C"), ("val_loss_untrained", "val 0")]
    finish(results, args.out, columns)


if __name__ == "__main__":
    main()
