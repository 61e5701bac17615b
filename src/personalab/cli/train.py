"""``personalab train``: train one strategy into a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from personalab.errors import PersonalabError

# ModelSpec accepts the same (models.base.DTYPES, which a test compares); importing it would load
# torch for every `--help`.
DTYPES = ("float32", "bfloat16", "float16")

EPILOG = """\
examples:
  personalab train --data data/synth --strategy unified --out runs/unified
  personalab train --data data/synth --strategy per_persona --out runs/personas
  personalab train --data data/synth --strategy per_persona --on-top-of unified --out runs/stacked
  personalab train --data data/popquorn --out runs/pq --preset constrained --epochs 5
  personalab train --data data/x --out runs/qwen --model /models/Qwen2.5-0.5B-Instruct
  personalab train --data data/synth --strategy per_cluster --set k=4 --out runs/clusters
  personalab train --data data/synth --strategy weighted_merge --reuse runs/personas --out runs/merge
  personalab train --data data/synth --strategy per_cluster --augment synonyms,context_noise --out runs/aug
  personalab train --config my_run.yaml --out runs/mine     # flags override the file
  personalab train --data data/synth --strategy unified --repeats 3 --out runs/unified   # seeds 0, 1, 2
  personalab train --data data/synth --strategy per_persona --fleet-shard 16 --executor ray --out runs/personas
  personalab train --data data/x --strategy per_persona --executor ray --ray-address 10.0.0.1:6379 --gpus-per-task 1 --out runs/big

The run directory gets the adapter bank (PEFT format, safetensors), the resolved config and
the learning curves; evaluate it with `personalab evaluate RUN_DIR`. The same command again
keeps what is already trained with the same settings and data.

repeats: a p-value describes one trained instance, and with ~30 rows per persona the spread
from seed to seed can be as large as the gain. --repeats N trains the run N times: under --seed
into OUT, then under seed+1 ... seed+N-1 into OUT/repeats/seed<S>/ (same settings but the seed).
Each repeat costs one more training. `personalab evaluate OUT` then reports every seed with
the mean and standard deviation, and `personalab compare A B` the gain seed by seed.
An adapter's fingerprint includes its seed, so --reuse RUN_DIR lends to a repeat only from
RUN_DIR/repeats/seed<S>/: train the lender with the same --repeats, or each repeat retrains
what it would have reused (e.g. the unified adapter beneath a stacked strategy).

executors: --executor ray trains a fleet's shards (--fleet-shard adapters each) as Ray tasks, all
at once as the cluster's CPUs and GPUs allow; each task loads the base model itself and returns
its adapters as bytes, which this process checks (sha256) and alone writes into the bank. A
worker or node that dies has its shard submitted again (--max-retries). Without --ray-address
(or RAY_ADDRESS) a private cluster starts on this machine; with one, the run joins a cluster
started by `ray start --head` (see the README). Ray is optional: pip install 'personalab[ray]'.
The adapters are the same bit for bit whatever executes them (one torch thread per task).
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a personalization strategy into a run directory",
        description="Train a personalization strategy (see `personalab ls strategies`).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", help="dataset folder (personas.jsonl, examples.jsonl, dataset.yaml)")
    parser.add_argument("--out", required=True, type=Path, help="run directory to create")
    parser.add_argument("--strategy", help="strategy name (default: unified); NAME:PRESET also picks the preset, e.g. per_cluster:constrained")
    parser.add_argument("--on-top-of", metavar="ADAPTER", help="per_persona, weighted_merge, lorahub: train each persona adapter with this one (unified) active and frozen beneath")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="options",
                        help="a strategy option, e.g. --set k=8 --set on_top_of=unified (repeatable; see `personalab ls strategies`)")
    parser.add_argument("--reuse", action="append", default=[], type=Path, metavar="RUN_DIR",
                        help="take adapters this earlier run trained from identical data, model, settings and seed instead of retraining them "
                             "(repeatable; with --repeats, each repeat also takes from RUN_DIR/repeats/seed<S>/)")
    parser.add_argument("--config", type=Path, help="YAML run config (keys: data, strategy, preset, seed, model, settings)")
    add_model_arguments(parser)
    settings = parser.add_argument_group("training settings (override the preset)")
    settings.add_argument("--preset", help="named settings: default, constrained (see `personalab ls presets`)")
    settings.add_argument("--epochs", type=int, help="maximum epochs (early stopping may end sooner)")
    settings.add_argument("--lr", type=float, help="learning rate of the LoRA weights")
    settings.add_argument("--batch-size", type=int, help="rows per optimizer step")
    settings.add_argument("--r", type=int, help="LoRA rank")
    settings.add_argument("--alpha", type=float, help="LoRA alpha (scale = alpha / r)")
    settings.add_argument("--targets", help="comma-separated projection roles, e.g. query,value")
    settings.add_argument("--seed", type=int, help="seed for initialisation and data order (default 0)")
    parser.add_argument("--holdout", type=float, metavar="FRACTION",
                        help="keep this fraction of personas out of all training (only their test rows remain) to measure cold start, e.g. 0.1")
    parser.add_argument("--augment", metavar="NAMES",
                        help="augment the train split (never val/test) with these augmenters, comma-separated, "
                             "e.g. synonyms,swap,context_noise (see `personalab ls augmenters`)")
    parser.add_argument("--augment-copies", type=int, metavar="N", help="augmented copies per train row (default 2: 3x data)")
    parser.add_argument("--repeats", type=_positive_int, default=1, metavar="N",
                        help="train N times, under seeds seed ... seed+N-1, the repeats into OUT/repeats/seed<S>/ "
                             "(default 1; each repeat costs one more training; see 'repeats' below)")
    parser.add_argument("--fleet-shard", type=_positive_int, metavar="N",
                        help="train at most N adapters of a fleet at once (default 64): memory grows with N, not with the "
                             "number of personas; a killed run resumes at the first shard not yet in the bank")
    add_executor_arguments(parser)
    parser.add_argument("--force", action="store_true", help="retrain a run directory (and its repeats) that is already trained")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", help="minilm (embedded default), tiny-classifier, tiny-causal-lm, a local folder, or a cached hub id")
    group.add_argument("--no-profile", action="store_true", help="do not give the persona's profile to the model")
    group.add_argument("--max-length", type=int, help="maximum tokens per input (default 128): a longer causal-LM prompt keeps its first and last halves (template and profile, end of the input); a classifier cuts the longer of profile and input")
    group.add_argument("--allow-pickle", action="store_true", help="allow .bin/.pt weights (unsafe: pickle can run code)")
    group.add_argument("--trust-remote-code", action="store_true", help="allow model code shipped with the model (unsafe)")
    add_execution_arguments(group)


def add_execution_arguments(group: Any) -> None:
    """Where and how the base model runs (``ModelSpec``'s execution fields and its dtype)."""
    group.add_argument("--device", help="auto (default: cuda when available, else cpu), cpu, cuda or cuda:N")
    group.add_argument("--dtype", choices=DTYPES,
                       help="the base model's weights (default float32; bfloat16 on a recent GPU); adapters, "
                            "their gradients, the optimizer and a classifier's head stay float32; float16 "
                            "scales the loss. Changes results, so adapters trained in another dtype are not reused")
    group.add_argument("--gradient-checkpointing", action="store_true",
                       help="recompute activations in backward instead of keeping them: less memory, "
                            "about a third slower (fleet training included)")
    group.add_argument("--train-batch-size", type=int, metavar="ROWS",
                       help="rows per forward/backward pass of fleet training, several personas' mini-batches "
                            "packed together (default 64; lower it when memory runs out). Not --batch-size, "
                            "which is each adapter's own mini-batch and changes the training")
    group.add_argument("--score-batch-size", type=int, metavar="N",
                       help="rows (a classifier) or sequences (a causal LM) per forward pass when scoring "
                            "(default 64 on cpu, 256 on cuda)")


def execution_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The execution flags given on the command line, as ``ModelSpec`` fields."""
    flags = {"device": args.device, "dtype": args.dtype, "train_batch_size": args.train_batch_size,
             "score_batch_size": args.score_batch_size}
    if args.gradient_checkpointing:
        flags["gradient_checkpointing"] = True
    return {k: v for k, v in flags.items() if v is not None}


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("executor (where fleet shards train; see 'executors' below)")
    group.add_argument("--executor", choices=("local", "ray"),
                       help="local: in this process, one shard after another (default); ray: shards as Ray tasks")
    group.add_argument("--ray-address", metavar="HOST:PORT",
                       help="a running Ray cluster's head (default: RAY_ADDRESS, else a private cluster on this machine)")
    group.add_argument("--cpus-per-task", type=float, metavar="N",
                       help="CPUs per Ray task, and its torch threads (default 1)")
    group.add_argument("--gpus-per-task", type=float, metavar="N",
                       help="GPUs per Ray task (default 0; 0.5 puts two shards on one GPU)")
    group.add_argument("--max-retries", type=int, metavar="N",
                       help="times a Ray task is submitted again when its worker or node dies (default 2; 0: never)")


def executor_from_args(args: argparse.Namespace, base: Any = None):
    """The ``ExecutorSpec`` the flags ask for over ``base`` (a plan's); None: in this process."""
    from personalab.run.executor import executor_spec

    if args.ray_address and (args.executor or getattr(base, "kind", "local")) != "ray":
        raise PersonalabError("--ray-address is for the ray executor: add --executor ray")
    return executor_spec(args.executor, args.ray_address, args.cpus_per_task, args.gpus_per_task,
                         args.max_retries, base)


def run(args: argparse.Namespace) -> int:
    from personalab.run.executor import make_executor
    from personalab.run.rundir import train_repeats

    config = config_from_args(args)
    executor = make_executor(executor_from_args(args))  # Ray missing or unreachable fails before any work
    seeds = f", seeds {config.seed} to {config.seed + args.repeats - 1}" if args.repeats > 1 else ""
    where = f" on Ray ({executor.describe()})" if executor.kind == "ray" else ""
    print(f"training {config.strategy!r} on {config.data} with {config.model.name} (preset {config.preset}{seeds}){where} -> {args.out}")
    try:
        train_repeats(config, args.out, args.repeats, progress=not args.quiet, force=args.force, reuse=args.reuse,
                      executor=executor)
    finally:
        executor.close()
    print(f"done: {args.out}\nnext: personalab evaluate {args.out}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def config_from_args(args: argparse.Namespace) -> "RunConfig":
    """Preset, then the config file, then flags: each later source overrides the earlier."""
    from personalab.models.base import ModelSpec
    from personalab.run.rundir import RunConfig, read_run_config
    from personalab.train.presets import resolve_settings

    # A key set to null in the file is not given there, as in plans.
    file = {k: v for k, v in read_run_config(args.config).items() if v is not None} if args.config else {}
    data = args.data or file.get("data")
    if not data:
        raise PersonalabError("no dataset: pass --data DIR (or `data:` in --config)")
    model = {**file.get("model", {}), **_model_flags(args)}
    flags = {
        "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "r": args.r, "alpha": args.alpha,
        "target_roles": args.targets.split(",") if args.targets else None,
    }
    strategy = args.strategy or file.get("strategy", "unified")
    strategy, _, suffix = strategy.partition(":")  # "per_cluster:constrained" names a preset too
    preset = args.preset or suffix or file.get("preset", "default")
    settings = resolve_settings(preset, **{**file.get("settings", {}), **{k: v for k, v in flags.items() if v is not None}})
    seed = args.seed if args.seed is not None else int(file.get("seed", 0))
    spec = ModelSpec(**model)
    options = dict(file.get("strategy_options") or {})
    options.update(parse_options(args.options))
    if args.on_top_of:
        options["on_top_of"] = args.on_top_of
    holdout = args.holdout if args.holdout is not None else float(file.get("holdout", 0.0))
    augment = args.augment.split(",") if args.augment else list(file.get("augment") or [])
    copies = args.augment_copies if args.augment_copies is not None else int(file.get("augment_copies", 2))
    shard = args.fleet_shard if args.fleet_shard is not None else int(file.get("fleet_shard", 64))
    return RunConfig(data=str(Path(data).resolve()), strategy=strategy, strategy_options=options, preset=preset,
                     seed=seed, holdout=holdout, augment=augment, augment_copies=copies, model=spec, settings=settings,
                     fleet_shard=shard)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``["k=8", "space=prob"]`` -> ``{"k": 8, "space": "prob"}`` (values read as YAML)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise PersonalabError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set k=8")
        try:
            options[key.strip().replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise PersonalabError(f"--set {pair!r}: cannot read the value {value!r}") from None
    return options


def _model_flags(args: argparse.Namespace) -> dict[str, Any]:
    flags = {"name": args.model, "max_length": args.max_length, **execution_flags(args)}
    if args.no_profile:
        flags["with_profile"] = False
    if args.allow_pickle:
        flags["allow_pickle"] = True
    if args.trust_remote_code:
        flags["trust_remote_code"] = True
    return {k: v for k, v in flags.items() if v is not None}
