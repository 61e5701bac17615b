"""Generating answers through the routes a personalizer gives each row: the open-output
counterpart of ``scoring``, used by evaluation, ``personalab predict`` and the strategies that
tune something on validation rows of a generation task.

* ``generate_tables``: the rows under one routing table — each row as the table's
  ``model_row``, through the table's route for its persona — or under several, as an
  output-space ensemble whose members' next-token distributions are mixed at every step
  (members of weight 0 are not run at all). Rows are generated longest first, so that each
  batch pads little; the answers come back in the rows' order.
* ``generate``: the same for any personalizer, with each row's route as JSON.

A ``PersonaBias`` adds offsets to a closed label set's choice scores; there is nothing for it
to add to generated text, so it is refused with a clear message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from tqdm.auto import tqdm

from personalab.data.schema import Example
from personalab.engine import MultiLoraModel
from personalab.engine.ensemble import Space
from personalab.errors import PersonalabError
from personalab.models.base import Backend
from personalab.models.batching import length_sorted_chunks
from personalab.models.decoding import GenerationSettings
from personalab.routing.personalizers import Ensemble, PersonaBias, Personalizer, RoutingTable


@dataclass
class Generations:
    rows: list[Example]
    texts: list[str]  # the generated answer of each row
    routes: list[dict]  # each row's route (or ensemble of routes) as JSON


def generate(
    backend: Backend,
    engine: MultiLoraModel,
    personalizer: Personalizer,
    rows: Sequence[Example],
    settings: GenerationSettings | None = None,
    progress: bool = True,
) -> Generations:
    """Every row's answer generated the way ``personalizer`` says for its persona."""
    if isinstance(personalizer, PersonaBias):
        raise PersonalabError("persona_bias adds per-persona offsets to the scores of a closed label set; "
                              "a generation task has none: use the strategy it sits on (its `over` option)")
    members = personalizer.members if isinstance(personalizer, Ensemble) else [(personalizer, 1.0)]
    space = personalizer.space if isinstance(personalizer, Ensemble) else "logprob"
    texts = generate_tables(backend, engine, members, rows, space, settings, progress)
    described = [personalizer.describe(row.persona_id) for row in rows]
    return Generations(list(rows), texts, described)


def generate_tables(
    backend: Backend,
    engine: MultiLoraModel,
    members: Sequence[tuple[RoutingTable, float]],
    rows: Sequence[Example],
    space: Space = "logprob",
    settings: GenerationSettings | None = None,
    progress: bool = True,
) -> list[str]:
    """One answer per row, its next-token distributions mixed over the weighted ``members``
    (a single member of weight 1: the table's own route)."""
    check_generates(backend)
    if any(table.vectors for table, _ in members):
        raise PersonalabError("generation with learned persona vectors (persona_token identity: learned) is not "
                              "supported yet; use identity: text")
    members = [(table, weight) for table, weight in members if weight != 0]
    if not members:
        raise PersonalabError("an ensemble needs a member of weight above 0")
    distinct = list(dict.fromkeys(table.route(row.persona_id, row) for table, _ in members for row in rows))
    engine.set_routes(distinct)
    index = {route: i for i, route in enumerate(distinct)}
    texts: list[str] = [""] * len(rows)
    bar = tqdm(total=len(rows), desc="generating", unit="row", disable=not progress)
    for part in length_sorted_chunks(rows, backend.generate_batch_size):
        chosen = [rows[i] for i in part]
        answers = backend.generate_mixture(
            engine, [[table.model_row(row) for row in chosen] for table, _ in members],
            [[index[table.route(row.persona_id, row)] for row in chosen] for table, _ in members],
            [weight for _, weight in members], space, settings)
        for i, text in zip(part, answers):
            texts[i] = text
        bar.update(len(part))
    bar.close()
    return texts


def check_generates(backend: Backend) -> None:
    """A clear error for a backend that cannot generate (the encoder classifier)."""
    if not hasattr(backend, "generate_mixture"):
        raise PersonalabError(f"generation needs a causal language model; {backend.spec.name} is a "
                              f"{backend.kind} (train the run with a causal LM, e.g. --model tiny-causal-lm)")
