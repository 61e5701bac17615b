"""``personalab evaluate``: score a trained run on the test split and print its metrics."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a trained run: accuracy, macro-F1, per-persona accuracy",
        description="Score a trained run on one split. Writes RUN_DIR/eval/<split>/predictions.jsonl "
        "(one line per row: prediction, route, scores) and metrics.json, and prints a summary.",
        epilog="example:\n  personalab evaluate runs/unified\n  personalab evaluate runs/unified --split val",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory made by `personalab train`")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"], help="which rows to score (default test)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from personalab.evaluate.evaluation import evaluate_run, format_metrics

    metrics = evaluate_run(args.run_dir, args.split, progress=not args.quiet)
    print(format_metrics(metrics))
    print(f"\nwrote {args.run_dir / 'eval' / args.split}/predictions.jsonl and metrics.json")
    return 0
