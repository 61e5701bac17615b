"""``personalab evaluate``: score a trained run on the test split and print its metrics."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="score a trained run: accuracy and macro-F1, or for generation ROUGE, BLEU, own-vs-other",
        description="Score a trained run on one split. Writes RUN_DIR/eval/<split>/predictions.jsonl "
        "(one line per row: prediction, route, scores) and metrics.json, and prints a summary. A run on a "
        "generation dataset generates each row's answer through its route (greedy unless --sample) and is "
        "measured by ROUGE-1/2/L, BLEU, exact match, output length and own-vs-other. A run "
        "trained with --repeats N has each repeat (RUN_DIR/repeats/seed<S>/) evaluated too: accuracy and "
        "macro-F1 under every seed, with their mean and standard deviation, also in metrics.json as \"repeats\".",
        epilog="example:\n  personalab evaluate runs/unified\n  personalab evaluate runs/unified --split val\n"
        "  personalab evaluate runs/rewrite --max-new-tokens 96 --sample --temperature 0.7 --seed 1",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory made by `personalab train`")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"], help="which rows to score (default test)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_generation_arguments(parser)
    parser.set_defaults(func=run)


def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    """How a generation run generates (``GenerationSettings``; unset: its defaults, given here
    in words so that the CLI does not import torch to print its help)."""
    group = parser.add_argument_group("generation runs")
    group.add_argument("--max-new-tokens", type=_positive_int, metavar="N", help="longest answer in tokens (default 64)")
    group.add_argument("--sample", action="store_true", help="sample each token instead of taking the likeliest")
    group.add_argument("--temperature", type=float, help="with --sample: temperature of the distribution (default 1)")
    group.add_argument("--seed", type=int, help="with --sample: seed of the draws (default 0)")


def run(args: argparse.Namespace) -> int:
    from personalab.evaluate.repeats import format_repeats
    from personalab.run.evaluation import evaluate_repeats, evaluate_run, format_metrics

    generation = settings_from(args)
    metrics = evaluate_run(args.run_dir, args.split, progress=not args.quiet, generation=generation)
    repeats = evaluate_repeats(args.run_dir, args.split, metrics, progress=not args.quiet, generation=generation)
    print(format_metrics(metrics))
    if repeats:
        print(f"\n{format_repeats(repeats)}")
    print(f"\nwrote {args.run_dir / 'eval' / args.split}/predictions.jsonl and metrics.json")
    return 0


def settings_from(args: argparse.Namespace) -> Any:
    """The ``GenerationSettings`` the flags of ``add_generation_arguments`` ask for."""
    from personalab.errors import PersonalabError
    from personalab.models.decoding import GenerationSettings

    given = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "seed": args.seed}
    try:
        return GenerationSettings(sample=args.sample, **{k: v for k, v in given.items() if v is not None})
    except ValueError as error:
        raise PersonalabError(str(error)) from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
