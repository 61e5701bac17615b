"""``persona_token``: one adapter shared by all personas, trained on every train row with the
row's persona identity in the input (UserIdentifier, Mireshghallah et al., NAACL 2022), at the
cost of one unified adapter.

``identity: text`` (default): each persona that has train rows gets a short identifier of
ordinary vocabulary words (``identifiers.py``: stable across runs, distinct across personas),
and every input of that persona is given to the model as ``"<identifier> <input>"``, in
training, evaluation, ``predict`` and serving alike (the routing table carries the
identifiers; ``RoutingTable.model_row`` applies them). Any server that takes a LoRA serves it.

``identity: learned``: each persona that has train rows gets a learned vector, trained jointly
with the shared adapter (``train.vectors``) and stored with it in the bank; every row of the
persona adds it to each of its input embeddings (``engine.input_vectors``). One vector added
to the embeddings rather than n virtual tokens prepended to them, because

* it leaves the sequence alone: no attention-mask, position-id or ``token_type_ids`` surgery,
  no interplay with the causal LM's left padding and packed choices, nothing taken from
  ``max_length``: one forward hook serves both backends, and costs one addition per token;
* a causal LM that generates adds it to every new token as it did to the prompt;
* a server needs one thing: ``inputs_embeds = embed(input_ids) + v[persona]`` (transformers
  takes ``inputs_embeds``; any server with an embedding hook can). vLLM's LoRA serving takes
  token ids and cannot; the export says so.

Virtual tokens would give a persona more parameters (n x hidden instead of hidden), but with
~30 rows per persona more parameters per persona is not what is missing (the text identity
works with 3 tokens of fixed embeddings).

The vectors start at zero: training starts from exactly the model a persona without a vector
sees, and no random direction has to be unlearned by ~30 rows. They learn at their own rate,
``vector_lr`` (default ``VECTOR_LR`` = 5e-3, 10x the adapter's default 5e-4), without weight
decay. Why higher: the shared adapter learns from every row, a persona's vector only from its
own (~30 per epoch, a few percent of the steps); AdamW moves a coordinate by about ``lr`` per
step whatever the gradient's size, so at the adapter's rate a vector moves ~5e-4 per step of
its rows, small against the embeddings it is added to (MiniLM's have a standard deviation of
0.056 per coordinate). Measured on 24 synthetic personas who each lean to one label (MiniLM,
3 epochs, batch 16; validation loss after each epoch): 5e-4 needs all three epochs (0.622,
0.396, 0.377), 5e-3 gets there in one (0.404, 0.366, 0.355), 2e-2 overshoots (0.415, then
0.423, stopped early); test accuracy was 0.88 for all three, so the rate buys speed and
headroom for fewer epochs, not a different end point.

Cold start: a persona without train rows (held out, or new at serving time) has no
identifier and no vector: its input is given as it is (text), its embeddings get nothing
added (learned; the same as the zero vector). So that such plain inputs are not off the
training distribution, a share of the train rows (``anonymous_share``, default 0.1) is
trained without identity, like the condition dropout of classifier-free guidance: the same
adapter then also learns the population's answer to a plain input. Chosen over a reserved
"unknown" identity, and over the mean of the learned vectors (which no row was trained with),
because the plain input is exactly what the anonymous rows trained, and a server needs nothing
at all for a new persona (with identity learned, a new persona is served from plain token ids:
by vLLM too).

A classifier's head is trained with the unified adapter (the run's first adapter, whose head
every later adapter shares), so on a classifier the unified adapter is trained (or reused)
first; a causal LM needs nothing before its own adapter.
"""

from __future__ import annotations

import numpy as np

from personalab.data.schema import Example
from personalab.engine import Route
from personalab.errors import PersonalabError
from personalab.routing import RoutingTable
from personalab.strategies.base import FitContext
from personalab.strategies.identifiers import SALT, draw_identifiers, identifier_vocabulary
from personalab.strategies.registry import register
from personalab.strategies.steps import (
    ensure_unified, fingerprint, reuse_adapter, rows_by_persona, train_shared_adapter,
    train_shared_adapter_with_vectors,
)

# Neither is "unified": their inputs differ, so they must never be mistaken for (or reused as)
# the plain one, nor for each other.
ADAPTER = "unified_token"  # identity text
VECTOR_ADAPTER = "unified_vectors"  # identity learned: the adapter and, in its folder, the vectors
IDENTITIES = {
    "text": "a few vocabulary words per persona, prepended to its inputs; servable as plain text",
    "learned": "a learned vector per persona, added to its input embeddings; a server must add it too",
}
MAX_TOKENS = 16  # an identifier longer than this eats the input's room under max_length
# tokens=3: with MiniLM's ~21,000 usable words that is ~1e13 distinct identifiers (collisions
# practically never happen even for thousands of personas), three positions of persona signal
# for the adapter to attend to, and only 3 tokens of a 128-token input given up.
TOKENS = 3
VECTOR_LR = 5e-3  # see the module docstring


@register
class PersonaToken:
    name = "persona_token"
    summary = "one shared adapter trained with each row's persona identity in its input (UserIdentifier)"

    # ``tokens`` belongs to identity text, ``vector_lr`` to identity learned (None: its default).
    def __init__(self, identity: str = "text", tokens: int | None = None, anonymous_share: float = 0.1,
                 vector_lr: float | None = None):
        if identity not in IDENTITIES:
            known = "; ".join(f"{name!r} ({what})" for name, what in IDENTITIES.items())
            raise PersonalabError(f"persona_token identity must be one of: {known}; not {identity!r}")
        _check_belongs(identity, tokens=tokens, vector_lr=vector_lr)
        tokens = TOKENS if tokens is None else tokens
        if isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= MAX_TOKENS:
            raise PersonalabError(f"persona_token tokens must be a whole number from 1 to {MAX_TOKENS}, not {tokens!r}")
        if isinstance(anonymous_share, bool) or not isinstance(anonymous_share, (int, float)) \
                or not 0 <= anonymous_share < 1:
            raise PersonalabError(
                f"persona_token anonymous_share must be a number in [0, 1) (the share of train rows trained "
                f"without an identity, for new personas), not {anonymous_share!r}")
        self.identity, self.tokens, self.anonymous_share = identity, tokens, float(anonymous_share)
        self.vector_lr = _checked_vector_lr(VECTOR_LR if vector_lr is None else vector_lr)

    def fit(self, context: FitContext) -> RoutingTable:
        head = ensure_unified(context) if context.backend.trainable_base_parameters() else None
        plain = context.dataset.split("train")
        anonymous = anonymous_rows(len(plain), self.anonymous_share, context.seed)
        if self.identity == "text":
            table = self._fit_text(context, head, plain, anonymous)
        else:
            table = self._fit_learned(context, head, plain, anonymous)
        cold = sorted(set(context.dataset.personas) - set(table.table))
        context.records[self.name] = {
            "identity": self.identity, "anonymous_share": self.anonymous_share,
            "anonymous_rows": int(anonymous.sum()), "cold_start_personas": cold,
            **({"tokens": self.tokens} if self.identity == "text" else {"vector_lr": self.vector_lr}),
        }
        context.records["default_route_personas"] = cold
        return table

    def _fit_text(self, context: FitContext, head: str | None, plain: list[Example],
                  anonymous: np.ndarray) -> RoutingTable:
        table = self.routing_table(context)
        train = [row if hidden else table.model_row(row) for row, hidden in zip(plain, anonymous)]
        val = [table.model_row(row) for row in context.dataset.split("val")]
        wanted = fingerprint(kind=self.name, base=context.base_identity, settings=context.settings.to_dict(),
                             head=head, salt=SALT, rows=[(r.persona_id, r.input) for r in train + val])
        if not reuse_adapter(context, ADAPTER, wanted):
            train_shared_adapter(context, ADAPTER, train, val, context.settings, wanted, train_head=False,
                                 data={"personas": len(table.identifiers), "identity": self.identity})
        return table

    def _fit_learned(self, context: FitContext, head: str | None, plain: list[Example],
                     anonymous: np.ndarray) -> RoutingTable:
        table = self.routing_table(context)
        train = (plain, [None if hidden else table.vector(row.persona_id) for row, hidden in zip(plain, anonymous)])
        val_rows = context.dataset.split("val")
        val = (val_rows, [table.vector(row.persona_id) for row in val_rows])
        wanted = fingerprint(kind=self.name, identity=self.identity, base=context.base_identity,
                             settings=context.settings.to_dict(), head=head, vector_lr=self.vector_lr,
                             rows=[(r.persona_id, r.input, p) for rows, ps in (train, val) for r, p in zip(rows, ps)])
        if not reuse_adapter(context, VECTOR_ADAPTER, wanted):
            train_shared_adapter_with_vectors(context, VECTOR_ADAPTER, train, val, self.vector_lr, wanted,
                                              data={"personas": len(table.table), "identity": self.identity})
        return table

    def routing_table(self, context: FitContext) -> RoutingTable:
        """Every persona with train rows routed to the shared adapter with its identity (an
        identifier, or its vector); the others (cold start) to the same adapter without."""
        trained = sorted(pid for pid, rows in rows_by_persona(context.dataset, "train").items() if rows)
        if self.identity == "learned":
            route = Route.single(VECTOR_ADAPTER)
            return RoutingTable(default=route, table={pid: route for pid in trained}, vectors=VECTOR_ADAPTER)
        vocabulary = identifier_vocabulary(context.backend.tokenizer)
        identifiers = draw_identifiers(trained, vocabulary, self.tokens)
        route = Route.single(ADAPTER)
        return RoutingTable(default=route, table={pid: route for pid in identifiers}, identifiers=identifiers)


def _check_belongs(identity: str, **options) -> None:
    """``tokens`` is an option of identity text only, ``vector_lr`` of identity learned only."""
    owner = {"tokens": "text", "vector_lr": "learned"}
    for option, value in options.items():
        if value is not None and owner[option] != identity:
            raise PersonalabError(f"persona_token {option} applies to identity {owner[option]!r} only; "
                                  f"this run's identity is {identity!r} (leave {option} out)")


def _checked_vector_lr(value) -> float:
    # "not 0 < value <= 1" is also true of nan and inf.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise PersonalabError(f"persona_token vector_lr must be a number in (0, 1] (the peak learning rate of the "
                              f"persona vectors; default {VECTOR_LR:g}), not {value!r}")
    return float(value)


def anonymous_rows(n_rows: int, share: float, seed: int) -> np.ndarray:
    """Bool ``[n_rows]``: which train rows keep their plain input (no identity), a random
    ``share`` of them drawn with the run's seed: the training of cold-start inputs."""
    return np.random.default_rng(seed).random(n_rows) < share
