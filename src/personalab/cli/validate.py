"""``personalab validate DIR``: check a dataset folder and say what is in it or what is wrong.

Also owns the one-line dataset description that the data subcommands print.
"""

from __future__ import annotations

import argparse

from personalab.data import validate_dataset
from personalab.data.schema import Dataset
from personalab.data.split_checks import split_notes
from personalab.errors import DataError

DESCRIPTION = """\
Check a dataset folder (dataset.yaml, personas.jsonl, examples.jsonl) against every rule:
valid JSON and YAML, required fields, known persona ids, labels inside the label set, no
duplicate rows, no row in two splits, rows true to the split setting (split_by in
dataset.yaml), a train row for every persona (unless split_by is persona: cold start). Prints
a summary when the folder is valid, else every problem with its file and line (exit code 2).

example:
  personalab validate data/synth
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check a dataset folder and report every problem with file and line",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dir", metavar="DIR", help="dataset folder to check")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    dataset, problems = validate_dataset(args.dir)
    if problems or dataset is None:
        # Every problem, not the first 50: fixing a file should take one pass.
        raise DataError(problems, limit=len(problems))
    print("\n".join([f"OK: {describe_dataset(dataset)}", *split_notes(dataset)]))
    return 0


def format_split_counts(counts: dict[str, int]) -> str:
    return " / ".join(f"{split} {n}" for split, n in counts.items())


def describe_dataset(dataset: Dataset) -> str:
    """E.g. "24 personas, 960 examples (train 576 / val 192 / test 192), classification,
    labels: dislike, like"."""
    spec = dataset.spec
    if spec.task == "generation":
        labels = "no label set"
    elif spec.choices:
        labels = "labels: " + ", ".join(spec.choices)
    else:
        labels = "labels given per row"
    return (
        f"{len(dataset.personas)} personas, {len(dataset.examples)} examples "
        f"({format_split_counts(dataset.split_counts())}), {spec.task}, {labels}"
    )
