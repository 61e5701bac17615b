"""``personalab compare``: a paired test of two evaluated runs on the same rows."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

EXPLANATION = """\
how to read it:
  Both runs must have been evaluated (`personalab evaluate RUN`) on the same rows; each row
  is a pair (A right or wrong, B right or wrong), so the test is paired: it looks only at how
  the two strategies differ on the same examples, not at two independent samples.

  B - A          the accuracy difference, in percentage points (positive: B is better).
  CI             a paired bootstrap confidence interval of B - A: rows are resampled with their
                 pair kept together. An interval that excludes 0 means the gain is unlikely to
                 be an accident of which rows landed in the split.
  McNemar p      the exact McNemar test looks only at the rows where A and B disagree and asks
                 whether "only B right" and "only A right" are equally likely. A small p (say
                 below 0.05) means the two strategies really do differ on such rows.
  personas       B - A on each persona's rows: how many personas got better, equal or worse,
                 and how many did so significantly (exact McNemar on that persona's rows,
                 corrected for testing every persona: holm or fdr_bh). With ~10 test rows a
                 persona rarely reaches significance alone; the counts show whether a gain is
                 broad or carried by a few personas.

example:
  personalab compare runs/unified runs/per_persona
  personalab compare runs/unified runs/cluster --split val --json cmp.json
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="paired test of two evaluated runs: accuracy B - A with a CI, McNemar p, personas better/worse",
        description="Compare run B with baseline run A on the same evaluated rows: accuracies, the "
        "difference B - A with a paired bootstrap confidence interval, the exact McNemar p-value, and "
        "how many personas got better or worse (significantly so after correction).",
        epilog=EXPLANATION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_a", type=Path, metavar="RUN_BASELINE", help="run A, the baseline (e.g. the unified strategy)")
    parser.add_argument("run_b", type=Path, metavar="RUN_OTHER", help="run B, the strategy to judge against A")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"], help="which evaluation to compare (default test)")
    parser.add_argument("--resamples", type=_positive_int, default=9999, help="bootstrap resamples (default 9999)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    parser.add_argument("--correction", default="holm", choices=["holm", "fdr_bh"],
                        help="correction of the per-persona p-values for testing many personas (default holm)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the full result, every persona included, as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from personalab.data.io import atomic_write_text
    from personalab.evaluate.compare import compare_runs, format_comparison

    result = compare_runs(args.run_a, args.run_b, split=args.split, n_resamples=args.resamples,
                          seed=args.seed, correction=args.correction)
    print(format_comparison(result))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2))
        print(f"\nwrote {args.json}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
