"""``personalab import``: turn other data shapes (POPQUORN, any CSV) into a dataset folder."""

from __future__ import annotations

import argparse

from personalab.cli.validate import format_split_counts
from personalab.data.importers.csv_import import CsvMapping, ImportSummary, import_csv
from personalab.data.importers.popquorn import TASKS as POPQUORN_TASKS
from personalab.data.importers.popquorn import import_popquorn
from personalab.data.importers.popquorn_rewrite import import_popquorn_rewrite
from personalab.data.splits import DEFAULT_SPLIT_BY, SPLIT_BY

DESCRIPTION = """\
Import data into a dataset folder (dataset.yaml, personas.jsonl, examples.jsonl), then
validate it. Rows without a split get one by the hash rule of BENCHMARK.md, under the split
setting --split-by (row, item or persona: which rows move together between splits).

examples:
  personalab import popquorn ../shared/data/popquorn/offensiveness.csv --task binary \\
      --out data/popquorn-binary
  personalab import popquorn-rewrite ../shared/data/popquorn/email_rewriting.csv \\
      --out data/popquorn-rewrite
  personalab import csv ratings.csv --out data/ratings --persona-col user \\
      --input-col text --output-col label --attribute-cols age,city
"""

POPQUORN_DESCRIPTION = """\
Import the POPQUORN offensiveness ratings exactly as BENCHMARK.md section 1 prescribes:
persona = user_id, profile = gender, race, age, occupation, education; example = one
rating; split by sha256 of "user_id:instance_id" (7751 / 2655 / 2630 rows).
--split-by item holds out whole comments instead, as published annotator-modelling work does.

examples:
  personalab import popquorn ../shared/data/popquorn/offensiveness.csv --task 5way \\
      --out data/popquorn-5way
  personalab import popquorn ../shared/data/popquorn/offensiveness.csv --split-by item \\
      --out data/popquorn-items
"""

REWRITE_DESCRIPTION = """\
Import POPQUORN's email rewriting as a generation dataset (BENCHMARK.md section 6): persona =
the annotator (user_id), profile = their demographics; input = the original email, output =
their more polite rewrite of it; split by sha256 of "user_id:instance_id". Rows without a
user id are dropped and counted. 855 emails were rewritten by two annotators: evaluate's
own-vs-other measure uses them.

example:
  personalab import popquorn-rewrite ../shared/data/popquorn/email_rewriting.csv \\
      --out data/popquorn-rewrite
"""

CSV_DESCRIPTION = """\
Import any CSV file with one example per row, given which column holds what. The label set
of a classification task defaults to the sorted distinct outputs.

example:
  personalab import csv ratings.csv --out data/ratings --persona-col user \\
      --input-col text --output-col label --split-col split --id-col item_id \\
      --attribute-cols age,city --choices bad,good
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import",
        help="import POPQUORN (ratings or email rewrites) or a CSV file into a dataset folder",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sources = parser.add_subparsers(dest="source", metavar="SOURCE", required=True)
    _register_popquorn(sources)
    _register_popquorn_rewrite(sources)
    _register_csv(sources)


def _register_popquorn(sources: argparse._SubParsersAction) -> None:
    parser = sources.add_parser(
        "popquorn",
        help="the POPQUORN offensiveness CSV, by the benchmark protocol",
        description=POPQUORN_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("csv", metavar="CSV", help="path to POPQUORN's offensiveness.csv")
    parser.add_argument(
        "--task", choices=POPQUORN_TASKS, default="binary",
        help="binary: offensive if rating >= 2 (default); 5way: the rating 1..5",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="dataset folder to write")
    _add_split_by(parser, item="a comment (instance_id)")
    parser.set_defaults(func=run_popquorn)


def _register_popquorn_rewrite(sources: argparse._SubParsersAction) -> None:
    parser = sources.add_parser(
        "popquorn-rewrite",
        help="the POPQUORN email-rewriting CSV, a generation task",
        description=REWRITE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("csv", metavar="CSV", help="path to POPQUORN's email_rewriting.csv")
    parser.add_argument("--out", required=True, metavar="DIR", help="dataset folder to write")
    _add_split_by(parser, item="a source email (instance_id)")
    parser.set_defaults(func=run_popquorn_rewrite)


def _register_csv(sources: argparse._SubParsersAction) -> None:
    parser = sources.add_parser(
        "csv",
        help="any CSV file with a column mapping",
        description=CSV_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE", help="CSV file with a header row")
    parser.add_argument("--out", required=True, metavar="DIR", help="dataset folder to write")
    parser.add_argument("--persona-col", required=True, help="column with the persona id")
    parser.add_argument("--input-col", required=True, help="column with the input text")
    parser.add_argument("--output-col", required=True, help="column with the label / answer")
    parser.add_argument("--split-col", help="column with train/val/test (empty: hash rule)")
    parser.add_argument("--id-col", help="column with a stable row id (the split hash key)")
    parser.add_argument("--profile-col", help="column with the persona's profile text")
    parser.add_argument(
        "--attribute-cols", type=_comma_list, default=(), metavar="A,B",
        help="comma-separated persona attribute columns (a profile is rendered from them)",
    )
    parser.add_argument(
        "--task", choices=("classification", "generation"), default="classification",
        help="classification (a closed label set, default) or generation",
    )
    parser.add_argument(
        "--choices", type=_comma_list, metavar="A,B",
        help="comma-separated label set (default: the sorted distinct outputs)",
    )
    parser.add_argument("--name", help="dataset name (default: the CSV file's name)")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the split hash")
    _add_split_by(parser, item="an input (its --id-col value, else its text)")
    parser.set_defaults(func=run_csv)


def _add_split_by(parser: argparse.ArgumentParser, item: str) -> None:
    parser.add_argument(
        "--split-by", choices=SPLIT_BY, default=DEFAULT_SPLIT_BY,
        help="which rows share a split. row (default): each (persona, row) on its own, so a "
        "test input may be in training under other personas; item: all rows of "
        f"{item} together, so no test input is ever seen in training; persona: all rows of "
        "a persona together, so test personas have no train rows (cold start)",
    )


def _comma_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def run_popquorn(args: argparse.Namespace) -> int:
    print(_describe(import_popquorn(args.csv, args.task, args.out, split_by=args.split_by)))
    return 0


def run_popquorn_rewrite(args: argparse.Namespace) -> int:
    print(_describe(import_popquorn_rewrite(args.csv, args.out, split_by=args.split_by)))
    return 0


def run_csv(args: argparse.Namespace) -> int:
    mapping = CsvMapping(
        persona_col=args.persona_col,
        input_col=args.input_col,
        output_col=args.output_col,
        split_col=args.split_col,
        id_col=args.id_col,
        profile_col=args.profile_col,
        attribute_cols=args.attribute_cols,
    )
    summary = import_csv(
        args.file, mapping, args.out, task=args.task, choices=args.choices,
        name=args.name, split_seed=args.split_seed, split_by=args.split_by,
    )
    print(_describe(summary))
    return 0


def _describe(summary: ImportSummary) -> str:
    text = (
        f"Imported {summary.name} to {summary.out_dir}: {summary.n_personas} personas, "
        f"{summary.n_examples} examples ({format_split_counts(summary.split_counts)})"
    )
    if summary.label_counts:
        text += "\nlabels: " + ", ".join(f"{k} {n}" for k, n in summary.label_counts.items())
    return "\n".join([text, *summary.notes])
