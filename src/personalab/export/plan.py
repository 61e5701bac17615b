"""What an export holds, decided from the personalizer alone (no files, no model): the
distinct routes to serve, the folder each one gets, and the routing document
(``routing.json``) that tells a server which adapter answers for which persona.

A route that is one bank adapter at weight 1 is served by that adapter; any other route (a
weight-space mixture, or one adapter at another weight) becomes one merged adapter. Folder
names are the bank's safe folder names (``personalab.bank.names``: a readable slug and a
digest of the exact name) with ``/`` replaced by ``--``, so that every adapter is one flat,
filesystem-safe folder under ``adapters/`` whatever the persona ids are; a mixture is named
``mixture--<digest of its exact weights>``, the same name for the same mixture in every export.

A personalizer whose personas carry identifiers (``persona_token``) adds them to the routing
document with the one format that turns an identifier and an input into the model input
(``routing.with_identifier``): such a run is served with plain text. One whose personas carry
learned vectors (``persona_token`` with ``identity: learned``) names the vector file and the
personas that have one, and says what a server must do with them (``VECTORS_NOTE``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Mapping

from personalab.bank.names import adapter_directory
from personalab.engine.routes import Route
from personalab.routing import IDENTIFIER_FORMAT, Ensemble, PersonaBias, Personalizer, RoutingTable, vectors_of

FORMAT = 1
ADAPTERS_DIR = "adapters"
MIXTURE_KIND = "mixture"
_MIXTURE_DIGEST_CHARS = 12
BIAS_NOTE = (
    "add offsets[persona][choice] to the choice's log-score (its log-probability) before the argmax or the "
    "softmax over choices; a persona not listed has no offsets"
)
ENSEMBLE_NOTE = (
    "score the input under each member adapter and mix the choice scores with the members' weights: "
    "space 'logprob' is sum_k w_k * log p_k (then renormalise), 'prob' is log sum_k w_k * p_k"
)
GENERATION_ENSEMBLE_NOTE = (
    "generate token by token: at every step run each member adapter on its own copy of the text so far, mix the "
    "members' next-token distributions with their weights (space 'logprob': sum_k w_k * log p_k, 'prob': "
    "log sum_k w_k * p_k), pick the token from the mixture and append it to every member's copy. A server that "
    "answers each request with one adapter cannot do this: serve the members together (personalab predict does)"
)
IDENTIFIER_NOTE = (
    "a persona with an identifier (in 'identifiers', or an ensemble member's 'identifier') is served the input "
    "text input_format gives: its identifier, one space, its input; that text then takes the input's place in "
    "the prompt (a causal LM) or after the profile (a classifier). A persona without one, a new persona "
    "included, is served its input unchanged"
)


VECTORS_FILE = "persona_vectors.safetensors"  # in the export's root, beside routing.json
VECTORS_NOTE = (
    "a persona listed in 'vectors.personas' is served with its learned vector added to every input embedding: "
    "inputs_embeds = embed(input_ids) + vectors[persona] at every position (the prompt's tokens and, for a causal "
    "LM, each generated token), with the persona's adapter; the vectors are the tensor 'vectors' of file, row k "
    "for the k-th persona of its metadata 'personas'. Only a server that takes input embeddings (transformers with "
    "inputs_embeds, or a hook on the input-embedding module) can do this: vLLM's LoRA serving takes token ids and "
    "cannot. A persona not listed, a new persona included, gets no vector (the adapter alone)"
)


def served_name(route: Route) -> str | None:
    """The bank-style name of the adapter serving ``route``: the adapter itself for one
    adapter at weight 1, else ``mixture/<digest of the weights>``; None for the empty route
    (the base model alone)."""
    if not route.weights:
        return None
    single = route.single_adapter
    if single is not None:
        return single
    text = json.dumps(route.to_json(), sort_keys=True)
    return f"{MIXTURE_KIND}/{hashlib.sha256(text.encode('utf-8')).hexdigest()[:_MIXTURE_DIGEST_CHARS]}"


def folder_name(route: Route) -> str | None:
    """The flat folder (under ``adapters/``) of the adapter serving ``route``."""
    name = served_name(route)
    if name is None:
        return None
    # A mixture's name is already safe (a hex digest); a bank name needs the bank's slug.
    safe = name if route.single_adapter is None else adapter_directory(name)
    return safe.replace("/", "--")


def persona_routes(personalizer: Personalizer, personas: Iterable[str]) -> dict[str, list[tuple[Route, float]]]:
    """``{persona: [(route, weight), ...]}``: one route at weight 1 for a routing table, one
    per member for an ensemble."""
    return {pid: _members(personalizer, pid) for pid in personas}


def default_routes(personalizer: Personalizer) -> list[tuple[Route, float]]:
    if isinstance(personalizer, Ensemble):
        return [(table.default, weight) for table, weight in personalizer.members]
    return [(personalizer.default, 1.0)]


def distinct_routes(personalizer: Personalizer, personas: Iterable[str], extra: Iterable[Route] = ()) -> list[Route]:
    """Every route some persona (or the default, or ``extra``) is served by, each once,
    in first-seen order: the defaults, then the personas, then ``extra``."""
    routes = [route for route, _ in default_routes(personalizer)]
    for members in persona_routes(personalizer, personas).values():
        routes += [route for route, _ in members]
    return list(dict.fromkeys([*routes, *extra]))


def routing_document(personalizer: Personalizer, personas: Iterable[str],
                     router: Mapping[str, Any] | None = None, task: str = "classification") -> dict[str, Any]:
    """``routing.json``: for each persona the adapter folder that answers for it (an
    ensemble: the member folders, their weights and the mixing space), the default for
    personas not listed, what each folder holds, and the router for new personas; ``task``
    (classification or generation) says what an ensemble mixes."""
    personas = list(personas)
    routes = persona_routes(personalizer, personas)
    defaults = default_routes(personalizer)
    document: dict[str, Any] = {"format": FORMAT, "kind": _kind(personalizer), "task": task,
                                "adapters_dir": ADAPTERS_DIR}
    document["personas"] = {pid: _target(personalizer, members, pid) for pid, members in routes.items()}
    document["default"] = _target(personalizer, defaults)
    document["default_personas"] = sorted(pid for pid in personas if personalizer.uses_default(pid))
    used = distinct_routes(personalizer, personas)
    document["adapters"] = {folder_name(r): r.to_json() for r in used if folder_name(r) is not None}
    if isinstance(personalizer, Ensemble):
        document["note"] = GENERATION_ENSEMBLE_NOTE if task == "generation" else ENSEMBLE_NOTE
    document["router"] = dict(router) if router else None
    if any(table.identifiers for table, _ in _tables(personalizer)):
        if isinstance(personalizer, RoutingTable):
            document["identifiers"] = {pid: personalizer.identifier(pid) for pid in personas
                                       if personalizer.identifier(pid)}
        document["input_format"] = IDENTIFIER_FORMAT
        document["identifier_note"] = IDENTIFIER_NOTE
    if vectors_of(personalizer):
        with_vector = [pid for pid in personas if any(table.vector(pid) for table, _ in _tables(personalizer))]
        document["vectors"] = {"file": VECTORS_FILE, "personas": with_vector, "note": VECTORS_NOTE}
    return document


def _tables(personalizer: Personalizer) -> list[tuple[RoutingTable, float]]:
    return personalizer.members if isinstance(personalizer, Ensemble) else [(personalizer, 1.0)]


def _members(personalizer: Personalizer, persona_id: str) -> list[tuple[Route, float]]:
    if isinstance(personalizer, Ensemble):
        return [(table.route(persona_id), weight) for table, weight in personalizer.members]
    return [(personalizer.route(persona_id), 1.0)]


def _target(personalizer: Personalizer, members: list[tuple[Route, float]], persona_id: str | None = None) -> Any:
    """What serves a persona (``persona_id``; None: the default): an adapter folder, or an
    ensemble's members, each with the member's identifier for the persona when it has one."""
    if isinstance(personalizer, RoutingTable):
        return folder_name(members[0][0])
    targets = []
    for (route, weight), (table, _) in zip(members, personalizer.members):
        target = {"adapter": folder_name(route), "weight": weight}
        if persona_id is not None and table.identifier(persona_id):
            target["identifier"] = table.identifier(persona_id)
        if persona_id is not None and table.vector(persona_id):
            target["vector"] = True  # this member adds the persona's vector (the others do not)
        targets.append(target)
    return {"space": personalizer.space, "members": targets}


def _kind(personalizer: Personalizer) -> str:
    return "ensemble" if isinstance(personalizer, Ensemble) else "routing_table"


def bias_document(bias: PersonaBias) -> dict[str, Any]:
    """The ``persona_bias`` entry of ``routing.json``: each persona's offset per choice."""
    offsets = {pid: dict(zip(bias.choices, values)) for pid, values in bias.offsets.items()}
    return {"choices": list(bias.choices), "offsets": offsets, "penalty": bias.penalty, "note": BIAS_NOTE}
