"""``personalab compare``: a paired test of two evaluated runs on the same rows."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from personalab.evaluate.text_metrics import ROW_METRICS

# = personalab.evaluate.compare.METRIC_NAMES (that module loads scipy: every command would wait for it)
METRIC_CHOICES = ("accuracy", *ROW_METRICS)

EXPLANATION = """\
how to read it:
  Both runs must have been evaluated (`personalab evaluate RUN`) on the same rows; each row
  is a pair (A right or wrong, B right or wrong), so the test is paired: it looks only at how
  the two strategies differ on the same examples, not at two independent samples.

  The persona is the unit: a persona's rows are not independent (one adapter flips many of
  them at once), so the interval and the test resample and permute whole personas.

  metric         what each row scores: accuracy (right or wrong) for a classification run; for
                 a generation run ROUGE-L by default, or --metric rouge1, rouge2, sentence_bleu
                 (BLEU of each row, 0-1), exact_match.
  B - A          the difference of the mean scores, in percentage points (positive: B is better).
  CI             a persona-level bootstrap confidence interval of B - A: personas are drawn
                 with replacement, each with all its rows. An interval that excludes 0 means
                 the gain is unlikely to be an accident of which personas and rows were drawn.
  p              a persona-level sign-flip permutation test: if A and B were interchangeable,
                 each persona's total difference would be as likely positive as negative. A
                 small p (say below 0.05) means B really differs from A.
  personas       how many personas got better, equal or worse under B on their rows.
  harm check     with ~10 rows no persona's own test can tell a loss from noise; instead the
                 personas worse under B on another split (--flag-split, e.g. val) are tested on
                 this one. "HARMED" means they are worse here too, beyond chance.
  McNemar p      the row-level exact McNemar test (right/wrong scores only), shown for
                 reference: it treats rows as independent and so overstates the certainty.
  repeats        when both runs were trained with --repeats and evaluated, B - A under each
                 training seed both share (each with its own CI and p), and the mean and
                 standard deviation of those gains: a gain that one seed shows and another
                 does not is an accident of training, whatever its p.

example:
  personalab compare runs/unified runs/per_persona
  personalab compare runs/unified runs/cluster --split val --json cmp.json
  personalab compare runs/rewrite-unified runs/rewrite-personas --metric rouge1
  personalab evaluate runs/per_persona --split val   # (and the baseline) for the harm check
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="paired test of two evaluated runs, persona by persona: accuracy (or ROUGE-L) B - A with a CI, p, harm check",
        description="Compare run B with baseline run A on the same evaluated rows: their mean per-row "
        "scores (accuracy, or a generation metric), the "
        "difference B - A with a persona-level bootstrap confidence interval and permutation p-value, "
        "how many personas got better or worse, and whether the personas worse on another split are "
        "worse here too (the harm check).",
        epilog=EXPLANATION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_a", type=Path, metavar="RUN_BASELINE", help="run A, the baseline (e.g. the unified strategy)")
    parser.add_argument("run_b", type=Path, metavar="RUN_OTHER", help="run B, the strategy to judge against A")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"], help="which evaluation to compare (default test)")
    parser.add_argument("--resamples", type=_positive_int, default=9999,
                        help="bootstrap and permutation resamples (default 9999)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the permutations (default 0)")
    parser.add_argument("--metric", choices=METRIC_CHOICES,
                        help="the per-row score to compare (default: accuracy, or rougeL for generation runs)")
    parser.add_argument("--flag-split", choices=["train", "val", "test"],
                        help="split whose worse personas the harm check tests on --split (default: val when "
                             "comparing on test and both runs were evaluated on val)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the full result, every persona included, as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from personalab.data.atomic import atomic_write_text
    from personalab.evaluate.compare import compare_runs, format_comparison, has_predictions
    from personalab.evaluate.repeats import compare_repeats, format_repeat_gains

    flag_split = args.flag_split
    if flag_split is None and args.split == "test" and all(has_predictions(r, "val") for r in (args.run_a, args.run_b)):
        flag_split = "val"
    result = compare_runs(args.run_a, args.run_b, split=args.split, n_resamples=args.resamples,
                          seed=args.seed, flag_split=flag_split, metric=args.metric)
    print(format_comparison(result))
    repeats = compare_repeats(args.run_a, args.run_b, split=args.split, n_resamples=args.resamples, seed=args.seed,
                              metric=result["overall"]["metric"])
    if repeats:
        result["repeats"] = repeats
        print(f"\n{format_repeat_gains(repeats)}")
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=2))
        print(f"\nwrote {args.json}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
