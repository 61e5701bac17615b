"""``moe`` (the playbook's "mixture-of-experts merge"): a router from a persona's embedding
to a top-k softmax mixture, in weight space, of cluster adapters (or persona adapters).

The router scores expert ``j`` by the cosine between the persona's embedding and the
expert's key (a cluster's centroid, or the expert persona's own embedding); the temperature
is chosen on validation rows from a grid (0 is hard routing to the nearest expert). A persona
with no train rows — one held out, or new — is placed by its profile text instead, against
keys in the same profile space, so it gets a mixture without an adapter of its own (cold
start). The router is saved in the run (``router.json`` + ``router.safetensors``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from personalab.data.atomic import atomic_write_safetensors, atomic_write_text
from personalab.engine import Route
from personalab.errors import PersonalabError
from personalab.routing import RoutingTable
from personalab.strategies.base import FitContext
from personalab.strategies.grouping import Grouping, embed, group_personas
from personalab.strategies.per_cluster import train_clusters
from personalab.strategies.per_persona import persona_adapter, trainable_personas
from personalab.strategies.registry import register
from personalab.strategies.steps import UNIFIED, train_group_adapters
from personalab.strategies.validation import correct, score_rows
from personalab.strategies.weighted_merge import softmax_weights

TEMPERATURES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


@dataclass
class Router:
    experts: list[str]  # adapter names
    keys: np.ndarray  # [n_experts, dim]: unit vectors in the embedding source's space
    profile_keys: np.ndarray  # [n_experts, dim]: unit vectors in profile-embedding space
    top_k: int
    temperature: float = 0.0

    def route(self, vector: np.ndarray, by_profile: bool = False, temperature: float | None = None) -> Route:
        keys = self.profile_keys if by_profile else self.keys
        t = self.temperature if temperature is None else temperature
        weights = softmax_weights(keys @ vector, t, self.top_k)
        return Route({name: float(w) for name, w in zip(self.experts, weights) if w > 0})

    def save(self, folder, meta: dict) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"keys": torch.from_numpy(self.keys.astype(np.float32)),
                   "profile_keys": torch.from_numpy(self.profile_keys.astype(np.float32))}
        atomic_write_safetensors(folder / "router.safetensors", tensors)
        info = {"experts": self.experts, "top_k": self.top_k, "temperature": self.temperature, **meta}
        atomic_write_text(folder / "router.json", json.dumps(info, indent=2))


def _unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=-1, keepdims=True), 1e-12)


@register
class Moe:
    name = "moe"
    summary = "router: persona embedding -> top-k softmax mixture of cluster adapters; temperature tuned; routes new personas"

    def __init__(self, experts: str = "cluster", top_k: int = 2, temperature: float | None = None,
                 k: int | None = None, k_min: int = 2, k_max: int = 8, method: str = "kmeans",
                 source: str = "inputs", batch_size: int = 16, min_train_rows: int = 8):
        if experts not in ("cluster", "persona"):
            raise PersonalabError(f"moe experts must be 'cluster' or 'persona', not {experts!r}")
        if top_k < 1:
            raise PersonalabError(f"moe top_k must be at least 1, not {top_k}")
        self.experts, self.top_k, self.temperature = experts, top_k, temperature
        self.grouping = Grouping(k, k_min, k_max, method, source)
        self.batch_size, self.min_train_rows = batch_size, min_train_rows

    def fit(self, context: FitContext) -> RoutingTable:
        router = self._router(context)
        placed = self._placements(context)
        chosen = self.temperature
        if chosen is None:
            by_t = self._validation_accuracy(context, router, placed)
            chosen = min(t for t, a in by_t.items() if a == max(by_t.values()))  # ties: the hardest
            context.records["moe"] = {"val_accuracy_by_temperature": {str(t): a for t, a in by_t.items()}}
        router.temperature = chosen
        context.records.setdefault("moe", {}).update(
            {"temperature": chosen, "top_k": self.top_k, "experts": router.experts,
             "routed_by_profile": sorted(pid for pid, (_, by_profile) in placed.items() if by_profile)})
        router.save(context.run_dir / "router", {"source": self.grouping.source})
        table = {pid: router.route(vector, by_profile) for pid, (vector, by_profile) in placed.items()}
        return RoutingTable(default=Route.single(UNIFIED), table=table)

    def _router(self, context: FitContext) -> Router:
        """The experts (trained or reused) and their keys in both embedding spaces."""
        profile = embed(context, "profile")
        if self.experts == "cluster":
            groups = group_personas(context, self.grouping)
            names = train_clusters(context, groups, stacked=False, batch_size=self.batch_size)
            members = groups.members()
            experts = [names[c] for c in members]
            keys = np.stack([groups.centroids[c] for c in members])
            profile_keys = np.stack([np.mean([_vector(profile, p) for p in members[c]], axis=0) for c in members])
        else:
            personas = trainable_personas(context, self.min_train_rows)
            train_group_adapters(context, {persona_adapter(p): [p] for p in personas}, on_top_of_unified=False,
                                 batch_size=8, label="personas")
            source = embed(context, self.grouping.source)
            experts = [persona_adapter(p) for p in personas]
            keys = np.stack([_vector(source, p) for p in personas])
            profile_keys = np.stack([_vector(profile, p) for p in personas])
        return Router(experts, _unit(keys), _unit(profile_keys), min(self.top_k, len(experts)))

    def _placements(self, context: FitContext) -> dict[str, tuple[np.ndarray, bool]]:
        """Each persona's vector, and whether it is placed by profile (no train rows)."""
        trained = {e.persona_id for e in context.dataset.split("train")}
        source, profile = embed(context, self.grouping.source), embed(context, "profile")
        return {pid: (_vector(source, pid), False) if pid in trained else (_vector(profile, pid), True)
                for pid in context.dataset.personas}

    def _validation_accuracy(self, context, router: Router, placed) -> dict[float, float]:
        rows = context.dataset.split("val")
        accuracy = {}
        for t in TEMPERATURES:
            routes = {pid: router.route(v, by_profile, temperature=t) for pid, (v, by_profile) in placed.items()}
            scores = score_rows(context, rows, [routes[r.persona_id] for r in rows])
            accuracy[t] = float(correct(context, rows, scores).mean())
        return accuracy


def _vector(embeddings, persona_id: str) -> np.ndarray:
    return embeddings.matrix[embeddings.ids.index(persona_id)]
