"""Persona identity benchmark: what it costs to give one shared adapter the persona's identity
(``persona_token``) against training the plain unified adapter, and what that identity, or
per-persona label offsets (``persona_bias``), buys on personas who differ individually.

Setup: synthetic personas with no group structure (one group, separation 0) who each lean to
one label on their own (``leniency``), as annotators who rate everything offensive or nothing;
MiniLM (the classifier slot) and the tiny causal LM, through ``personalab.run.rundir.train_run``:

- unified: one adapter on all train rows (and, for a classifier, its head);
- persona_token: one shared adapter on the same rows with each persona's identifier in front
  (it reuses unified's run for the classifier head, so its time is its own adapter alone);
- persona_token_learned: the same with ``identity: learned``, a learned vector per persona
  added to the input embeddings instead of the identifier (reuses unified's run likewise);
- persona_bias: per-persona offsets over unified's scores (reuses unified's adapter).

Reported per model: training seconds of unified and both persona_token runs and their ratios
(``token_over_unified``, ``learned_over_unified``; the issue asks for <= 1.3), and each
strategy's test accuracy with the
persona-level paired comparison against unified (``personalab.evaluate.compare``: difference,
95% persona bootstrap CI, sign-flip p). Timings come from one run: compare the ratio, not the
seconds, on a shared machine. ``--quick`` (6 personas, 1 epoch, 1 thread) only checks that it
runs.

    python bench/persona_identity.py --out runs/bench/persona_identity.json
    python bench/persona_identity.py --quick
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from common import base_parser, finish, model_names, setup, timed

from personalab.data import write_dataset
from personalab.data.synth import SynthConfig, synthesize
from personalab.evaluate.compare import compare_runs
from personalab.run.evaluation import evaluate_run
from personalab.models.base import ModelSpec
from personalab.run.rundir import RunConfig, train_run
from personalab.train.presets import resolve_settings

# run name -> (strategy, its options)
STRATEGIES = {
    "unified": ("unified", {}),
    "persona_token": ("persona_token", {}),
    "persona_token_learned": ("persona_token", {"identity": "learned"}),
    "persona_bias": ("persona_bias", {}),
}


def main() -> None:
    parser = base_parser(__doc__)
    parser.add_argument("--personas", type=int, default=24)
    parser.add_argument("--examples-per-persona", type=int, default=60)
    parser.add_argument("--leniency", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        args.personas, args.examples_per_persona, args.epochs = 6, 20, 1
    device, env = setup(args)
    results: dict[str, Any] = {"config": {**{k: v for k, v in vars(args).items() if k != "out"}, "quick": args.quick},
                               "environment": env}
    with tempfile.TemporaryDirectory() as work:
        data = Path(work) / "data"
        write_dataset(data, *synthesize(SynthConfig(
            n_personas=args.personas, n_groups=1, separation=0.0, leniency=args.leniency,
            examples_per_persona=args.examples_per_persona, seed=args.seed)))
        for slot, name in model_names(args).items():
            results[slot] = run_model(Path(work) / slot, data, name, device, args)
    finish(results, args.out, [("seconds_unified", "unified s"), ("seconds_persona_token", "token s"),
                               ("token_over_unified", "token/unified"),
                               ("learned_over_unified", "learned/unified"), ("accuracy_unified", "unified acc"),
                               ("accuracy_persona_token", "token acc"),
                               ("accuracy_persona_token_learned", "learned acc"),
                               ("accuracy_persona_bias", "bias acc"), ("p_persona_token", "token p"),
                               ("p_persona_token_learned", "learned p"), ("p_persona_bias", "bias p")])


def run_model(root: Path, data: Path, name: str, device: str, args) -> dict[str, Any]:
    """Train every run of ``STRATEGIES`` on ``name``; their seconds, accuracies and comparisons."""
    record: dict[str, Any] = {"model": name}
    for run, (strategy, options) in STRATEGIES.items():
        config = RunConfig(data=str(data), strategy=strategy, strategy_options=options, seed=args.seed,
                           model=ModelSpec(name=name, device=device, with_profile=False),
                           settings=resolve_settings(epochs=args.epochs))
        reuse = [] if run == "unified" else [root / "unified"]
        _, seconds = timed(device, lambda: train_run(config, root / run, progress=False, reuse=reuse))
        record[f"seconds_{run}"] = seconds
        record[f"accuracy_{run}"] = evaluate_run(root / run, progress=False, references=False)["accuracy"]
        if run != "unified":
            overall = compare_runs(root / "unified", root / run, "test", n_resamples=999, seed=0)["overall"]
            record[f"difference_{run}"] = overall["difference"]
            record[f"ci_{run}"] = [overall["ci_low"], overall["ci_high"]]
            record[f"p_{run}"] = overall["p_value"]
    record["token_over_unified"] = record["seconds_persona_token"] / record["seconds_unified"]
    record["learned_over_unified"] = record["seconds_persona_token_learned"] / record["seconds_unified"]
    return record


if __name__ == "__main__":
    main()
