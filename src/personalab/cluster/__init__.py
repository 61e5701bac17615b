"""Clustering personas by their embeddings: k-means or agglomerative, k given or chosen by
silhouette, the quality verdict that says whether clusters are worth training, the summary
text and the 2-D picture."""

from __future__ import annotations

from personalab.cluster.clustering import (
    METHODS,
    SILHOUETTE_METRIC,
    Clustering,
    cluster_personas,
    quality_meaning,
    silhouette_quality,
)
from personalab.cluster.plot import plot_clusters
from personalab.cluster.summary import format_clustering

__all__ = [
    "METHODS",
    "SILHOUETTE_METRIC",
    "Clustering",
    "cluster_personas",
    "format_clustering",
    "plot_clusters",
    "quality_meaning",
    "silhouette_quality",
]
