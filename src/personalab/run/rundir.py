"""The run directory: its layout, its resolved config, training a strategy into it, and
opening it again for evaluation.

    RUN_DIR/config.yaml            the resolved config (every setting, library versions)
    RUN_DIR/bank/                  the adapter bank (PEFT adapter folders + manifest.json)
    RUN_DIR/classifier_head.safetensors  a classifier's head, trained with the first adapter
    RUN_DIR/training.json          learning curves and what the strategy recorded
    RUN_DIR/personalizer.json      how personas are routed; written last: the run is complete
    RUN_DIR/eval/<split>/          predictions.jsonl and metrics.json
    RUN_DIR/repeats/seed<S>/       the same run trained again under seed S (``--repeats``): a
                                   complete run directory of its own

Every file is written to a temporary name and renamed into place. A run config — a file for
``personalab train --config`` or a run's config.yaml — is checked key by key against
``RunConfig``'s fields (``personalab.data.yaml_reader``), every problem with file and line.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import yaml

from personalab.bank import AdapterBank
from personalab.data import load_dataset
from personalab.data.atomic import atomic_write_text
from personalab.data.splits import held_out_personas, without_training_rows
from personalab.data.schema import Dataset
from personalab.data.yaml_reader import Reader, load_yaml_mapping
from personalab.engine import MultiLoraModel
from personalab.errors import PersonalabError
from personalab.models import build_backend
from personalab.models.base import Backend, ModelSpec
from personalab.routing import Personalizer, personalizer_from_json, vectors_of
from personalab.strategies import FitContext, get_strategy
from personalab.strategies.steps import dataset_fingerprint, fingerprint
from personalab.train.head import HEAD_FILE, load_head
from personalab.train.presets import TrainSettings, check_preset, read_settings

CONFIG = "config.yaml"
PERSONALIZER = "personalizer.json"
TRAINING = "training.json"
REPEATS = "repeats"
# What a run's config.yaml records beside the config itself.
RECORDED = ("data_fingerprint", "versions")


@dataclass
class RunConfig:
    data: str
    strategy: str = "unified"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    preset: str = "default"
    seed: int = 0
    holdout: float = 0.0  # fraction of personas kept out of all training (cold-start test)
    augment: list[Any] = field(default_factory=list)  # augmenters of the train split (modifier)
    augment_copies: int = 2  # augmented copies per train row: 2 gives the playbook's 3x data
    model: ModelSpec = field(default_factory=ModelSpec)
    settings: TrainSettings = field(default_factory=TrainSettings)
    fleet_shard: int = 64
    """At most this many adapters of a fleet train at once: memory grows with the shard, not
    with the number of personas (a finished shard goes to the bank and is freed)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data,
            "strategy": self.strategy,
            "strategy_options": dict(self.strategy_options),
            "preset": self.preset,
            "seed": self.seed,
            "holdout": self.holdout,
            "augment": list(self.augment),
            "augment_copies": self.augment_copies,
            "model": asdict(self.model),
            "settings": self.settings.to_dict(),
            "fleet_shard": self.fleet_shard,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "<run config>", lines: dict[str, int] | None = None) -> "RunConfig":
        """The config that ``data`` (``to_dict``'s mapping, or a config file's) describes; every
        problem with it is raised at once, with ``source``, the key and its line in ``lines``."""
        return cls(**check_run_config(data, source, lines or {}, required=("data",)))

    def recipe(self) -> dict[str, Any]:
        """``to_dict`` less how the model runs (device, batch sizes per pass, checkpointing:
        ``ModelSpec.identity``; the fleet shard): two configs with the same recipe train the
        same adapters, so a run or plan step done under one is kept under the other."""
        recipe = {**self.to_dict(), "model": self.model.identity()}
        del recipe["fleet_shard"]
        return recipe

    def held_out(self, dataset: Dataset) -> list[str]:
        return held_out_personas(dataset.personas, self.holdout, self.seed) if self.holdout else []

    def config_hash(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_run_config(path: Path) -> dict[str, Any]:
    """The mapping in the run config file at ``path`` (``personalab train --config``), checked;
    every key is optional there, since flags can give it."""
    data, lines = load_yaml_mapping(path, "run config", " (data, strategy, preset, settings, ...)")
    check_run_config(data, str(path), lines)
    return data


def check_run_config(data: Any, source: str, lines: dict[str, int], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """``RunConfig``'s arguments from the mapping ``data``, checked: unknown keys, wrong types,
    an unknown preset and settings the preset refuses are raised at once, each at its key."""
    reader = Reader(source, lines, "run config")
    given = reader.fields(data, RunConfig, "", RECORDED)
    if given is None:
        reader.raise_problems()  # not a mapping: nothing more to check
    for key in required:
        reader.value(data, key, "", "a string", required=True)
    if "preset" in given:
        check_preset(reader, given["preset"], "preset")
    if "fleet_shard" in given:
        given["fleet_shard"] = reader.integer(given, "fleet_shard", "", 64, 1)
    if "holdout" in given:
        given["holdout"] = reader.number(given, "holdout", "", 0.0, 0.0, 1.0, open_high=True)
    if "model" in given:
        try:
            given["model"] = ModelSpec(**(reader.fields(given["model"], ModelSpec, "model") or {}))
        except PersonalabError as error:  # a value of the right type out of range
            reader.problem("model", str(error))
    if "settings" in given:
        # Settings are stored whole, so they are read over the defaults, not over the preset.
        given["settings"] = read_settings(reader, given["settings"], "settings")
    reader.raise_problems()
    for key, copy in (("strategy_options", dict), ("augment", list)):  # the config's own, not the caller's
        if key in given:
            given[key] = copy(given[key])
    return given


@dataclass
class Run:
    """A trained run opened for use: its config, data, backend and routed model."""

    root: Path
    config: RunConfig
    dataset: Dataset
    backend: Backend
    personalizer: Personalizer
    model: MultiLoraModel  # the base model with the personalizer's adapters, routable per row


def train_run(
    config: RunConfig, out: Path, progress: bool = True, force: bool = False, reuse: Sequence[Path] = (),
    executor: Any = None, dataset: Dataset | None = None,
) -> Personalizer:
    """Train ``config.strategy`` into a new run directory ``out``, taking adapters that earlier
    runs ``reuse`` trained from identical inputs (same fingerprint) instead of retraining them.
    ``executor`` (``personalab.run.executor``; None: this process) trains the fleet shards;
    whatever it is, only this process writes into ``out``. ``dataset``: ``config.data`` already
    loaded (a plan step's task gets it by reference, not by path)."""
    out = Path(out)
    if (out / PERSONALIZER).exists() and not force:
        raise PersonalabError(f"{out} already holds a trained run; pass --force to overwrite it, or choose another --out")
    strategy = get_strategy(config.strategy, **config.strategy_options)  # bad options fail first
    dataset = dataset if dataset is not None else load_dataset(config.data)
    data_hash = dataset_fingerprint(dataset)
    held_out = config.held_out(dataset)
    dataset = without_training_rows(dataset, held_out)
    dataset, augmented = _augmented(config, dataset)
    build = backend_builder(config, dataset)
    backend = build()
    out.mkdir(parents=True, exist_ok=True)
    resuming = _killed_run_of(out, config, data_hash)
    # The personalizer marks a complete run: drop it first so that a crash while retraining
    # cannot leave it pointing at a half-replaced bank; then clear what an earlier run left,
    # so that the new run is never mixed with the old. A killed run of this very config keeps
    # its bank and head: every adapter there is fingerprinted, so the strategy takes the
    # finished ones (whole fleet shards) and trains the rest.
    for leftover in (PERSONALIZER, TRAINING, "clusters.png") + (() if resuming else (HEAD_FILE,)):
        (out / leftover).unlink(missing_ok=True)
    # Repeats of an earlier config would pass for repeats of this one: they go too.
    for folder in ("eval", "router", REPEATS) + (() if resuming else ("bank",)):
        shutil.rmtree(out / folder, ignore_errors=True)
    atomic_write_text(out / CONFIG, yaml.safe_dump(
        {**config.to_dict(), "data_fingerprint": data_hash, "versions": versions()}, sort_keys=False))
    context = FitContext(
        dataset, backend, AdapterBank(out / "bank"), config.settings, out, config.seed, progress,
        config_hash=config.config_hash(),
        base_identity=fingerprint(model=config.model.identity(), data=dataset_fingerprint(dataset), seed=config.seed),
        reuse=[_trained_run(Path(r)) for r in reuse], fleet_shard=config.fleet_shard,
        executor=executor, build_backend=build,
    )
    context.records["held_out_personas"] = held_out
    if augmented:
        context.records["augment"] = augmented
    started = time.perf_counter()
    personalizer = strategy.fit(context)
    context.records["seconds"] = time.perf_counter() - started
    atomic_write_text(out / TRAINING, json.dumps(context.records, indent=2))
    atomic_write_text(out / PERSONALIZER, json.dumps(personalizer.to_json(), indent=2))
    return personalizer


def _killed_run_of(root: Path, config: RunConfig, data_hash: str) -> bool:
    """Whether ``root`` holds an unfinished run of ``config`` on the same data (a run killed or
    failed while training): its bank may then be resumed."""
    if not (root / CONFIG).exists() or (root / PERSONALIZER).exists():
        return False
    try:
        return read_config(root).get("data_fingerprint") == data_hash and run_config(root).recipe() == config.recipe()
    except PersonalabError:
        return False  # a damaged config: start afresh


def open_run(root: Path, dataset: Dataset | None = None) -> Run:
    """The trained run at ``root``; ``dataset``: its ``config.data`` already loaded."""
    root = Path(root)
    if not (root / PERSONALIZER).exists():
        raise PersonalabError(f"{root} is not a trained run (no {PERSONALIZER}); train one with `personalab train`")
    config = run_config(root)
    dataset = dataset if dataset is not None else load_dataset(config.data)
    personalizer = personalizer_from_json(json.loads((root / PERSONALIZER).read_text(encoding="utf-8")))
    backend = _backend(config, dataset)
    load_head(backend, root)
    model = AdapterBank(root / "bank").load_engine(backend.model, personalizer.adapters(),
                                                   vectors=vectors_of(personalizer))
    return Run(root, config, dataset, backend, personalizer, model)


def read_config(root: Path) -> dict[str, Any]:
    """The run's config.yaml as written: the config, plus the data fingerprint and versions."""
    return load_yaml_mapping(Path(root) / CONFIG, "run config")[0]


def run_config(root: Path) -> RunConfig:
    """The config the run at ``root`` was trained with, checked: a hand-edited config.yaml is
    reported with file, line and key."""
    path = Path(root) / CONFIG
    data, lines = load_yaml_mapping(path, "run config")
    return RunConfig.from_dict(data, str(path), lines)


def trained_with(root: Path, config: RunConfig) -> bool:
    """Whether ``root`` holds a complete run of ``config`` on the data now in ``config.data``,
    so that running the same command again has nothing to train. Library versions are not
    compared: a run an older release trained is still this config's run."""
    root = Path(root)
    if not (root / PERSONALIZER).exists():
        return False
    stored = read_config(root)
    # A run from before data fingerprints were recorded cannot show its data is unchanged.
    if not stored.get("data_fingerprint") or run_config(root).recipe() != config.recipe():
        return False
    return stored["data_fingerprint"] == dataset_fingerprint(load_dataset(config.data))


def repeat_dir(root: Path, seed: int) -> Path:
    """Where the run at ``root`` trained again under ``seed`` lives."""
    return Path(root) / REPEATS / f"seed{seed}"


def repeat_runs(root: Path) -> list[tuple[int, Path]]:
    """(seed, run directory): the run at ``root`` under its own seed first, then each complete
    repeat of it by seed. A folder under repeats/ whose config differs from the run's in more
    than the seed is not a repeat of it, and is left out."""
    config = run_config(root)
    repeats = []
    for folder in (Path(root) / REPEATS).glob("seed*"):
        seed = folder.name.removeprefix("seed")
        if seed.lstrip("-").isdigit() and (folder / PERSONALIZER).exists() and int(seed) != config.seed \
                and run_config(folder) == replace(config, seed=int(seed)):
            repeats.append((int(seed), folder))
    return [(config.seed, Path(root)), *sorted(repeats)]


def train_repeats(
    config: RunConfig, out: Path, repeats: int = 1, *, progress: bool = True, force: bool = False,
    reuse: Sequence[Path] = (), say: Callable[[str], None] = print, executor: Any = None,
) -> None:
    """Train ``config`` into ``out`` under its seed, then ``repeats - 1`` more times under
    seed + 1, ... into ``repeat_dir(out, seed)``, saying how each went. A run already complete
    with the same config and data is kept unless ``force``: the same command again resumes."""
    if repeats < 1:
        raise PersonalabError(f"repeats must be at least 1, got {repeats}")
    for number, seed in enumerate(range(config.seed, config.seed + repeats), 1):
        target = Path(out) if number == 1 else repeat_dir(out, seed)
        seeded = replace(config, seed=seed)
        name = f"[{number}/{repeats}] seed {seed}: {target}" if repeats > 1 else str(target)
        if not force and trained_with(target, seeded):
            say(f"{name}: already trained with these settings and data, kept (--force retrains it)")
            continue
        if repeats > 1:
            say(f"{name}: training")
        started = time.perf_counter()
        train_run(seeded, target, progress=progress, force=force, reuse=_lenders(reuse, seed), executor=executor)
        if repeats > 1:
            say(f"{name}: trained in {time.perf_counter() - started:.0f} s")


def _lenders(reuse: Sequence[Path], seed: int) -> list[Path]:
    # Every adapter's fingerprint holds the seed it was trained under, so only a run of the same
    # seed can lend it: a lender's own repeat of this seed, when it has one, lends too.
    lenders = [Path(r) for r in reuse]
    return lenders + [repeat_dir(r, seed) for r in lenders if (repeat_dir(r, seed) / "bank" / "manifest.json").exists()]


def _augmented(config: RunConfig, dataset: Dataset) -> tuple[Dataset, dict[str, Any] | None]:
    """The dataset with augmented train rows (val and test untouched), and the report."""
    if not config.augment:
        return dataset, None
    from personalab.augment import augment_dataset

    augmented, report = augment_dataset(dataset, config.augment, copies=config.augment_copies, seed=config.seed)
    print(report.summary())
    return augmented, report.to_dict()


def _trained_run(root: Path) -> Path:
    # A bank holds only complete adapters, so a run still training (or killed) can lend the
    # ones it has finished.
    if not (root / "bank" / "manifest.json").exists():
        raise PersonalabError(f"--reuse {root}: no adapter bank there (not a run directory, or nothing trained yet)")
    return root


def training_records(root: Path) -> dict[str, Any]:
    path = Path(root) / TRAINING
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _backend(config: RunConfig, dataset: Dataset) -> Backend:
    return backend_builder(config, dataset)()


def backend_builder(config: RunConfig, dataset: Dataset) -> Callable[[], Backend]:
    """A picklable call that builds the run's backend: here, and in a worker of an executor
    elsewhere, which loads the same base model from its own node (path or cache)."""
    return partial(build_backend, config.model, _label_set(dataset), dict(dataset.profiles), seed=config.seed,
                   task=dataset.spec.task)


def _label_set(dataset: Dataset) -> tuple[str, ...]:
    """The dataset's choices, then any extra per-row choices in first-seen order."""
    labels = list(dataset.spec.choices or ())
    for example in dataset.examples:
        for choice in example.choices or ():
            if choice not in labels:
                labels.append(choice)
    return tuple(labels)


def versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    from personalab import __version__

    return {
        "personalab": __version__,
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "transformers": str(transformers.__version__),
        "peft": str(peft.__version__),
    }
