"""Personas in embedding space, grouped into clusters: the step every cluster-based strategy
(``per_cluster``, ``from_unified``, ``ensemble``, ``weighted_merge``, ``moe``) starts from.

Embeddings use the persona's train rows only (never val or test). The clustering and its
picture are recorded in the run (``training.json`` and ``clusters.png``), because the
planner and the report read its quality.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from personalab.errors import PersonalabError
from personalab.strategies.base import FitContext

SOURCES = ("profile", "inputs", "both")
METHODS = ("kmeans", "agglomerative")


@dataclass(frozen=True)
class Grouping:
    """How personas are embedded and clustered."""

    k: int | None = None  # None: chosen over k_min..k_max by silhouette
    k_min: int = 2
    k_max: int = 8
    method: str = "kmeans"  # or "agglomerative"
    source: str = "inputs"  # "profile", "inputs" (train rows with their outputs) or "both"

    def __post_init__(self):
        if self.source not in SOURCES:
            raise PersonalabError(f"embedding source {self.source!r} is not one of {', '.join(SOURCES)}")
        if self.method not in METHODS:
            raise PersonalabError(f"clustering method {self.method!r} is not one of {', '.join(METHODS)}")


@dataclass
class Groups:
    """The personas' embeddings and their clusters."""

    ids: list[str]
    matrix: np.ndarray  # [n_personas, dim], rows L2-normalized
    labels: np.ndarray  # [n_personas] cluster index
    centroids: np.ndarray  # [k, dim]
    clustering: Any  # personalab.cluster.Clustering

    def members(self) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for pid, label in zip(self.ids, self.labels.tolist()):
            out.setdefault(int(label), []).append(pid)
        return dict(sorted(out.items()))

    def cluster_of(self, persona_id: str) -> int:
        return int(self.labels[self.ids.index(persona_id)])

    def vector(self, persona_id: str) -> np.ndarray:
        return self.matrix[self.ids.index(persona_id)]


def embed(context: FitContext, source: str):
    """Persona embeddings of the context's dataset (cached per source within a fit)."""
    from personalab.embed import persona_embeddings

    cache = context.memo.setdefault("embeddings", {})
    if source not in cache:
        cache[source] = persona_embeddings(context.dataset, source=source)
    return cache[source]


def group_personas(context: FitContext, grouping: Grouping, personas: list[str] | None = None) -> Groups:
    """Cluster the personas that have train rows (or ``personas``); record the result."""
    from personalab.cluster import cluster_personas, plot_clusters

    embeddings = embed(context, grouping.source)
    trained = {e.persona_id for e in context.dataset.split("train")}
    wanted = personas if personas is not None else [pid for pid in embeddings.ids if pid in trained]
    index = [embeddings.ids.index(pid) for pid in wanted]
    subset = type(embeddings)(**{**_fields(embeddings), "ids": list(wanted), "matrix": embeddings.matrix[index]})
    k_range = (grouping.k_min, grouping.k_max)
    clustering = cluster_personas(subset, method=grouping.method, k=grouping.k, k_range=k_range, seed=context.seed)
    plot_clusters(subset, clustering, context.run_dir / "clusters.png")
    context.records["clustering"] = {**json.loads(clustering.to_json()), "grouping": asdict(grouping)}
    return Groups(list(wanted), subset.matrix, np.asarray(clustering.labels), np.asarray(clustering.centroids), clustering)


def _fields(embeddings) -> dict[str, Any]:
    return {name: getattr(embeddings, name) for name in embeddings.__dataclass_fields__}
