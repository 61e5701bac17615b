"""``personalab ls``: list what can be chosen by name (strategies, presets)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ls",
        help="list strategies, training presets or augmenters",
        description="List what can be chosen by name.",
        epilog="examples:\n  personalab ls strategies\n  personalab ls presets\n  personalab ls augmenters",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("what", choices=["strategies", "presets", "augmenters"], help="what to list")
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
    elif args.what == "augmenters":
        _list_augmenters()
    else:
        for name, settings in PRESETS.items():
            values = ", ".join(f"{k}={_show(v)}" for k, v in settings.to_dict().items())
            print(f"{name}: {values}")
    return 0


def _list_augmenters() -> None:
    from personalab.augment import AUGMENTERS, build_augmenter

    print("modifiers of any training strategy: `personalab train ... --augment NAME,NAME`")
    for name in AUGMENTERS:
        missing = build_augmenter(name).unavailable()
        print(f"  {name:<18}{'ready' if missing is None else 'skipped here: ' + missing}")


def _show(value: Any) -> str:
    return ",".join(value) if isinstance(value, list) else f"{value:g}" if isinstance(value, float) else str(value)
