"""Routing: personalizers (persona -> route, an ensemble of routes, or per-persona offsets on
top) and scoring rows through them with the engine. Every layer above reads these: strategies
build personalizers, evaluation and ``personalab predict`` score with them, export writes them
for servers.

- ``personalizers``: ``RoutingTable``, ``Ensemble``, ``PersonaBias``, their JSON,
  ``with_identifier``, the one model-input format of persona identifiers, and ``vectors_of``,
  the persona vectors an engine must hold to score a personalizer.
- ``scoring``: ``score_routes``, ``score_tables``, ``add_offsets`` and ``predict``.
- ``generation``: ``generate`` and ``generate_tables``, open answers through the same routes
  (an ensemble mixes next-token distributions).
"""

from personalab.routing.personalizers import (
    IDENTIFIER_FORMAT, Ensemble, PersonaBias, Personalizer, RoutingTable, personalizer_from_json, vectors_of,
    with_identifier,
)
from personalab.routing.generation import Generations, generate, generate_tables
from personalab.routing.scoring import Predictions, add_offsets, predict, predict_ensemble, score_routes, score_tables

__all__ = [
    "IDENTIFIER_FORMAT", "Ensemble", "Generations", "PersonaBias", "Personalizer", "Predictions", "RoutingTable",
    "add_offsets", "generate", "generate_tables", "personalizer_from_json", "predict", "predict_ensemble",
    "score_routes", "score_tables", "vectors_of", "with_identifier",
]
