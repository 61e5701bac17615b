"""``persona_token``: one adapter shared by all personas, trained on every train row with the
row's persona identity in the input (UserIdentifier, Mireshghallah et al., NAACL 2022).

With ``identity: text`` (the only identity built so far) each persona that has train rows gets
a short identifier of ordinary vocabulary words (``identifiers.py``: stable across runs,
distinct across personas), and every input of that persona is given to the model as
``"<identifier> <input>"``, in training, evaluation, ``predict`` and serving alike (the
routing table carries the identifiers; ``RoutingTable.model_row`` applies them). The model
learns persona-specific behaviour from the identifier, at the cost of one unified adapter:
it is one adapter trained on all rows, with the unified training step.

Cold start: a persona without train rows (held out, or new at serving time) has no
identifier and its input is given as it is. So that such plain inputs are not off the
training distribution, a share of the train rows (``anonymous_share``, default 0.1) is
trained without its identifier, like the condition dropout of classifier-free guidance: the
same adapter then also learns the population's answer to a plain input. Chosen over a
reserved "unknown" identifier because it behaves the same and a server needs nothing at all
for a new persona.

A classifier's head is trained with the unified adapter (the run's first adapter, whose head
every later adapter shares), so on a classifier the unified adapter is trained (or reused)
first; a causal LM needs nothing before its own adapter.
"""

from __future__ import annotations

import numpy as np

from personalab.engine import Route
from personalab.errors import PersonalabError
from personalab.routing import RoutingTable
from personalab.strategies.base import FitContext
from personalab.strategies.identifiers import SALT, draw_identifiers, identifier_vocabulary
from personalab.strategies.registry import register
from personalab.strategies.steps import ensure_unified, fingerprint, reuse_adapter, rows_by_persona, train_shared_adapter

# Not "unified": its inputs differ, so it must never be mistaken for (or reused as) the plain one.
ADAPTER = "unified_token"
IDENTITIES = {"text": "a few vocabulary words per persona, prepended to its inputs; servable as plain text"}
MAX_TOKENS = 16  # an identifier longer than this eats the input's room under max_length


@register
class PersonaToken:
    name = "persona_token"
    summary = "one shared adapter trained with each row's persona identifier prepended to its input (UserIdentifier)"

    # tokens=3: with MiniLM's ~21,000 usable words that is ~1e13 distinct identifiers (collisions
    # practically never happen even for thousands of personas), three positions of persona signal
    # for the adapter to attend to, and only 3 tokens of a 128-token input given up.
    def __init__(self, identity: str = "text", tokens: int = 3, anonymous_share: float = 0.1):
        if identity not in IDENTITIES:
            known = "; ".join(f"{name!r} ({what})" for name, what in IDENTITIES.items())
            raise PersonalabError(f"persona_token identity must be one of: {known}; not {identity!r}")
        if isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= MAX_TOKENS:
            raise PersonalabError(f"persona_token tokens must be a whole number from 1 to {MAX_TOKENS}, not {tokens!r}")
        if isinstance(anonymous_share, bool) or not isinstance(anonymous_share, (int, float)) \
                or not 0 <= anonymous_share < 1:
            raise PersonalabError(
                f"persona_token anonymous_share must be a number in [0, 1) (the share of train rows trained "
                f"without an identifier, for new personas), not {anonymous_share!r}")
        self.identity, self.tokens, self.anonymous_share = identity, tokens, float(anonymous_share)

    def fit(self, context: FitContext) -> RoutingTable:
        head = ensure_unified(context) if context.backend.trainable_base_parameters() else None
        table = self.routing_table(context)
        plain = context.dataset.split("train")
        anonymous = anonymous_rows(len(plain), self.anonymous_share, context.seed)
        train = [row if hidden else table.model_row(row) for row, hidden in zip(plain, anonymous)]
        val = [table.model_row(row) for row in context.dataset.split("val")]
        wanted = fingerprint(kind=self.name, base=context.base_identity, settings=context.settings.to_dict(),
                             head=head, salt=SALT, rows=[(r.persona_id, r.input) for r in train + val])
        if not reuse_adapter(context, ADAPTER, wanted):
            train_shared_adapter(context, ADAPTER, train, val, context.settings, wanted, train_head=False,
                                 data={"personas": len(table.identifiers), "identity": self.identity})
        cold = sorted(set(context.dataset.personas) - set(table.identifiers))
        context.records[self.name] = {
            "identity": self.identity, "tokens": self.tokens, "anonymous_share": self.anonymous_share,
            "anonymous_rows": int(anonymous.sum()), "cold_start_personas": cold,
        }
        context.records["default_route_personas"] = cold
        return table

    def routing_table(self, context: FitContext) -> RoutingTable:
        """Every persona with train rows routed to the shared adapter with its identifier; the
        others (cold start) to the same adapter without one."""
        trained = [pid for pid, rows in rows_by_persona(context.dataset, "train").items() if rows]
        vocabulary = identifier_vocabulary(context.backend.tokenizer)
        identifiers = draw_identifiers(trained, vocabulary, self.tokens)
        route = Route.single(ADAPTER)
        return RoutingTable(default=route, table={pid: route for pid in identifiers}, identifiers=identifiers)


def anonymous_rows(n_rows: int, share: float, seed: int) -> np.ndarray:
    """Bool ``[n_rows]``: which train rows keep their plain input (no identifier), a random
    ``share`` of them drawn with the run's seed: the training of cold-start inputs."""
    return np.random.default_rng(seed).random(n_rows) < share
