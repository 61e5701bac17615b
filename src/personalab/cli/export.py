"""``personalab export``: write a trained run out for serving and check it against vLLM."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from personalab.cli.runs import add_run_arguments, resolve_run

EPILOG = """\
examples:
  personalab export runs/per_persona --out serve/per_persona
  personalab export runs/demo/plan --out serve/demo   # the run of the strategy the plan chose

OUT gets one PEFT adapter folder per distinct route (adapters/), routing.json (persona ->
adapter; the default for unknown personas), the router of a moe run, a classifier's head,
and export.json (base model, ranks, merge errors, the compatibility report).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "export",
        help="write a trained run as PEFT adapters + a routing table, checked against vLLM",
        description="Export a trained run for serving: one plain PEFT LoRA adapter per distinct route "
        "(weight-space mixtures merged without loss), a routing table persona -> adapter, and a report "
        "of what a multi-LoRA server (vLLM) would refuse.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_arguments(parser)
    parser.add_argument("--out", required=True, type=Path, help="folder to create (new, or empty)")
    parser.add_argument("--no-check", action="store_true", help="skip the compatibility check against vLLM")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from personalab.export import export_run

    report = export_run(resolve_run(args).path, args.out, check=not args.no_check)
    print("\n".join(report.lines()))
    return 0
