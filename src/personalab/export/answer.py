"""Answering texts for personas with a trained run (``personalab predict``, and every request
``personalab serve`` answers): each persona's own route, or for a persona the run has no route
for, the default route, or the run's router placing the persona by its profile text (new
personas of a ``moe`` run).

``answer_all`` answers many questions (one persona's texts each) at once: every row keeps its
persona, so the one scoring function of ``personalab.routing`` scores all of them in the same
engine calls, a route per row, exactly as evaluation scores a split; ``answer`` is one question.
An answer is therefore the same whether it was asked alone or in a batch with other personas,
and it is the answer ``personalab evaluate`` gives for the same row. Probabilities are the
softmax of the choice scores over the choices: a classifier's own probabilities, and for a
causal LM the likelihoods of the choices renormalised among themselves. A generation run
generates each answer through the same routes (an ensemble mixing its members' next-token
distributions).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from personalab.data.schema import Example
from personalab.engine.routes import Route
from personalab.errors import PersonalabError
from personalab.models.decoding import GenerationSettings
from personalab.routing import Ensemble, PersonaBias, Personalizer, RoutingTable, generate_tables
from personalab.routing.scoring import personalizer_scores
from personalab.run.rundir import Run

ROUTER_DIR = "router"
SCORE_CHUNK = 256  # rows per engine call, as evaluation scores them
# The persona id the rows of a persona new to the run carry, before a digest of its profile: no
# dataset id starts with a NUL, so a new persona can never take a known one's route or offsets.
NEW_PERSONA = "\x00new:"


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


@dataclass(frozen=True)
class Question:
    """Texts to answer for one persona; ``profile`` describes a persona the run does not know."""

    persona_id: str
    texts: tuple[str, ...]
    profile: str | None = None


@dataclass(frozen=True)
class _Placed:
    """A question placed: the persona id its rows carry, how it is routed, in words."""

    key: str
    how: str
    shown: str
    route: Route | None = None  # a new persona's route from the router; None: the run's own


def answer(run: Run, persona_id: str, texts: Sequence[str], profile: str | None = None,
           generation: GenerationSettings | None = None) -> PersonaAnswers:
    """The predicted choice and choice probabilities of each text for ``persona_id`` (for a
    generation run, the generated answer, under ``generation``). ``profile`` describes a
    persona the run does not know (its profile is given to the model like the known
    personas', and places it with the router when the run has one)."""
    return answer_all(run, [Question(persona_id, tuple(texts), profile)], generation)[0]


def answer_all(run: Run, questions: Sequence[Question],
               generation: GenerationSettings | None = None) -> list[PersonaAnswers]:
    """Every question answered as ``answer`` answers it alone, all their rows in the same
    engine calls with a route per row (``personalab serve`` batches requests through this)."""
    for question in questions:
        _check_request(run, question.texts)
    placed = [_place(run, question) for question in questions]
    personalizer = _batch_personalizer(run.personalizer, placed)
    first = (run.backend.choices or ("",))[0]  # an output the rows need; never read when scoring
    rows = [Example(where.key, text, first, "test") for where, q in zip(placed, questions) for text in q.texts]
    with _new_profiles(run, questions, placed):
        outputs = _outputs(run, personalizer, rows, generation)
    results, start = [], 0
    for question, where in zip(questions, placed):
        answers = outputs[start:start + len(question.texts)]
        start += len(question.texts)
        results.append(PersonaAnswers(question.persona_id, where.how, where.shown, answers))
    return results


def _outputs(run: Run, personalizer: Personalizer, rows: list[Example],
             generation: GenerationSettings | None) -> list[Answer]:
    """Each row's answer: scored by the one scoring function evaluation uses, or generated."""
    if run.dataset.spec.task == "generation":
        table = personalizer.inner if isinstance(personalizer, PersonaBias) else personalizer  # no offsets on text
        members = table.members if isinstance(table, Ensemble) else [(table, 1.0)]
        space = table.space if isinstance(table, Ensemble) else "logprob"
        texts = generate_tables(run.backend, run.model, members, rows, space, generation, progress=False)
        return [Answer(row.input, text, {}) for row, text in zip(rows, texts)]
    scores = personalizer_scores(run.backend, run.model, personalizer, rows, chunk=SCORE_CHUNK, progress=False)
    return [_answer(row.input, row_scores, run.backend.choices) for row, row_scores in zip(rows, scores)]


def _place(run: Run, question: Question) -> _Placed:
    """How ``question``'s persona is routed. A persona the run does not know is keyed by its
    profile: what it is given then depends on the profile alone, and the backend memoizes
    prompts by persona id, so two new personas with one key must never differ."""
    persona_id, profile = question.persona_id, question.profile
    if persona_id in run.dataset.personas:
        ignored = " (profile ignored: the run knows this persona's profile)" if profile else ""
        how, shown = _known(run, persona_id)
        return _Placed(persona_id, how + ignored, shown)
    key = NEW_PERSONA + hashlib.sha256((profile or "").encode("utf-8")).hexdigest()[:16]
    if isinstance(run.personalizer, Ensemble):
        return _Placed(key, _ensemble_how(run, persona_id, False), _ensemble_route(run, persona_id))
    table = _table(run.personalizer)
    route, how = _new_route(run, table, profile)
    how += ", without choice offsets (none fit for it)" if isinstance(run.personalizer, PersonaBias) else ""
    return _Placed(key, how, str(route), route if route != table.default else None)


def _known(run: Run, persona_id: str) -> tuple[str, str]:
    """How a persona the run knows is routed, and its route, in words."""
    if isinstance(run.personalizer, Ensemble):
        return _ensemble_how(run, persona_id, True), _ensemble_route(run, persona_id)
    table = _table(run.personalizer)
    how = "its own route" if not table.uses_default(persona_id) else \
        "the default route (the run trained no route of its own for it)"
    if isinstance(run.personalizer, PersonaBias):
        how += ", plus its own choice offsets" if persona_id in run.personalizer.offsets else \
            ", without choice offsets (none fit for it)"
    return how, _shown(table, table.route(persona_id), persona_id)


def _batch_personalizer(personalizer: Personalizer, placed: Sequence[_Placed]) -> Personalizer:
    """The run's personalizer, plus the routes the router gave this batch's new personas."""
    routed = {where.key: where.route for where in placed if where.route is not None}
    if not routed:
        return personalizer
    table = _table(personalizer)
    if table.vectors:  # a routed key in the table would be looked up as a persona vector
        raise PersonalabError("a run with learned persona vectors has no router for new personas")
    table = replace(table, table={**table.table, **routed})
    return replace(personalizer, inner=table) if isinstance(personalizer, PersonaBias) else table


def _table(personalizer: Personalizer) -> RoutingTable:
    return personalizer.inner if isinstance(personalizer, PersonaBias) else personalizer


@contextlib.contextmanager
def _new_profiles(run: Run, questions: Sequence[Question], placed: Sequence[_Placed]) -> Iterator[None]:
    """New personas' profiles given to the model for this call only ("" leaves the profile
    out of the input), so that a long-lived run does not collect every profile it was sent."""
    added = {where.key: question.profile or "" for question, where in zip(questions, placed)
             if where.key.startswith(NEW_PERSONA)}
    run.backend.profiles.update(added)
    try:
        yield
    finally:
        for key in added:
            run.backend.profiles.pop(key, None)


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


def _new_route(run: Run, table: RoutingTable, profile: str | None) -> tuple[Route, str]:
    """The route of a persona new to the run: the router's, placed by its profile, when the
    run has a router and the profile is given; else the default route."""
    has_router = (run.root / ROUTER_DIR / "router.json").is_file()
    if has_router and profile:
        route = _router(run.root).route(_embed_profile(profile), by_profile=True)
        _load_missing(run, route.adapters)  # a run loads only the adapters its table names
        return route, "the router, from its profile (a persona new to the run)"
    hint = "; give --profile to place it with the router" if has_router else ""
    return table.default, f"the default route (a persona new to the run{hint})"


@functools.lru_cache(maxsize=8)  # a server places new personas again and again with one router
def _router(root: Path) -> Any:
    from safetensors.numpy import load_file

    from personalab.strategies.moe import Router

    info = json.loads((root / ROUTER_DIR / "router.json").read_text(encoding="utf-8"))
    keys = load_file(str(root / ROUTER_DIR / "router.safetensors"))
    return Router(info["experts"], keys["keys"], keys["profile_keys"], int(info["top_k"]), float(info["temperature"]))


def _embed_profile(profile: str) -> np.ndarray:
    from personalab.embed.personas import embed_persona

    return embed_persona(profile, source="profile")


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
