"""Entry point of the ``personalab`` command: builds the parser from the subcommand modules and
turns user errors into a clear message and exit code 2 (no traceback)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from personalab.errors import PersonalabError

# Each module defines ``register(subparsers)``, which adds its parser and sets ``func``.
SUBCOMMANDS = (
    "demo", "synth", "import_", "validate", "cluster", "train", "evaluate", "compare", "plan", "report", "export",
    "predict", "serve", "ls",
)

DESCRIPTION = """\
Personalize one small pretrained model to many personas with LoRA adapters, and decide with
evidence which way of personalizing works best.

typical session:
  personalab synth --out data/synth                 # or: personalab import popquorn ...
  personalab validate data/synth
  personalab cluster --data data/synth              # are there clusters worth training?
  personalab train --data data/synth --strategy unified --out runs/unified
  personalab evaluate runs/unified
  personalab compare runs/unified runs/per_persona  # paired test on the same test rows
  personalab plan configs/playbook.yaml --out runs/playbook   # the whole decision tree
  personalab report runs/playbook                   # HTML + Markdown report of a plan
  personalab export runs/per_persona --out serve/   # PEFT adapters + routing table
  personalab predict runs/per_persona --persona p03 "some input"
  personalab serve runs/playbook --port 8000        # HTTP answers for every persona, batched
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="personalab",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"personalab.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Never reach for the network: models load from local paths or the local HF cache only.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Our own progress bars say what is happening; the libraries' per-load bars and their
    # deprecation notices about each other only bury them.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft)\b")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except PersonalabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _version() -> str:
    from personalab import __version__

    return f"personalab {__version__}"


if __name__ == "__main__":
    sys.exit(main())
