"""Personalizers: what a strategy returns and every layer above reads, saying how each
persona's rows are scored.

* ``RoutingTable``: persona -> one route (a weight-space mixture of bank adapters), with a
  default route for personas not in the table (new personas, or too few rows of their own),
  and optionally the persona's identity (``persona_token``): identifier text prepended to
  its inputs (``model_row`` is a row as the model must see it), or a learned vector added to
  its input embeddings (``vectors``: the bank adapter the vectors were trained with;
  ``vector`` names a persona's).
* ``Ensemble``: an output-space mixture of routing tables: each row is scored under every
  member's route and the score matrices are mixed with the members' weights.
* ``PersonaBias``: a routing table with a per-persona offset per choice added to its
  choice log-scores (a calibration layer, fit by ``personalab.strategies.persona_bias``).

All three serialize to JSON (``personalizer.json`` of a run); ``personalizer_from_json`` reads
any of them back.

This module also owns ``with_identifier``: THE way a persona identifier and an input become
the model input (identifiers after Mireshghallah et al., NAACL 2022). Training, evaluation,
``personalab predict`` and the export's routing document all go through it (the export
documents it as ``IDENTIFIER_FORMAT``), so a server that builds ``"<identifier> <input>"`` the
same way reproduces the run. How identifiers are drawn is ``persona_token``'s business
(``personalab.strategies.identifiers``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Union

from personalab.data.schema import Example
from personalab.engine.ensemble import Space
from personalab.engine.routes import Route
from personalab.errors import PersonalabError

IDENTIFIER_FORMAT = "{identifier} {input}"  # the identifier, one space, the input as given


def with_identifier(identifier: str, text: str) -> str:
    """The model input for ``text`` of a persona with ``identifier`` ("" leaves it as it is:
    the input of a persona without an identifier, e.g. one new to the run)."""
    return IDENTIFIER_FORMAT.format(identifier=identifier, input=text) if identifier else text


@dataclass
class RoutingTable:
    default: Route
    table: dict[str, Route] = field(default_factory=dict)
    # persona -> identifier text its inputs start with (``persona_token``); a persona not
    # listed (every persona of other strategies, a new one) is given its input unchanged.
    identifiers: dict[str, str] = field(default_factory=dict)
    # The bank adapter whose persona vectors (``persona_token``, identity learned) the routes
    # add to the input embeddings: each persona in ``table`` its own; "" for no vectors.
    vectors: str = ""

    def route(self, persona_id: str, example: Example | None = None) -> Route:
        return self.table.get(persona_id, self.default)

    def vector(self, persona_id: str) -> str | None:
        """The name of the input vector the persona's rows add (None: none, e.g. cold start)."""
        return persona_id if self.vectors and persona_id in self.table else None

    def identifier(self, persona_id: str) -> str:
        return self.identifiers.get(persona_id, "")

    def model_row(self, row: Example) -> Example:
        """``row`` as the model scores it: its input behind its persona's identifier, if any."""
        identifier = self.identifier(row.persona_id)
        return replace(row, input=with_identifier(identifier, row.input)) if identifier else row

    def uses_default(self, persona_id: str) -> bool:
        return persona_id not in self.table

    def adapters(self) -> list[str]:
        routes = [self.default, *self.table.values()]
        return sorted({name for route in routes for name in route.adapters})

    def describe(self, persona_id: str) -> dict[str, float]:
        """The persona's route as JSON, for per-row prediction records."""
        return self.route(persona_id).to_json()

    def to_json(self) -> dict[str, Any]:
        document = {
            "kind": "routing_table",
            "default": self.default.to_json(),
            "table": {pid: r.to_json() for pid, r in self.table.items()},
        }
        if self.identifiers:  # absent otherwise: other strategies' files stay as they were
            document["identifiers"] = dict(self.identifiers)
        if self.vectors:
            document["vectors"] = self.vectors
        return document

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RoutingTable":
        table = {pid: Route(r) for pid, r in data.get("table", {}).items()}
        # Files written before identifiers existed have none: every input is left as it is.
        return cls(default=Route(data["default"]), table=table, identifiers=dict(data.get("identifiers") or {}),
                   vectors=str(data.get("vectors") or ""))


@dataclass
class Ensemble:
    members: list[tuple[RoutingTable, float]]
    space: Space = "logprob"  # "logprob": weighted log-scores; "prob": mixture of probabilities

    def uses_default(self, persona_id: str) -> bool:
        return any(table.uses_default(persona_id) for table, _ in self.members)

    def adapters(self) -> list[str]:
        return sorted({name for table, _ in self.members for name in table.adapters()})

    def describe(self, persona_id: str) -> dict[str, Any]:
        return {"ensemble": [{"weight": w, "route": t.describe(persona_id)} for t, w in self.members],
                "space": self.space}

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "ensemble",
            "space": self.space,
            "members": [{"weight": w, "personalizer": t.to_json()} for t, w in self.members],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Ensemble":
        members = [(RoutingTable.from_json(m["personalizer"]), float(m["weight"])) for m in data["members"]]
        return cls(members, data.get("space", "logprob"))


@dataclass
class PersonaBias:
    """``inner``'s routes, with ``offsets[persona]`` (one per choice, in ``choices`` order)
    added to the persona's choice log-scores; personas without offsets keep the inner scores.
    The offsets live in the JSON itself: a few floats per persona, written with the routes in
    one atomic file, so that a run's routes and offsets can never disagree."""

    inner: RoutingTable
    choices: tuple[str, ...]
    offsets: dict[str, tuple[float, ...]] = field(default_factory=dict)
    penalty: float | None = None  # the L2 strength the offsets were fit under; None: no offsets

    def route(self, persona_id: str, example: Example | None = None) -> Route:
        return self.inner.route(persona_id, example)

    def uses_default(self, persona_id: str) -> bool:
        return self.inner.uses_default(persona_id)

    def adapters(self) -> list[str]:
        return self.inner.adapters()

    def offset(self, persona_id: str) -> tuple[float, ...]:
        return self.offsets.get(persona_id, (0.0,) * len(self.choices))

    def describe(self, persona_id: str) -> dict[str, Any]:
        return {"route": self.inner.describe(persona_id), "bias": dict(zip(self.choices, self.offset(persona_id)))}

    def to_json(self) -> dict[str, Any]:
        return {"kind": "persona_bias", "inner": self.inner.to_json(), "choices": list(self.choices),
                "penalty": self.penalty, "offsets": {pid: list(o) for pid, o in self.offsets.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "PersonaBias":
        offsets = {pid: tuple(float(v) for v in o) for pid, o in data.get("offsets", {}).items()}
        return cls(RoutingTable.from_json(data["inner"]), tuple(data["choices"]), offsets, data.get("penalty"))


Personalizer = Union[RoutingTable, Ensemble, PersonaBias]


def vectors_of(*personalizers: Personalizer) -> str:
    """The bank adapter whose persona vectors the personalizers add to input embeddings ("":
    none): what an engine scoring them must hold (``AdapterBank.load_engine(vectors=...)``)."""
    tables = []
    for personalizer in personalizers:
        if isinstance(personalizer, PersonaBias):
            tables.append(personalizer.inner)
        elif isinstance(personalizer, Ensemble):
            tables += [table for table, _ in personalizer.members]
        else:
            tables.append(personalizer)
    sources = sorted({table.vectors for table in tables if table.vectors})
    if len(sources) > 1:  # an engine holds one table of input vectors
        raise PersonalabError(f"persona vectors of {len(sources)} adapters ({', '.join(sources)}) would be "
                              "needed together; an engine holds one set")
    return sources[0] if sources else ""


def personalizer_from_json(data: dict[str, Any]) -> Personalizer:
    kinds = {"routing_table": RoutingTable, "ensemble": Ensemble, "persona_bias": PersonaBias}
    kind = data.get("kind", "routing_table")
    if kind not in kinds:
        raise ValueError(f"unknown personalizer kind {kind!r} (known: {', '.join(kinds)})")
    return kinds[kind].from_json(data)
