"""Answering a few texts for one persona with a trained run (``personalab predict``): the
persona's own route, or for a persona the run has no route for, the default route, or the
run's router placing the persona by its profile text (new personas of a ``moe`` run).

Scores go through the same engine and backend as evaluation, so an answer here is the answer
``personalab evaluate`` would give for the same row. Probabilities are the softmax of the
choice scores over the choices: a classifier's own probabilities, and for a causal LM the
likelihoods of the choices renormalised among themselves. A generation run generates each
answer through the same routes (an ensemble mixing its members' next-token distributions).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from personalab.data.schema import Example
from personalab.engine.routes import Route
from personalab.errors import PersonalabError
from personalab.models.decoding import GenerationSettings
from personalab.routing import Ensemble, PersonaBias, RoutingTable, add_offsets, generate_tables, predict_ensemble
from personalab.run.rundir import Run

ROUTER_DIR = "router"


@dataclass(frozen=True)
class Answer:
    text: str
    choice: str  # the predicted choice; for a generation run, the generated answer
    probabilities: dict[str, float]  # over the choices; empty for a generation run


@dataclass(frozen=True)
class PersonaAnswers:
    persona_id: str
    how: str  # how the persona was routed, in words
    route: str  # the route (or ensemble of routes) that scored the texts
    answers: list[Answer]


def answer(run: Run, persona_id: str, texts: Sequence[str], profile: str | None = None,
           generation: GenerationSettings | None = None) -> PersonaAnswers:
    """The predicted choice and choice probabilities of each text for ``persona_id`` (for a
    generation run, the generated answer, under ``generation``). ``profile`` describes a
    persona the run does not know (its profile is given to the model like the known
    personas', and places it with the router when the run has one)."""
    _check_request(run, texts)
    known = persona_id in run.dataset.personas
    if not known:
        run.backend.profiles[persona_id] = profile or ""  # "" leaves the profile out of the input
    ignored = " (--profile ignored: the run knows this persona's profile)" if known and profile else ""
    rows = [Example(persona_id, text, (run.backend.choices or ("",))[0], "test") for text in texts]
    bias = run.personalizer if isinstance(run.personalizer, PersonaBias) else None
    if isinstance(run.personalizer, Ensemble):
        members, space = run.personalizer.members, run.personalizer.space
        how, shown = _ensemble_how(run, persona_id, known), _ensemble_route(run, persona_id)
    else:
        table = bias.inner if bias else run.personalizer
        route, how = _route(run, table, persona_id, known, profile)
        # The persona's own route alone, with its identifier and learned vector (persona_token).
        own = {persona_id: route} if persona_id in table.table else {}
        members = [(RoutingTable(route, own, identifiers=table.identifiers, vectors=table.vectors), 1.0)]
        space = "logprob"
        shown = _shown(table, route, persona_id)
    if run.dataset.spec.task == "generation":
        outputs = generate_tables(run.backend, run.model, members, rows, space, generation, progress=False)
        return PersonaAnswers(persona_id, how + ignored, shown, [Answer(t, o, {}) for t, o in zip(texts, outputs)])
    scores = predict_ensemble(run.backend, run.model, members, rows, space, progress=False)
    if bias:
        scores = add_offsets(scores, rows, bias)
        how += ", plus its own choice offsets" if persona_id in bias.offsets else ", without choice offsets (none fit for it)"
    answers = [_answer(text, row_scores, run.backend.choices) for text, row_scores in zip(texts, scores)]
    return PersonaAnswers(persona_id, how + ignored, shown, answers)


def _shown(table: RoutingTable, route: Route, persona_id: str) -> str:
    """The route in words, with the persona's identity (``persona_token``) when it has one."""
    identifier = table.identifier(persona_id)
    if identifier:
        return f"{route} with identifier {identifier!r}"
    return f"{route} with its learned persona vector" if table.vector(persona_id) else str(route)


def _check_request(run: Run, texts: Sequence[str]) -> None:
    if not texts:
        raise PersonalabError("give at least one text to answer")
    empty = [i + 1 for i, text in enumerate(texts) if not text.strip()]
    if empty:
        raise PersonalabError(f"text {empty[0]} is empty; give the input text to answer")
    if not run.backend.choices and run.dataset.spec.task != "generation":
        raise PersonalabError("predict answers closed-choice tasks; this run's dataset has no choices")


def _route(run: Run, table: RoutingTable, persona_id: str, known: bool, profile: str | None) -> tuple[Route, str]:
    if not table.uses_default(persona_id):
        return table.route(persona_id), "its own route"
    if known:
        return table.default, "the default route (the run trained no route of its own for it)"
    router = run.root / ROUTER_DIR
    if (router / "router.json").is_file() and profile:
        return _router_route(run, profile), "the router, from its profile (a persona new to the run)"
    hint = "; give --profile to place it with the router" if (router / "router.json").is_file() else ""
    return table.default, f"the default route (a persona new to the run{hint})"


def _router_route(run: Run, profile: str) -> Route:
    """The router's mixture for a new persona placed by ``profile``, with its experts
    loaded into the engine (a run loads only the adapters its table names)."""
    from safetensors.numpy import load_file

    from personalab.embed.personas import embed_persona
    from personalab.strategies.moe import Router

    info = json.loads((run.root / ROUTER_DIR / "router.json").read_text(encoding="utf-8"))
    keys = load_file(str(run.root / ROUTER_DIR / "router.safetensors"))
    router = Router(info["experts"], keys["keys"], keys["profile_keys"], int(info["top_k"]), float(info["temperature"]))
    route = router.route(embed_persona(profile, source="profile"), by_profile=True)
    _load_missing(run, route.adapters)
    return route


def _load_missing(run: Run, names: Sequence[str]) -> None:
    from personalab.bank import AdapterBank

    bank = AdapterBank(Path(run.root) / "bank")
    for name in names:
        if name not in run.model.adapter_names:
            run.model.add_adapter(name, bank.read_weights(name))


def _ensemble_how(run: Run, persona_id: str, known: bool) -> str:
    if not run.personalizer.uses_default(persona_id):
        return "its own routes in each member of the ensemble"
    new = "" if known else " (a persona new to the run)"
    return f"the members' routes, default where a member has none for it{new}"


def _ensemble_route(run: Run, persona_id: str) -> str:
    members = [f"{weight:g} x [{table.route(persona_id)}]" for table, weight in run.personalizer.members]
    return " + ".join(members) + f" (mixed in {run.personalizer.space} space)"


def _answer(text: str, scores: np.ndarray, choices: Sequence[str]) -> Answer:
    finite = np.where(np.isfinite(scores), scores, -np.inf)
    shifted = np.exp(finite - finite.max())
    probabilities = shifted / shifted.sum()
    return Answer(text, choices[int(np.argmax(scores))], {c: float(p) for c, p in zip(choices, probabilities)})
