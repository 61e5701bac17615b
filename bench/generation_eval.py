"""Benchmark: generating answers for many personas at once (issue 16; BENCHMARK.md sections 3
and 6). 512 rows spread over 64 persona adapters of the tiny causal LM, each row answered
greedily through its own persona's adapter:

- engine: personalab's batched generation, every row of a batch through its own route
  (``CausalLMBackend.generate`` on the multi-LoRA engine: one forward pass per step for the
  whole batch, with the key/value cache);
- loop: the playbook's evaluation, what a user writes with PEFT alone: for each persona,
  ``set_adapter``, then transformers' ``generate`` on each of its rows, one row per call.

Both decode greedily up to ``--max-new-tokens`` tokens and stop at the end-of-sequence token,
so their answers must be identical: ``identical`` says whether every row's text is. Timing:
``time.perf_counter`` around each arm after an untimed warm-up of a few rows; adapter loading
is not timed. Reported: rows per second of each arm and ``speedup`` = loop seconds / engine
seconds, from one run (compare ratios, not absolute times; give ``--threads`` no more than the
idle cores). ``--quick`` (8 adapters x 4 rows, 8 tokens, 1 thread) only checks that it runs.

    python bench/generation_eval.py --out runs/bench/generation_eval.json   # full size
    python bench/generation_eval.py --quick                                 # smoke test only
"""

from __future__ import annotations

import random
import sys
import tempfile
from pathlib import Path

import torch
from peft import PeftModel

from common import base_parser, finish, persona_rows, random_adapters, setup, timed
from personalab.engine import MultiLoraModel, Route, write_peft_adapter
from personalab.models import ModelSpec, build_backend
from personalab.models.decoding import GenerationSettings
from personalab.train.presets import resolve_settings

FULL = dict(personas=64, rows_per_persona=8, max_new_tokens=32)
QUICK = dict(personas=8, rows_per_persona=4, max_new_tokens=8)
WARMUP_ROWS = 4


def run(args, device: str, size: dict) -> dict:
    data = persona_rows(size["personas"], size["rows_per_persona"])
    names = data.persona_ids  # adapter name = persona id
    rows = [row for pid in names for row in data.train[pid]]
    random.Random(args.seed).shuffle(rows)  # a batch mixes personas, as requests would
    settings = GenerationSettings(max_new_tokens=size["max_new_tokens"])
    lora = resolve_settings(r=8, target_roles=("query", "value"))
    out: dict = {"model": args.causal_lm, "rows": len(rows), "adapters": len(names)}

    def backend():  # open answers: no label set, so no "Choices:" in the prompt
        return build_backend(ModelSpec(name=args.causal_lm, device=device), (), data.profiles, seed=args.seed)

    def arm(label: str, work):
        work(rows[:WARMUP_ROWS])
        texts, seconds = timed(device, lambda: work(rows))
        out[f"seconds_{label}"], out[f"rows_per_second_{label}"] = seconds, len(rows) / seconds
        print(f"  {label}: {seconds:.2f} s", file=sys.stderr)
        return texts

    engine_backend = backend()
    targets = engine_backend.target_modules(lora.target_roles)
    engine = MultiLoraModel(engine_backend.model, targets)
    adapters = random_adapters(engine, targets, names, lora, args.b_std, args.seed)
    for name, weights in adapters.items():
        engine.add_adapter(name, weights)
    engine.set_routes([Route.single(name) for name in names])
    engine_texts = arm("engine", lambda part: engine_backend.generate(
        engine, part, [names.index(row.persona_id) for row in part], settings))

    loop_backend = backend()  # a fresh base: the engine wrapped the first one's layers
    peft = peft_with(loop_backend, adapters, targets)
    loop_texts = arm("loop", lambda part: playbook_loop(loop_backend, peft, part, settings))

    differing = [i for i, (a, b) in enumerate(zip(engine_texts, loop_texts)) if a != b]
    out.update(speedup=out["seconds_loop"] / out["seconds_engine"], identical=not differing,
               rows_differing=len(differing), distinct_answers=len(set(engine_texts)),
               examples=engine_texts[:3])
    return out


def peft_with(backend, adapters: dict, targets: list[str]) -> PeftModel:
    """The same adapters as PEFT folders loaded into one ``PeftModel``."""
    peft = None
    with tempfile.TemporaryDirectory() as folder:
        for name, weights in adapters.items():
            path = write_peft_adapter(Path(folder) / name, weights, str(backend.resolved.path), targets)
            if peft is None:
                peft = PeftModel.from_pretrained(backend.model, str(path), adapter_name=name)
            else:
                peft.load_adapter(str(path), adapter_name=name)
    return peft.eval()


def playbook_loop(backend, peft: PeftModel, rows, settings: GenerationSettings) -> list[str]:
    """Per persona: switch the adapter, then ``generate`` each of its rows alone; the answers
    come back in the rows' order."""
    tokenizer, texts = backend.tokenizer, {}
    by_persona: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_persona.setdefault(row.persona_id, []).append(i)
    with torch.inference_mode():
        for persona, indices in by_persona.items():
            peft.set_adapter(persona)
            for i in indices:
                prompt = torch.tensor([backend.prompt_ids(rows[i])], device=backend.device)
                generated = peft.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt),
                                          max_new_tokens=settings.max_new_tokens, do_sample=False,
                                          pad_token_id=tokenizer.pad_token_id, eos_token_id=backend.stop_ids)
                texts[i] = tokenizer.decode(generated[0, prompt.shape[1]:], skip_special_tokens=True).strip()
    return [texts[i] for i in range(len(rows))]


def main(argv=None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--b-std", type=float, default=0.2, help="std of the random LoRA B weights")
    args = parser.parse_args(argv)
    device, env = setup(args)
    size = QUICK if args.quick else FULL
    results: dict = {"tiny_causal_lm": run(args, device, size)}
    results["speedup"], results["identical"] = results["tiny_causal_lm"]["speedup"], results["tiny_causal_lm"]["identical"]
    results["config"] = {
        "benchmark": "generation_eval (issue 16: batched generation with a route per row)",
        "quick": args.quick, **size, "seed": args.seed, "warmup_rows": WARMUP_ROWS,
        "lora": {"r": 8, "alpha": 16, "targets": ["query", "value"], "b_std": args.b_std},
        "data": "personalab synth, SynthConfig(seed=0): first train rows of each persona, shuffled; no label set",
        "arm_engine": "MultiLoraModel with all adapters, per-row route ids, CausalLMBackend.generate (greedy)",
        "arm_loop": "PeftModel with all adapters; per persona set_adapter, transformers generate one row a call",
    }
    results["environment"] = env
    finish(results, args.out, [("rows_per_second_engine", "engine r/s"), ("rows_per_second_loop", "loop r/s"),
                               ("speedup", "speedup"), ("identical", "identical")])


if __name__ == "__main__":
    main()
