"""``personalab demo``: the main job out of the box, offline, on the embedded default model.

Synthetic personas in clear latent groups (and, with ``--leniency``, each leaning to one label
on its own) -> the playbook plan (unified baseline, then the
candidate strategies in cost order, each compared with it by a paired test) -> the report,
with a summary of the decision and where everything is.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

# The shipped plan, found beside the package in a source checkout (the README's install).
PLAYBOOK = Path(__file__).resolve().parents[3] / "configs" / "playbook.yaml"

DESCRIPTION = """\
Run the main job once on synthetic data, offline: write a persona dataset (personas in clear
groups), run the playbook plan on the embedded all-MiniLM-L6-v2 model - a unified LoRA
baseline, then per-cluster adapters, weighted merges, ... in cost order until one beats the
baseline by a paired test - and write the report. About 10 minutes on 2 CPU cores; everything
lands in --out, and running it again resumes instead of starting over.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="synthetic personas -> the playbook plan -> report, offline, in about 10 minutes",
        description=DESCRIPTION,
        epilog="examples:\n  personalab demo --out runs/demo\n  personalab demo --model tiny-classifier   # a quick look\n"
               "  personalab demo --leniency 1 --out runs/demo-lenient   # personas who also differ one by one",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output folder (default runs/demo)")
    parser.add_argument("--plan", type=Path, default=PLAYBOOK, help="plan file (default: configs/playbook.yaml)")
    parser.add_argument("--model", help="base model instead of the plan's (default: the embedded minilm)")
    parser.add_argument("--personas", type=int, default=24, help="number of synthetic personas (default 24)")
    parser.add_argument("--leniency", type=float, default=0.0, metavar="F",
                        help="how much each persona leans to one label whatever the input, on its own "
                             "(Gaussian scale, as personalab synth --leniency; default 0: personas differ "
                             "only by group). 1 makes per-persona offsets and identities pay off")
    parser.add_argument("--seed", type=int, default=0, help="seed for the synthetic data (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from personalab.cli.plan import format_summary
    from personalab.cli.validate import describe_dataset
    from personalab.data import load_dataset, write_dataset
    from personalab.data.synth import SynthConfig, synthesize
    from personalab.errors import PersonalabError
    from personalab.plan import load_plan, run_plan
    from personalab.report import format_tables

    if not args.plan.exists():
        raise PersonalabError(f"plan file {args.plan} not found; pass --plan FILE (see configs/playbook.yaml)")
    started = time.perf_counter()
    data_dir, plan_dir = args.out / "data", args.out / "plan"
    plan = load_plan(args.plan)  # a mistake in the plan file fails before any work is done
    print(f"[1/2] synthetic personas -> {data_dir}")
    synthetic = synthesize(SynthConfig(n_personas=args.personas, seed=args.seed, leniency=args.leniency))
    if not (data_dir / "examples.jsonl").exists():  # the same settings write the same data: keep it
        write_dataset(data_dir, *synthetic)
    dataset = load_dataset(data_dir)
    if dataset.spec.name != synthetic[0].name:  # the name spells out the settings
        raise PersonalabError(f"{data_dir} holds synthetic data made with other settings ({dataset.spec.name}, "
                              f"not {synthetic[0].name}); pass another --out, or the settings it was made with")
    print(f"      {describe_dataset(dataset)}")
    spec = replace(plan, data=str(data_dir))
    if args.model:
        spec = replace(spec, model=replace(spec.model, name=args.model))
    print(f"[2/2] the plan {args.plan.name} on {spec.model.name} -> {plan_dir}")
    result = run_plan(spec, plan_dir, progress=not args.quiet)
    print()
    print(format_summary(result.plan))
    print(f"\n{format_tables(result.plan)}")
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s; everything is in {args.out}/")
    for name in ("report.html", "report.md"):
        if (plan_dir / name).exists():
            print(f"  report: {plan_dir / name}")
    print(f"  every strategy's adapters and predictions: {plan_dir / 'runs'}")
    persona = next(iter(dataset.personas))
    print(f"  use what the plan chose: personalab predict {plan_dir} --persona {persona} \"I love this movie\"")
    print(f"  or keep it loaded and answer HTTP requests: personalab serve {plan_dir}   (pip install "
          "'personalab[serve]')")
    return 0
