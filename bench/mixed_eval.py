"""Mixed-adapter evaluation benchmark (../shared/BENCHMARK.md, section 3): scoring rows that each
need their own persona's adapter, with many adapters loaded at once.

Setup: 2048 rows (32 per persona, shuffled so that every batch mixes personas) over 64 persona
adapters: LoRA r=8 (alpha 16) on query and value, A drawn as PEFT draws it and B random
(std ``--b-std``), so that every adapter changes the scores. The same weights go into the
engine and, through PEFT adapter folders (``write_peft_adapter`` -> ``PeftModel.from_pretrained``
/ ``load_adapter``), into PEFT. Every scoring arm runs the backend's own ``scores``
(same tokenization, batches and log-likelihood scoring of the label choices); only the
model it is given differs:

- engine: personalab's ``MultiLoraModel`` holding all 64 adapters, each row routed to its
  persona's adapter by ``route_ids``;
- peft: PEFT's mixed-adapter batch, the ``PeftModel`` holding all 64 adapters called with
  ``adapter_names=[one per sequence]`` (a thin wrapper turns the backend's ``route_ids``
  into adapter names);
- single (the floor): the same ``PeftModel`` with one active adapter scoring every row
  (plain PEFT LoRA, no per-row routing);
- single_engine (context): the engine with every row routed to the same adapter;
- generate (tiny causal LM only): the playbook's evaluation: for each persona,
  ``set_adapter``, then for each of its rows ``generate`` a greedy answer
  (``--max-new-tokens`` tokens, one row per call, through the backend's ``generate``) and
  parse it to a label (exact match or a label at its start);
- generate_batched (context): the same with 16 rows per ``generate`` call, the better
  loop a user could write (engine_over_generate_batched).

Timing: ``time.perf_counter`` around each arm's scoring of all rows, after one untimed
warm-up batch; adapter loading is not timed; on CUDA the device is synchronized before each
reading. Reported: rows per second of each arm and the time ratios engine_over_peft,
engine_over_single, engine_over_generate (lower: the engine is faster), plus the fraction of
rows on which the engine and PEFT's mixed batch predict the same label (and their largest
score difference), and how many rows the single adapter predicts differently (so the
adapters matter). Ratios come from one run; compare ratios, not absolute times, and give
``--threads`` no more than the idle cores. ``--quick`` (8 adapters x 16 rows, 1 thread) only
checks that it runs.

    python bench/mixed_eval.py --out runs/bench/mixed_eval.json   # full size
    python bench/mixed_eval.py --quick                            # smoke test only
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

import torch
from peft import PeftModel

from common import base_parser, finish, load_backend, model_names, persona_rows, random_adapters, setup, timed
from personalab.engine import MultiLoraModel, Route, write_peft_adapter
from personalab.models.decoding import GenerationSettings
from personalab.train.presets import resolve_settings

FULL = dict(personas=64, rows_per_persona=32)
QUICK = dict(personas=8, rows_per_persona=16)
WARMUP_ROWS = 8


class PeftByRoute(torch.nn.Module):
    """Lets the backend's scorers drive a PeftModel's mixed batch: ``route_ids`` (one per
    sequence) become PEFT's ``adapter_names``."""

    def __init__(self, peft: PeftModel, names: list[str]):
        super().__init__()
        self.peft, self.names = peft, names

    def forward(self, *args, route_ids=None, **kwargs):
        if route_ids is not None:
            kwargs["adapter_names"] = [self.names[i] for i in route_ids.tolist()]
        return self.peft(*args, **kwargs)


def parse_label(answer: str, choices) -> str | None:
    text = answer.strip().lower()
    for choice in sorted(choices, key=len, reverse=True):  # "dislike" before "like"
        if text == choice.lower() or text.startswith(choice.lower()):
            return choice
    return None


def run_model(name: str, args, device: str, quick: bool) -> dict:
    size = QUICK if quick else FULL
    data = persona_rows(size["personas"], size["rows_per_persona"])
    names = data.persona_ids  # adapter name = persona id
    rows = [row for pid in names for row in data.train[pid]]
    random.Random(args.seed).shuffle(rows)
    route_ids = torch.tensor([names.index(row.persona_id) for row in rows])
    settings = resolve_settings(r=8, target_roles=("query", "value"))
    out: dict = {"model": name, "rows": len(rows), "adapters": len(names)}

    def arm(label: str, work):
        work(warmup=True)
        result, seconds = timed(device, lambda: work(warmup=False))
        out[f"seconds_{label}"] = seconds
        out[f"rows_per_second_{label}"] = len(rows) / seconds
        print(f"  {name}: {label} {seconds:.2f} s", file=sys.stderr)
        return result

    def part(warmup: bool):
        return slice(0, WARMUP_ROWS) if warmup else slice(None)

    # The engine, all adapters loaded, each row on its own adapter (and, for context, all on one).
    backend = load_backend(name, data, device, seed=args.seed)
    targets = backend.target_modules(settings.target_roles)
    engine = MultiLoraModel(backend.model, targets)
    adapters = random_adapters(engine, targets, names, settings, args.b_std, args.seed)
    for adapter, weights in adapters.items():
        engine.add_adapter(adapter, weights)
    engine.set_routes([Route.single(n) for n in names])
    engine_scores = arm("engine", lambda warmup: backend.scores(engine, rows[part(warmup)], route_ids[part(warmup)]))
    single_ids = torch.zeros_like(route_ids)
    arm("single_engine", lambda warmup: backend.scores(engine, rows[part(warmup)], single_ids[part(warmup)]))

    # PEFT: the same adapters through PEFT folders, on a freshly loaded base.
    backend = load_backend(name, data, device, seed=args.seed)
    with tempfile.TemporaryDirectory() as folder:
        peft = None
        for adapter, weights in adapters.items():
            path = write_peft_adapter(Path(folder) / adapter, weights, str(backend.resolved.path), targets)
            if peft is None:
                peft = PeftModel.from_pretrained(backend.model, str(path), adapter_name=adapter)
            else:
                peft.load_adapter(str(path), adapter_name=adapter)
    peft.eval()
    mixed = PeftByRoute(peft, names)
    peft_scores = arm("peft", lambda warmup: backend.scores(mixed, rows[part(warmup)], route_ids[part(warmup)]))
    peft.set_adapter(names[0])
    single_scores = arm("single", lambda warmup: backend.scores(peft, rows[part(warmup)]))

    engine_labels, peft_labels = engine_scores.argmax(-1), peft_scores.argmax(-1)
    finite = torch.isfinite(engine_scores) & torch.isfinite(peft_scores)
    out.update(
        engine_over_peft=out["seconds_engine"] / out["seconds_peft"],
        engine_over_single=out["seconds_engine"] / out["seconds_single"],
        engine_over_single_engine=out["seconds_engine"] / out["seconds_single_engine"],
        engine_peft_agreement=(engine_labels == peft_labels).float().mean().item(),
        engine_peft_max_abs_score_diff=(engine_scores[finite] - peft_scores[finite]).abs().max().item(),
        # How much the adapters matter: own adapter vs the first adapter for every row.
        own_vs_single_label_disagreement=(single_scores.argmax(-1) != engine_labels).float().mean().item(),
        own_vs_single_max_abs_score_diff=(engine_scores[finite] - single_scores[finite]).abs().max().item(),
    )

    if backend.kind == "causal_lm":
        by_persona = {pid: [i for i, row in enumerate(rows) if row.persona_id == pid] for pid in names}

        settings = GenerationSettings(max_new_tokens=args.max_new_tokens)

        def generate_all(per_call: int):
            def work(warmup: bool) -> tuple[dict[int, str], dict[int, str | None]]:
                answers = {}
                for pid, indices in by_persona.items():
                    peft.set_adapter(pid)
                    for start in range(0, 1 if warmup else len(indices), per_call):
                        chunk = indices[start : start + per_call]
                        texts = backend.generate(peft, [rows[i] for i in chunk], settings=settings)
                        answers.update(zip(chunk, texts))
                    if warmup:
                        break
                return answers, {i: parse_label(text, backend.choices) for i, text in answers.items()}
            return work

        answers, labels = arm("generate", generate_all(1))
        arm("generate_batched", generate_all(backend.batch_size))
        parsed = [i for i, label in labels.items() if label is not None]
        out.update(
            engine_over_generate=out["seconds_engine"] / out["seconds_generate"],
            engine_over_generate_batched=out["seconds_engine"] / out["seconds_generate_batched"],
            generate_parsed_fraction=len(parsed) / len(rows),
            generate_engine_agreement_on_parsed=(
                sum(labels[i] == backend.choices[engine_labels[i]] for i in parsed) / len(parsed) if parsed else None
            ),
            generate_examples=[answers[i] for i in range(3)],
        )
    return out


def main(argv=None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--b-std", type=float, default=0.2, help="std of the random LoRA B weights")
    parser.add_argument("--max-new-tokens", type=int, default=8, help="generate arm: tokens per answer")
    args = parser.parse_args(argv)
    device, env = setup(args)
    results: dict = {}
    for key, name in model_names(args).items():
        results[key] = run_model(name, args, device, args.quick)
    size = QUICK if args.quick else FULL
    results["config"] = {
        "benchmark": "mixed_eval (BENCHMARK.md section 3)",
        "quick": args.quick,
        "personas": size["personas"],
        "rows_per_persona": size["rows_per_persona"],
        "lora": {"r": 8, "alpha": 16, "targets": ["query", "value"], "b_std": args.b_std},
        "max_new_tokens": args.max_new_tokens,
        "seed": args.seed,
        "warmup_rows": WARMUP_ROWS,
        "data": "personalab synth, SynthConfig(seed=0): first train rows of each persona, shuffled",
        "arm_engine": "MultiLoraModel with all adapters, per-row route_ids, backend.scores",
        "arm_peft": "PeftModel with all adapters, adapter_names per sequence, backend.scores",
        "arm_single": "the floor: the same PeftModel with one active adapter for all rows",
        "arm_single_engine": "context: the engine with every row routed to one adapter",
        "arm_generate": "causal LM only: per persona set_adapter, backend.generate one row a call, parse",
        "arm_generate_batched": "context: as arm_generate with backend.batch_size rows a generate call",
    }
    results["environment"] = env
    columns = [("rows_per_second_engine", "engine r/s"), ("rows_per_second_peft", "peft r/s"),
               ("rows_per_second_single", "single r/s"), ("rows_per_second_generate", "generate r/s"),
               ("engine_over_peft", "eng/peft"), ("engine_over_single", "eng/single"),
               ("engine_over_generate", "eng/gen"), ("engine_peft_agreement", "agree")]
    finish(results, args.out, columns)


if __name__ == "__main__":
    main()
