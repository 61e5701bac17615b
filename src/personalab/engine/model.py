"""``MultiLoraModel``: a base model whose target linear layers carry an adapter bank, with a
route table saying, for every row of a batch, which mixture of adapters to apply.

Usage: wrap, add adapters, set the routes, then call the model like the base model with one
extra argument, ``route_ids`` (for each batch row, an index into the route table)::

    engine = MultiLoraModel(base_model, ["q_proj", "v_proj"])
    engine.add_adapter("unified", read_peft_adapter(folder))
    engine.set_routes([Route.single("unified"), Route({})])
    logits = engine(input_ids=ids, attention_mask=mask, route_ids=torch.tensor([0, 1])).logits

Routes are set on the layers for the duration of one call and cleared afterwards, so the
base model called directly always behaves as the plain base model. A base model that
checkpoints its layers (rerunning them during backward, after the call) gets the routes back
for each rerun: see ``engine.checkpointing``.

A route may also add one vector of a table of named input vectors to every input embedding of
its rows (``set_input_vectors``, then ``set_routes(routes, vectors=[name or None per route])``;
see ``engine.input_vectors``): learned persona vectors, trained or frozen like adapters.
"""

from __future__ import annotations

import contextlib
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from personalab.engine.checkpointing import enable_checkpointing, is_checkpointing, rows_restored
from personalab.engine.input_vectors import InputVectors, input_embedding_module
from personalab.engine.layers import MultiLoraLinear
from personalab.engine.rows import row_routes
from personalab.engine.routes import Route
from personalab.engine.weights import LoraWeights


class MultiLoraModel(nn.Module):
    def __init__(
        self, base_model: nn.Module, target_modules: Sequence[str], freeze_base: bool = True
    ):
        """Replace every ``nn.Linear`` of ``base_model`` matched by ``target_modules`` (PEFT's
        list rule: a module whose full name equals an entry or ends with ``"." + entry``)
        by a ``MultiLoraLinear``, in place. ``freeze_base`` turns off gradients for all base
        parameters, as PEFT does; the caller may turn some back on (a classifier head)."""
        super().__init__()
        self.model = base_model
        if freeze_base:
            base_model.requires_grad_(False)
        self.layers: dict[str, MultiLoraLinear] = wrap_linears(base_model, target_modules)
        self._adapters: list[str] = []  # global adapter index -> name
        self._routes: list[Route] = []
        self._table: tuple[torch.Tensor, torch.Tensor] | None = None  # host [R, m] pair
        self._layers_stale = False  # layers not yet told the current adapter order
        self.input_vectors: InputVectors | None = None
        self._route_vectors: list[str | None] = []  # per route: the input vector it adds, if any
        self._vector_slots: torch.Tensor | None = None  # host [R] long, from the two above
        self._vector_hook: Any = None
        self._rows_now: Any = None  # the RowRoutes of the call in progress, for checkpointing
        self._checkpoint_routed = False  # whether the base's checkpointing reruns with routes
        if is_checkpointing(base_model):
            self.enable_gradient_checkpointing()
        # nn.Module starts in training mode; a base loaded for scoring is in eval mode, and
        # the first train()/eval() round trip (as in backend.scores) must not turn dropout on.
        self.train(base_model.training)

    # --- adapters -------------------------------------------------------------------------

    @property
    def adapter_names(self) -> list[str]:
        return list(self._adapters)

    def add_adapter(
        self,
        name: str,
        weights: Mapping[str, LoraWeights],
        trainable: bool = False,
        dropout: float = 0.0,
    ) -> None:
        """Load adapter ``name`` (``{module_path: LoraWeights}``, paths as in the base model);
        ``trainable`` adapters get parameters of their own, with LoRA ``dropout`` on their
        input in training mode. Modules the adapter does not name get nothing from it."""
        if name in self._adapters:
            raise ValueError(f"adapter {name!r} is already loaded")
        self._check_modules(name, weights)
        added = []
        try:
            for path, lora in weights.items():
                self.layers[path].add_adapter(name, lora, trainable=trainable, dropout=dropout)
                added.append(path)
        except Exception:
            for path in added:  # leave no half-added adapter behind
                self.layers[path].remove_adapter(name)
            raise
        self._adapters.append(name)
        self._reindex()

    def remove_adapter(self, name: str) -> None:
        """Unload ``name``; a route that still names it fails at the next routed call."""
        self._known(name)
        for layer in self.layers.values():
            if name in layer.adapter_names:
                layer.remove_adapter(name)
        self._adapters.remove(name)
        self._reindex()

    def adapter_weights(self, name: str) -> dict[str, LoraWeights]:
        """Detached CPU copies of ``name``'s weights, ready for ``write_peft_adapter``."""
        self._known(name)
        return {
            path: layer.adapter_weights(name)
            for path, layer in self.layers.items()
            if name in layer.adapter_names
        }

    def adapter_parameters(self, name: str) -> list[nn.Parameter]:
        """The trainable parameters of adapter ``name`` (empty when it is frozen)."""
        self._known(name)
        return [p for layer in self.layers.values() for p in layer.adapter_parameters(name)]

    # --- routes ---------------------------------------------------------------------------

    @property
    def routes(self) -> list[Route]:
        return list(self._routes)

    def set_routes(self, routes: Sequence[Route | Mapping[str, float]],
                   vectors: Sequence[str | None] | None = None) -> None:
        """The route table ``route_ids`` index into; every adapter named must be loaded.
        ``vectors``: per route, the input vector its rows add (None: none), by name."""
        if vectors is not None and len(vectors) != len(routes):
            raise ValueError(f"{len(vectors)} input vectors given for {len(routes)} routes")
        self._routes = [r if isinstance(r, Route) else Route(r) for r in routes]
        self._route_vectors = list(vectors) if vectors is not None else [None] * len(self._routes)
        self._table, self._vector_slots = None, None
        self._route_table()  # fail now, not at the first forward, on an unknown adapter
        self._route_vector_slots()  # and on an unknown vector

    # --- input vectors --------------------------------------------------------------------

    def set_input_vectors(self, names: Sequence[str], vectors: torch.Tensor | None = None,
                          trainable: bool = False) -> None:
        """The table of input vectors routes may name: ``vectors[k]`` is ``names[k]``
        (``[len(names), hidden]``; None: zeros, to train). Replaces any earlier table."""
        embeddings = input_embedding_module(self.model)
        hidden = embeddings.weight.shape[1]
        table = torch.zeros(len(names), hidden) if vectors is None else vectors
        if table.dim() != 2 or table.shape[1] != hidden:
            raise ValueError(f"input vectors must be [n, {hidden}] (the model's embedding size), "
                             f"got {list(table.shape)}")
        self.input_vectors = InputVectors(names, table, trainable).to(embeddings.weight.device)
        if self._vector_hook is None:
            self._vector_hook = embeddings.register_forward_hook(self._add_input_vectors)
        self._vector_slots = None

    def input_vector_table(self) -> tuple[list[str], torch.Tensor]:
        """``(names, [n, hidden] float32)``: detached CPU copies, ready to save."""
        if self.input_vectors is None:
            raise KeyError("no input vectors are loaded")
        return list(self.input_vectors.names), self.input_vectors.weight.detach().cpu().clone()

    def _add_input_vectors(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
        return None if self.input_vectors is None else self.input_vectors.add_to(module, inputs, output)

    def forward(self, *args: Any, route_ids: torch.Tensor | None = None, **kwargs: Any) -> Any:
        """The base model's forward with row i routed by ``routes[route_ids[i]]``;
        ``route_ids=None``: the base model alone."""
        self._set_rows(route_ids)
        try:
            return self.model(*args, **kwargs)
        finally:
            self._set_rows(None)

    def generate(self, *args: Any, route_ids: torch.Tensor | None = None, **kwargs: Any) -> Any:
        """The base model's ``generate`` with per-row routes (one sequence per row: no beams
        or multiple return sequences, which would change the number of rows)."""
        self._set_rows(route_ids)
        try:
            return self.model.generate(*args, **kwargs)
        finally:
            self._set_rows(None)

    # --- gradient checkpointing ---------------------------------------------------------------

    def enable_gradient_checkpointing(self) -> None:
        """Checkpoint the base model's layers in training mode, each rerun in backward with the
        routes of the forward call it belongs to. Done at wrapping when the base already
        checkpoints; call it after turning checkpointing on for a base already wrapped."""
        enable_checkpointing(self.model, context_fn=self._checkpoint_contexts)
        self._checkpoint_routed = True

    def _checkpoint_contexts(self) -> tuple[Any, Any]:
        # Called by torch.utils.checkpoint as a layer is checkpointed: the recomputation runs
        # with the routes set now, restored on every layer (the rerun layer uses its own).
        return contextlib.nullcontext(), rows_restored(list(self.layers.values()), self._rows_now)

    # --- what the backends expect of a model ------------------------------------------------

    def unwrap(self) -> nn.Module:
        """Put the base model's original linear layers back (undoing the wrapping in place)
        and return it; this engine is unusable afterwards."""
        for name, layer in self.layers.items():
            parent_name, _, child = name.rpartition(".")
            parent = self.model.get_submodule(parent_name) if parent_name else self.model
            setattr(parent, child, layer.base_layer)
        self.layers = {}
        if self._checkpoint_routed and is_checkpointing(self.model):
            enable_checkpointing(self.model)  # plain again: no context pointing at this engine
        if self._vector_hook is not None:
            self._vector_hook.remove()
            self._vector_hook, self.input_vectors = None, None
        return self.model

    def get_base_model(self) -> nn.Module:
        return self.model

    @property
    def config(self) -> Any:
        return self.model.config

    # --- internals ------------------------------------------------------------------------

    def _set_rows(self, route_ids: torch.Tensor | None) -> None:
        rows, vector_slots = None, None
        if self._layers_stale:
            for layer in self.layers.values():
                layer.set_adapter_order(self._adapters)
            self._layers_stale = False
        if route_ids is not None:
            self._check_routable()
            index, weight = self._route_table()
            ids = torch.as_tensor(route_ids).reshape(-1).cpu().long()
            if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= len(self._routes)):
                raise ValueError(
                    f"route ids must lie in [0, {len(self._routes)}) (the routes set), got "
                    f"{int(ids.min())}..{int(ids.max())}"
                )
            base_weight = next(iter(self.layers.values())).base_layer.weight
            dtype = torch.promote_types(base_weight.dtype, torch.float32)
            rows = row_routes(
                index[ids], weight[ids], len(self._adapters), base_weight.device, dtype
            )
            vector_slots = self._route_vector_slots()[ids]
        if self.input_vectors is not None:
            self.input_vectors.set_rows(vector_slots)
        self._rows_now = rows
        for layer in self.layers.values():
            layer.set_rows(rows)

    def _check_routable(self) -> None:
        if not self._routes:
            raise ValueError("route_ids given but no routes are set; call set_routes first")
        if self.training and not self._checkpoint_routed and is_checkpointing(self.model):
            # Checkpointed layers rerun during backward, after the routes are cleared: only
            # the engine's own checkpointing context gives the rerun its routes back.
            raise ValueError("the base model was set to gradient checkpointing after the engine wrapped it; "
                             "call engine.enable_gradient_checkpointing() instead")

    def _route_table(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Host tensors ``[R, m]``: adapter indices (``len(adapters)`` pads) and weights."""
        if self._table is None:
            self._table = route_table(self._routes, self._adapters)
        return self._table

    def _route_vector_slots(self) -> torch.Tensor:
        """Host long ``[R]``: each route's slot in the input-vector table (-1: none)."""
        if self._vector_slots is None:
            if any(name is not None for name in self._route_vectors) and self.input_vectors is None:
                raise ValueError("routes name input vectors but none are loaded; call set_input_vectors first")
            names = self._route_vectors
            self._vector_slots = (self.input_vectors.slots(names) if self.input_vectors is not None
                                  else torch.full((len(names),), -1, dtype=torch.long))
        return self._vector_slots

    def _reindex(self) -> None:
        # Lazily, at the next routed call: loading a bank adapter by adapter stays linear.
        self._layers_stale = True
        self._table = None  # global indices changed

    def _check_modules(self, name: str, weights: Mapping[str, LoraWeights]) -> None:
        if not weights:
            raise ValueError(f"adapter {name!r} has no weights")
        unknown = sorted(set(weights) - set(self.layers))
        if unknown:
            raise ValueError(
                f"adapter {name!r} adapts modules the engine does not wrap: {unknown[:5]}"
                f"{' ...' if len(unknown) > 5 else ''}; wrapped: {sorted(self.layers)[:5]} ..."
            )

    def _known(self, name: str) -> None:
        if name not in self._adapters:
            raise KeyError(f"no adapter {name!r} is loaded (loaded: {self._adapters})")


def route_table(
    routes: Sequence[Route], adapters: Sequence[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(index [R, m] long, weight [R, m] float64)`` for ``routes`` over ``adapters``, padded
    to the longest route with index ``len(adapters)`` and weight 0."""
    position = {name: i for i, name in enumerate(adapters)}
    width = max((len(route.weights) for route in routes), default=0)
    index = torch.full((len(routes), width), len(adapters), dtype=torch.long)
    weight = torch.zeros((len(routes), width), dtype=torch.float64)
    for r, route in enumerate(routes):
        for j, (name, w) in enumerate(route.weights):
            if name not in position:
                raise ValueError(
                    f"route {r} ({route}) names adapter {name!r}, which is not loaded "
                    f"(loaded: {list(adapters)})"
                )
            index[r, j], weight[r, j] = position[name], w
    return index, weight


def wrap_linears(model: nn.Module, target_modules: Sequence[str]) -> dict[str, MultiLoraLinear]:
    """Replace the matched linear layers of ``model`` in place; ``{module_path: layer}``."""
    targets = [target_modules] if isinstance(target_modules, str) else list(target_modules)
    matched = [
        (name, module)
        for name, module in model.named_modules()
        if name and any(name == t or name.endswith("." + t) for t in targets)
    ]
    if not matched:
        raise ValueError(f"no module of {type(model).__name__} matches {targets}")
    wrong = [f"{n} ({type(m).__name__})" for n, m in matched if type(m) is not nn.Linear]
    if wrong:
        raise ValueError(f"target modules must be plain nn.Linear layers; not: {wrong[:5]}")
    layers = {}
    for name, module in matched:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layers[name] = MultiLoraLinear(module)
        setattr(parent, child, layers[name])
    return layers
