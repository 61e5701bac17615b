"""``personalab ls``: list what can be chosen by name (strategies, presets)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ls",
        help="list strategies or training presets",
        description="List what can be chosen by name.",
        epilog="examples:\n  personalab ls strategies\n  personalab ls presets",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("what", choices=["strategies", "presets"], help="what to list")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from personalab.strategies import list_strategies
    from personalab.strategies.registry import strategy_options
    from personalab.train.presets import PRESETS

    if args.what == "strategies":
        rows = list_strategies()
        width = max(len(name) for name, _ in rows)
        for name, summary in rows:
            print(f"{name:<{width}}  {summary}")
            options = ", ".join(f"{k}={v}" for k, v in strategy_options(name).items())
            if options:
                print(f"{'':<{width}}  options: {options}")
        print("\nset options with --set KEY=VALUE; add --preset constrained to any strategy that trains")
    else:
        for name, settings in PRESETS.items():
            values = ", ".join(f"{k}={_show(v)}" for k, v in settings.to_dict().items())
            print(f"{name}: {values}")
    return 0


def _show(value: Any) -> str:
    return ",".join(value) if isinstance(value, list) else f"{value:g}" if isinstance(value, float) else str(value)
