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
        "(one line per row: prediction, route, scores) and metrics.json, and prints a summary. A run "
        "trained with --repeats N has each repeat (RUN_DIR/repeats/seed<S>/) evaluated too: accuracy and "
        "macro-F1 under every seed, with their mean and standard deviation, also in metrics.json as \"repeats\".",
        epilog="example:\n  personalab evaluate runs/unified\n  personalab evaluate runs/unified --split val",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory made by `personalab train`")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"], help="which rows to score (default test)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from personalab.evaluate.evaluation import evaluate_run, format_metrics
    from personalab.evaluate.repeats import evaluate_repeats, format_repeats

    metrics = evaluate_run(args.run_dir, args.split, progress=not args.quiet)
    repeats = evaluate_repeats(args.run_dir, args.split, metrics, progress=not args.quiet)
    print(format_metrics(metrics))
    if repeats:
        print(f"\n{format_repeats(repeats)}")
    print(f"\nwrote {args.run_dir / 'eval' / args.split}/predictions.jsonl and metrics.json")
    return 0
