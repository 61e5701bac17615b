"""``personalab plan CONFIG --out RUN_DIR``: run the playbook's decision tree, resumably."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from personalab.errors import PersonalabError
from personalab.cli.train import add_execution_arguments, add_executor_arguments, execution_flags, executor_from_args

DESCRIPTION = """\
Run a plan: the playbook's decision tree as one measured, resumable run. The plan file names a
baseline strategy, candidate strategies in the order to try them (cheapest first), an
acceptance rule and a stopping rule (see configs/playbook.yaml):

  1. train and evaluate the baseline (usually `unified`: one adapter for all personas);
  2. for each candidate in order:
       - skip it if an earlier one already won (stop: first_win), if the time budget is used
         up, or if its gate fails (e.g. min_silhouette: the personas form no clusters, so a
         cluster strategy cannot help) - the reason is recorded;
       - train it (adapters an earlier strategy of the plan trained from the same inputs, such
         as `unified`, are reused, not retrained), evaluate it on the validation and test rows,
         and compare it with the baseline on the same rows, persona by persona;
       - accept it on the selection rows (`select_on`, val by default) when the persona-level
         p-value < alpha AND the accuracy gain >= min_gain; otherwise say which failed;
  3. pick: the first accepted candidate (stop: first_win), or the accepted one with the
     largest gain (stop: all);
  4. confirm the pick ONCE on the test rows: the same rule, plus the harm check (the personas
     worse on the validation rows must not be significantly worse on the test rows) and, with
     `repeats: N`, the gain under N training seeds. Confirmed: adopt it. Not confirmed, or no
     pick: keep the baseline (the playbook's "use unified").

Because only one test touches the test rows, a plan adopts a candidate that is no better at
most alpha of the time, however many candidates it tries. The report also shows reference
baselines that need no adapter (majority labels, logistic regression on frozen sentence
embeddings with and without a persona id), and says when the choice does not beat them.

resuming: every step (cluster, train, evaluate, compare) is recorded in RUN_DIR/ledger.sqlite
with a hash of its inputs. Re-run the same command to resume after a crash, Ctrl-C or kill:
finished steps are not redone, an interrupted step is redone from scratch. Edit the plan and
re-run it on the same RUN_DIR to redo exactly the steps whose inputs changed (one candidate's
options: that candidate only; the baseline: every comparison). One plan at a time per RUN_DIR.

RUN_DIR gets: plan.json (every number and the decision), report.html and report.md (with
report_files/), runs/<name>/ (each
strategy's adapters and predictions), compare/<split>/<name>.json (per-persona detail),
references/<name>/ (the reference baselines' predictions).
"""

EPILOG = """\
examples:
  personalab synth --out data/synth
  personalab plan configs/playbook.yaml --out runs/playbook
  personalab plan configs/playbook.yaml --out runs/playbook          # again: resumes, redoes nothing
  personalab plan configs/popquorn.yaml --out runs/popquorn --quiet
  personalab plan configs/playbook.yaml --data runs/demo/data --out runs/demo/plan
  personalab plan configs/popquorn.yaml --out runs/pq --device cuda --dtype bfloat16 --score-batch-size 512
  personalab plan configs/playbook.yaml --out runs/pb --executor ray --ray-address HEAD:6379 --gpus-per-task 1
  (or `executor: {kind: ray, address: HEAD:6379, gpus_per_task: 1}` in the plan; fleet shards then
  train as Ray tasks, and a resumed plan re-submits only the shards not in the bank)
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="run the playbook's decision tree (baseline, candidates in cost order, paired tests), resumably",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", type=Path, metavar="CONFIG", help="plan file (YAML), e.g. configs/playbook.yaml")
    parser.add_argument("--out", required=True, type=Path, metavar="RUN_DIR",
                        help="run directory: created, or resumed when it holds this plan already")
    parser.add_argument("--data", metavar="DIR", help="dataset folder, instead of the plan's `data`")
    parser.add_argument("--fleet-shard", type=int, metavar="N",
                        help="train at most N adapters of a fleet at once, instead of the plan's `fleet_shard` (default 64)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines (the result is still printed)")
    add_execution_arguments(parser.add_argument_group(
        "model execution (override the plan's `model:`; device and batch sizes do not change what was trained, "
        "so a plan resumes across them)"))
    add_executor_arguments(parser)
    parser.add_argument("--verbose", action="store_true",
                        help="also show the training and evaluation bars (shown anyway when stderr is a terminal)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from personalab.plan import load_plan, run_plan
    from personalab.report import format_tables

    spec = load_plan(args.config)
    if args.data:
        spec = replace(spec, data=args.data)
    if args.fleet_shard is not None:
        if args.fleet_shard < 1:
            raise PersonalabError(f"--fleet-shard must be at least 1, got {args.fleet_shard}")
        spec = replace(spec, fleet_shard=args.fleet_shard)
    if execution_flags(args):
        spec = replace(spec, model=replace(spec.model, **execution_flags(args)))
    spec = replace(spec, executor=executor_from_args(args, spec.executor))
    # A POPQUORN training step takes half an hour: in a terminal, show how far it is.
    bars = args.verbose or (not args.quiet and sys.stderr.isatty())
    result = run_plan(spec, args.out, progress=not args.quiet, verbose=bars)
    print(format_summary(result.plan))
    print(f"\n{format_tables(result.plan)}")
    print(f"\nwrote {args.out / 'plan.json'}; report: {args.out / 'report.html'} (and report.md)")
    return 0


def format_summary(plan: dict[str, Any]) -> str:
    decision = plan["decision"]
    return (f"decision: {decision['chosen']} ({decision['strategy']}) - {decision['branch']}\n"
            f"why: {decision['why']}")
