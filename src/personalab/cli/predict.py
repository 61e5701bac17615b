"""``personalab predict``: answer a few texts for one persona with a trained run."""

from __future__ import annotations

import argparse
from typing import Any

from personalab.cli.evaluate import add_generation_arguments, settings_from
from personalab.cli.runs import add_run_arguments, resolve_run

EPILOG = """\
examples:
  personalab predict runs/demo/plan --persona p00 "I love this movie"   # the strategy the plan chose
  personalab predict runs/demo/plan --strategy unified --persona p00 "I love this movie"
  personalab predict runs/per_persona --persona p3 "I love this movie"
  personalab predict runs/moe --persona newcomer --profile "A retired teacher" "text one" "text two"
  personalab predict runs/rewrite --persona 12 --max-new-tokens 96 "send me the report now"
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="the predicted choice and choice probabilities of texts for one persona (generation: the answer)",
        description="Answer texts for one persona through its route: its own adapter(s), or for a persona "
        "the run has no route for, the default route (or the router of a moe run, given --profile). A "
        "generation run generates each answer (greedy unless --sample).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_run_arguments(parser)
    parser.add_argument("--persona", required=True, metavar="ID", help="the persona id (known to the run, or new)")
    parser.add_argument("--profile",
                        help="profile text of a persona new to the run (given to the model, and to the router)")
    parser.add_argument("texts", nargs="+", metavar="TEXT", help="input text(s) to answer")
    add_generation_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from personalab.errors import PersonalabError
    from personalab.export.answer import answer
    from personalab.run.rundir import open_run

    if any(not text.strip() for text in args.texts):  # before loading the model, which takes a while
        raise PersonalabError("a TEXT is empty; give the input text(s) to answer")
    generation = settings_from(args)  # before loading the model: a bad setting fails at once
    run_dir = resolve_run(args).path
    result = answer(open_run(run_dir), args.persona, args.texts, args.profile, generation)
    print(f"persona {result.persona_id!r}: {result.how}: {result.route}")
    for item in result.answers:
        if not item.probabilities:  # a generated answer
            print(f"  {item.text!r} -> {item.choice!r}")
            continue
        shown = ", ".join(f"{choice} {p:.3f}" for choice, p in item.probabilities.items())
        print(f"  {item.text!r} -> {item.choice}   ({shown})")
    return 0
