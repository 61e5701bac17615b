"""``personalab synth``: write a synthetic persona dataset with controllable latent groups."""

from __future__ import annotations

import argparse

from personalab.cli.validate import describe_dataset
from personalab.data import load_dataset, write_dataset
from personalab.data.synth import SynthConfig, synthesize

DESCRIPTION = """\
Write a synthetic dataset: personas drawn from latent groups that differ in profile and in
which topics they like. --separation 1 gives clear groups (clustering personas can help);
--separation 0 makes the groups meaningless (it cannot). Labels are like / dislike.

examples:
  personalab synth --out data/synth
  personalab synth --out data/no-clusters --separation 0 --personas 48 --seed 1
"""

DEFAULTS = SynthConfig()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="write a synthetic persona dataset with controllable clusters",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="dataset folder to write")
    parser.add_argument("--personas", type=int, metavar="N", default=DEFAULTS.n_personas,
                        help="number of personas (default %(default)s)")
    parser.add_argument("--groups", type=int, metavar="N", default=DEFAULTS.n_groups,
                        help="number of latent groups (default %(default)s)")
    parser.add_argument("--separation", type=float, metavar="F", default=DEFAULTS.separation,
                        help="0..1, how distinct the groups are (default %(default)s)")
    parser.add_argument("--deviation", type=float, metavar="F", default=DEFAULTS.deviation,
                        help=">= 0, how far personas depart from their group (default %(default)s)")
    parser.add_argument("--leniency", type=float, metavar="F", default=DEFAULTS.leniency,
                        help=">= 0, how much each persona leans to one label whatever the input, on its "
                             "own (default %(default)s: not at all)")
    parser.add_argument("--examples-per-persona", type=int, metavar="N",
                        default=DEFAULTS.examples_per_persona,
                        help="inputs rated by each persona (default %(default)s)")
    parser.add_argument("--seed", type=int, metavar="N", default=DEFAULTS.seed,
                        help="random seed; the same seed gives the same data (default %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = SynthConfig(
        n_personas=args.personas,
        n_groups=args.groups,
        separation=args.separation,
        deviation=args.deviation,
        leniency=args.leniency,
        examples_per_persona=args.examples_per_persona,
        seed=args.seed,
    )
    write_dataset(args.out, *synthesize(config))
    dataset = load_dataset(args.out)  # what was written is what later commands will read
    print(f"Wrote {dataset.spec.name} to {args.out}: {describe_dataset(dataset)}")
    print(f"{config.n_groups} latent groups, separation {config.separation:g}, "
          f"deviation {config.deviation:g}, leniency {config.leniency:g}, seed {config.seed}")
    return 0
