"""The RUN_DIR argument that ``predict``, ``export`` and ``serve`` share: a trained run, or a
plan folder standing for the run of the strategy its plan chose (``--strategy`` for another
one it trained), said aloud so that the user knows which run answered."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

RUN_HELP = ("a run directory made by `personalab train`, or a plan folder made by `personalab plan` / "
            "`personalab demo` (e.g. runs/demo/plan): its chosen strategy's run")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help=RUN_HELP)
    parser.add_argument("--strategy", metavar="NAME",
                        help="with a plan folder: use the run of this baseline or candidate (by its name in the "
                             "plan) instead of the one the plan chose")


def resolve_run(args: argparse.Namespace) -> Any:
    """The ``ChosenRun`` ``args`` mean (``.path``: the run directory), after saying which run a
    plan folder stood for."""
    from personalab.plan.chosen import chosen_run

    chosen = chosen_run(args.run_dir, args.strategy)
    if chosen.note:
        print(f"using {chosen.path}: {chosen.note}")
    return chosen
