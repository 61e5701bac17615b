"""Clustering persona embeddings (k-means or Ward agglomerative) and judging the result.

The silhouette is computed with the **cosine** distance: persona vectors are L2-normalised
and everything downstream (merge weights, routing) compares them by cosine. Davies–Bouldin
(lower is better) is sklearn's, i.e. Euclidean; between unit vectors that is a monotone
function of the cosine distance (|a - b|^2 = 2 - 2 cos). The verdict reads the mean
silhouette as Kaufman & Rousseeuw do: up to 0.25 no substantial structure ("poor"), up to
0.5 weak (possibly artificial), up to 0.7 reasonable, above that strong. A poor verdict is the playbook's warning sign: per-cluster strategies cannot help
where the clusters are not there.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np

from personalab.errors import PersonalabError

METHODS = ("kmeans", "agglomerative")
SILHOUETTE_METRIC = "cosine"
# (lower bound, verdict, what it means), from the top; Kaufman & Rousseeuw (1990).
QUALITY_BANDS = (
    (0.7, "strong", "a strong structure has been found"),
    (0.5, "reasonable", "a reasonable structure has been found"),
    (0.25, "weak", "the structure is weak and could be artificial"),
    (float("-inf"), "poor", "no substantial structure has been found"),
)


@dataclass
class Clustering:
    """Personas assigned to clusters, with the measures that say whether to trust them."""

    ids: list[str]
    labels: list[int]
    """Cluster of each persona, aligned with ``ids``; numbered by first appearance in ids."""
    k: int
    centroids: np.ndarray
    """[k, d] mean of each cluster's member vectors (not renormalised)."""
    sizes: list[int]
    silhouette: float
    """Mean silhouette, cosine distance, in [-1, 1]."""
    davies_bouldin: float
    """Davies–Bouldin index (Euclidean on the unit vectors); lower is better."""
    method: str
    seed: int = 0
    silhouette_by_k: dict[int, float] | None = None
    """Silhouette of each k tried when k was chosen over a range; None when k was given."""
    source: str | None = None
    """What the persona vectors were built from (``PersonaEmbeddings.source``), if known."""
    model: str | None = None

    @property
    def quality(self) -> str:
        return silhouette_quality(self.silhouette)

    @property
    def assignments(self) -> dict[str, int]:
        return dict(zip(self.ids, self.labels))

    def members(self, cluster: int) -> list[str]:
        return [pid for pid, label in zip(self.ids, self.labels) if label == cluster]

    def to_json(self) -> str:
        data = asdict(self)
        data["centroids"] = self.centroids.tolist()
        if self.silhouette_by_k is not None:
            data["silhouette_by_k"] = {str(k): v for k, v in self.silhouette_by_k.items()}
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Clustering:
        data = json.loads(text)
        data["centroids"] = np.asarray(data["centroids"], dtype=np.float32)
        if data.get("silhouette_by_k") is not None:
            data["silhouette_by_k"] = {int(k): v for k, v in data["silhouette_by_k"].items()}
        return cls(**data)


def silhouette_quality(silhouette: float) -> str:
    """"strong", "reasonable", "weak" or "poor" (Kaufman–Rousseeuw bands)."""
    return next(name for low, name, _ in QUALITY_BANDS if silhouette > low)


def quality_meaning(silhouette: float) -> str:
    return next(text for low, _, text in QUALITY_BANDS if silhouette > low)


def cluster_personas(
    embeddings,
    ids: list[str] | None = None,
    method: str = "kmeans",
    k: int | None = None,
    k_range: tuple[int, int] = (2, 8),
    seed: int = 0,
) -> Clustering:
    """Cluster persona vectors: ``embeddings`` is a ``PersonaEmbeddings``, or a matrix with
    its ``ids``. With ``k`` None, every k of ``k_range`` (inclusive, clipped to n - 1) is tried
    and the best silhouette wins (the smaller k on a tie)."""
    matrix, ids, source, model = _unpack(embeddings, ids)
    if method not in METHODS:
        raise PersonalabError(f"unknown clustering method {method!r}; choose one of {METHODS}")
    if k is not None:
        _check_k(k, matrix)
        labels, by_k = _fit(matrix, method, k, seed), None
    else:
        by_k, fits = {}, {}
        for candidate in _candidate_ks(k_range, matrix):
            fits[candidate] = _fit(matrix, method, candidate, seed)
            by_k[candidate] = _silhouette(matrix, fits[candidate])
        k = max(by_k, key=lambda c: (by_k[c], -c))
        labels = fits[k]
    return _clustering(matrix, ids, labels, method, seed, by_k, source, model)


def _unpack(embeddings, ids):
    if hasattr(embeddings, "matrix"):
        return (np.asarray(embeddings.matrix, dtype=np.float64), list(embeddings.ids),
                getattr(embeddings, "source", None), getattr(embeddings, "model", None))
    matrix = np.asarray(embeddings, dtype=np.float64)
    if ids is None:
        ids = [str(i) for i in range(len(matrix))]
    if matrix.ndim != 2 or len(ids) != len(matrix):
        raise PersonalabError(f"need a [n, d] matrix and n ids; got {matrix.shape}, {len(ids)}")
    return matrix, list(ids), None, None


def _max_k(matrix: np.ndarray) -> int:
    # The silhouette needs 2 <= k <= n - 1, and k distinct points to make k clusters.
    distinct = len(np.unique(matrix.round(6), axis=0))
    return min(len(matrix) - 1, distinct)


def _check_k(k: int, matrix: np.ndarray) -> None:
    n = len(matrix)
    if k < 2:
        raise PersonalabError(f"k must be at least 2 (one cluster has no silhouette), got {k}")
    if k > _max_k(matrix):
        raise PersonalabError(
            f"k={k} is too large for {n} personas: the silhouette needs k <= n - 1 "
            f"and k distinct persona vectors (here at most {max(_max_k(matrix), 1)})"
        )


def _candidate_ks(k_range: tuple[int, int], matrix: np.ndarray) -> list[int]:
    low, high = int(k_range[0]), int(k_range[1])
    if low < 2 or high < low:
        raise PersonalabError(f"k range must satisfy 2 <= k_min <= k_max, got {low}..{high}")
    high = min(high, _max_k(matrix))
    if high < low:
        raise PersonalabError(
            f"{len(matrix)} personas are too few to try k in {low}..{k_range[1]}: "
            "the silhouette needs at least 3 personas and k <= n - 1"
        )
    return list(range(low, high + 1))


def _fit(matrix: np.ndarray, method: str, k: int, seed: int) -> np.ndarray:
    # sklearn is imported here, not at the top: the CLI builds its parser from this module.
    from sklearn.cluster import AgglomerativeClustering, KMeans

    if method == "kmeans":
        model = KMeans(n_clusters=k, n_init=10, random_state=seed)
    else:
        # Ward on unit vectors: squared Euclidean distance is 2 - 2 cos, so it merges by
        # cosine too, and it is deterministic (the seed plays no part).
        model = AgglomerativeClustering(n_clusters=k, linkage="ward")
    return _renumbered(model.fit_predict(matrix))


def _renumbered(labels: np.ndarray) -> np.ndarray:
    """Cluster numbers by first appearance, so that equal partitions get equal numbers."""
    order = {label: index for index, label in enumerate(dict.fromkeys(labels.tolist()))}
    return np.array([order[label] for label in labels.tolist()], dtype=int)


def _silhouette(matrix: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    return float(silhouette_score(matrix, labels, metric=SILHOUETTE_METRIC))


def _clustering(matrix, ids, labels, method, seed, by_k, source, model) -> Clustering:
    from sklearn.metrics import davies_bouldin_score

    k = int(labels.max()) + 1
    centroids = np.stack([matrix[labels == c].mean(axis=0) for c in range(k)])
    return Clustering(
        ids=ids,
        labels=labels.tolist(),
        k=k,
        centroids=centroids.astype(np.float32),
        sizes=np.bincount(labels, minlength=k).tolist(),
        silhouette=_silhouette(matrix, labels),
        davies_bouldin=float(davies_bouldin_score(matrix, labels)),
        method=method,
        seed=seed,
        silhouette_by_k=by_k,
        source=source,
        model=model,
    )
