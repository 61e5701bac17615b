"""``personalab report RUN_DIR``: write a plan's report again from its folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DESCRIPTION = """\
Write the report of a plan from its run directory: report.html (one self-contained file:
styles and pictures inside, no script, opens offline in any browser) and report.md (the same
decision and strategy table; its pictures are in report_files/).

The report says which strategy the plan chose and why (the branch of the decision tree and
each candidate's evidence in the order tried), the strategy table (accuracy, macro-F1, the
difference from the baseline with its bootstrap CI, McNemar p, personas better / equal /
worse), the per-persona gains of the chosen (or best) candidate, the cluster picture and its
silhouette, training curves, and the time every step took.

`personalab plan` writes it at the end of every plan; run this to rebuild it (after a plan was
interrupted, while one is running, or after upgrading personalab). It only reads the plan's
files: plan.json, compare/, runs/*/training.json, the ledger.
"""

EPILOG = """\
examples:
  personalab report runs/playbook
  xdg-open runs/playbook/report.html
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="(re)write a plan's report: report.html (self-contained) and report.md",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR",
                        help="a plan's run directory (`personalab plan ... --out RUN_DIR`)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # The report package alone: it reads files, and needs neither torch nor the planner.
    from personalab.report import write_report

    html, markdown = write_report(args.run_dir)
    print(f"wrote {html}\n      {markdown} (pictures in {markdown.parent / 'report_files'})")
    print(f"open: {html.resolve().as_uri()}")
    return 0
