"""The cluster picture: personas in the 2-D PCA plane of their embeddings, one colour per
cluster, the silhouette in the title, written as a PNG.

matplotlib is used through its Agg canvas directly (no pyplot): no global figure state and no
display needed. The PNG is written through ``personalab.data.atomic``, so a reader never
sees half a file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from personalab.cluster.clustering import Clustering
from personalab.data.atomic import atomic_file
from personalab.errors import PersonalabError

# Up to this many personas, each point carries its id; more would only be ink.
MAX_ANNOTATED = 40


def plot_clusters(embeddings, clustering: Clustering, path: str | os.PathLike) -> Path:
    """Draw ``clustering`` of ``embeddings`` (a ``PersonaEmbeddings`` or a matrix aligned with
    ``clustering.ids``) to the PNG file ``path``; returns the path."""
    matrix = np.asarray(getattr(embeddings, "matrix", embeddings), dtype=np.float64)
    if len(matrix) != len(clustering.ids):
        raise PersonalabError(
            f"{len(matrix)} embeddings but {len(clustering.ids)} clustered personas"
        )
    points = _project(matrix)
    figure = _figure(points, clustering)
    return _save_png(figure, Path(path))


def _project(matrix: np.ndarray) -> np.ndarray:
    """The first two principal components (zeros where the data has fewer dimensions)."""
    from sklearn.decomposition import PCA

    components = min(2, *matrix.shape)
    projected = PCA(n_components=components, svd_solver="full").fit_transform(matrix)
    return np.pad(projected, ((0, 0), (0, 2 - components)))


def _figure(points: np.ndarray, clustering: Clustering):
    try:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PersonalabError("plotting needs matplotlib: pip install matplotlib") from None
    figure = Figure(figsize=(6.4, 5.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    labels = np.asarray(clustering.labels)
    colours = colormaps["tab10" if clustering.k <= 10 else "tab20"]
    for cluster in range(clustering.k):
        mine = points[labels == cluster]
        axes.scatter(mine[:, 0], mine[:, 1], s=36, color=colours(cluster % colours.N),
                     label=f"cluster {cluster} ({len(mine)})")
    if len(points) <= MAX_ANNOTATED:
        for (x, y), persona_id in zip(points, clustering.ids):
            axes.annotate(persona_id, (x, y), fontsize=7, xytext=(3, 3),
                          textcoords="offset points")
    axes.set_title(
        f"{clustering.k} clusters ({_how(clustering)}), silhouette "
        f"{clustering.silhouette:.3f} ({clustering.quality})"
    )
    axes.set_xlabel("PC 1")
    axes.set_ylabel("PC 2")
    axes.legend(fontsize=8, loc="best")
    figure.tight_layout()
    return figure


def _save_png(figure, path: Path) -> Path:
    with atomic_file(path) as temporary:
        figure.savefig(temporary, format="png")
    return path


def _how(clustering: Clustering) -> str:
    return f"{clustering.method}, {clustering.source}" if clustering.source else clustering.method
