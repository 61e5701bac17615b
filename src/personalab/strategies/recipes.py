"""Per-persona adapter recipes chosen on validation: ``per_persona``'s ``grid`` option.

One guess of learning rate and epochs (5e-4, 3 epochs) leaves most persona adapters near where
they started when each persona has ~30 rows. With ``grid: {lr: [...], epochs: [...]}`` every
persona adapter is trained under every recipe of the grid (their product), all of them as
fleet shards: one pass over the data per epoch trains every (persona, recipe) pair of a shard,
each with its own schedule and early stopping. Then ONE recipe is kept for all personas: the one whose
adapters have the lowest validation loss pooled over every persona's val rows.

Why one recipe for all and not one per persona: a persona has ~10 val rows, and the best of
several recipes on 10 rows is mostly the luckiest (the winner's curse), a choice the plan's
selection would then see again on those same rows as an optimistic gain. One choice on all
val rows (~2,600 on POPQUORN) is a single degree of freedom, measured on many rows. Why the
loss and not accuracy: the fleet already measures it for early stopping (no extra scoring
pass), and it moves with every row where accuracy moves with few.

A recipe's copy of ``persona/p`` draws ``persona/p``'s own seed, so the kept adapters are
exactly what ``per_persona`` trained with the kept recipe alone would be.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from personalab.errors import PersonalabError
from personalab.strategies.base import FitContext
from personalab.strategies.steps import (
    ensure_unified, fingerprint, fleet_shards, reuse_adapters, rows_by_persona, train_sharded,
)
from personalab.train.fleet import Member

MAX_RECIPES = 16  # each recipe costs one more adapter per persona, in memory and in compute


@dataclass(frozen=True)
class Recipe:
    lr: float
    epochs: int

    def describe(self) -> str:
        return f"lr {self.lr:g}, {self.epochs} epochs"


def recipe_grid(strategy: str, grid: Any) -> dict[str, list] | None:
    """The ``grid`` option checked: None, or ``{lr: [positive numbers], epochs: [whole
    numbers >= 1]}`` (either key may be left out: the run's setting is used)."""
    if grid is None:
        return None
    if not isinstance(grid, Mapping) or not grid or set(grid) - {"lr", "epochs"}:
        raise PersonalabError(f"{strategy} grid must map 'lr' and/or 'epochs' to lists of values, e.g. "
                              f"{{lr: [2e-4, 5e-4, 2e-3], epochs: [3, 6]}}; not {grid!r}")
    checked = {}
    for key, values in grid.items():
        if not isinstance(values, (list, tuple)) or not values or not all(_valid(key, v) for v in values):
            what = "positive numbers" if key == "lr" else "whole numbers of at least 1"
            raise PersonalabError(f"{strategy} grid {key} must be a non-empty list of {what}, not {values!r}")
        checked[key] = sorted(set(values))
    size = math.prod(len(v) for v in checked.values())
    if size > MAX_RECIPES:
        raise PersonalabError(f"{strategy} grid has {size} recipes; at most {MAX_RECIPES} (each one trains "
                              f"another adapter per persona)")
    return checked


def _valid(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if key == "lr":
        return isinstance(value, (int, float)) and value > 0
    return isinstance(value, int) and value >= 1


def expand(grid: Mapping[str, Sequence], lr: float, epochs: int) -> list[Recipe]:
    """Every recipe of the grid, the run's ``lr``/``epochs`` standing in for a missing key."""
    return [Recipe(float(a), int(b)) for a, b in itertools.product(grid.get("lr", [lr]), grid.get("epochs", [epochs]))]


def train_with_recipes(
    context: FitContext,
    groups: Mapping[str, Sequence[str]],
    grid: Mapping[str, Sequence],
    *,
    on_top_of_unified: bool,
    batch_size: int,
    label: str,
) -> None:
    """One adapter per group (adapter name -> its personas) under every recipe of ``grid``,
    trained in fleet shards into the bank as ``recipe<k>/<group>`` (so a killed grid resumes at
    its first unfinished shard); the adapters of the recipe with the lowest pooled val loss
    then become the groups' own, and the others leave the bank. A grid is all or nothing:
    reused only when every group's adapter is."""
    unified = ensure_unified(context)
    settings = replace(context.settings, batch_size=batch_size)
    recipes = expand(grid, settings.lr, settings.epochs)
    train, val = rows_by_persona(context.dataset, "train"), rows_by_persona(context.dataset, "val")
    plain = {name: Member(name, [r for p in ps for r in train[p]], [r for p in ps for r in val[p]])
             for name, ps in groups.items()}
    common = dict(base=context.base_identity, unified=unified, settings=settings.to_dict(), under=on_top_of_unified)
    rows = {name: [(r.persona_id, r.input, r.output) for r in m.train + m.val] for name, m in plain.items()}
    wanted = {name: fingerprint(kind="group-recipes", name=name, recipes=[vars(r) for r in recipes], rows=rows[name],
                                **common) for name in plain}
    if reuse_adapters(context, wanted) == set(plain):
        return
    members, trained_wanted = [], {}
    for k, recipe in enumerate(recipes):
        for name, m in plain.items():
            members.append(Member(recipe_name(k, name), m.train, m.val, lr=recipe.lr, epochs=recipe.epochs,
                                  seed_key=name))
            trained_wanted[recipe_name(k, name)] = fingerprint(kind="group-recipe", name=name, recipe=vars(recipe),
                                                               rows=rows[name], **common)
    train_sharded(context, members, trained_wanted, settings, on_top_of_unified, label)
    scores = {name: entry["scores"]["val_loss"] for name, entry in context.bank.manifest().items()
              if name in trained_wanted}
    pooled = [pooled_val_loss({name: scores[recipe_name(k, name)] for name in plain}, plain)
              for k in range(len(recipes))]
    chosen = min(range(len(recipes)), key=lambda k: (pooled[k], k))
    _keep_recipe(context, plain, chosen, recipes[chosen], wanted, settings, on_top_of_unified)
    context.bank.remove(trained_wanted)
    context.records["recipes"] = {
        "chosen": recipes[chosen].describe(),
        "val_loss": {recipe.describe(): loss for recipe, loss in zip(recipes, pooled)},
    }


def recipe_name(k: int, group: str) -> str:
    """The bank name of ``group``'s adapter under recipe ``k`` while the grid is chosen."""
    return f"recipe{k}/{group}"


def _keep_recipe(context, plain, chosen: int, recipe: Recipe, wanted, settings, on_top_of_unified) -> None:
    """Recipe ``chosen``'s adapters copied to their groups' names, a shard per bank commit, and
    its training records with them (the other recipes' records go)."""
    targets = context.backend.target_modules(settings.target_roles)
    training = context.records.setdefault("training", {})
    for shard in fleet_shards(list(plain), context.fleet_shard):
        adapters = []
        for name in shard:
            trained = recipe_name(chosen, name)
            entry = context.bank.entry(trained)
            adapters.append((name, context.bank.read_weights(trained), {
                "target_modules": targets, "data": {**entry["data"], "recipe": vars(recipe)},
                "scores": entry["scores"], "config_hash": context.config_hash, "fingerprint": wanted[name],
                "on_top_of": entry.get("on_top_of")}))
        context.bank.save_many_weights(adapters, str(context.backend.resolved.path))
    for name in plain:
        record = training.pop(recipe_name(chosen, name), None)
        if record is not None:  # None: trained by an earlier, killed attempt
            training[name] = record
    for key in [key for key in training if key.startswith("recipe")]:
        del training[key]


def pooled_val_loss(losses: Mapping[str, float], members: Mapping[str, Member]) -> float:
    """The mean val loss over every member's val rows (each member's mean weighted by its row
    count); members without val rows take no part."""
    weighted = [(losses[name], len(m.val)) for name, m in members.items() if m.val and math.isfinite(losses[name])]
    total = sum(n for _, n in weighted)
    return sum(loss * n for loss, n in weighted) / total if total else math.inf
