"""``cluster_personas`` on hand-made unit vectors: choice of k, determinism, edge cases,
storage, the verdict, the summary and the picture (no embedding model needed)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, silhouette_score

from personalab.cluster import (
    Clustering,
    cluster_personas,
    format_clustering,
    plot_clusters,
    silhouette_quality,
)
from personalab.errors import PersonalabError


def blobs(n_groups: int, per_group: int, spread: float, dim: int = 16, seed: int = 0):
    """Unit vectors around ``n_groups`` random directions; returns (matrix, ids, groups)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, dim))
    groups = rng.permutation(np.repeat(np.arange(n_groups), per_group))
    matrix = centres[groups] + spread * rng.normal(size=(len(groups), dim))
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix.astype(np.float32), [f"p{i:02d}" for i in range(len(groups))], groups


@pytest.mark.parametrize("method", ["kmeans", "agglomerative"])
def test_clear_groups_are_found_and_their_number_chosen(method):
    matrix, ids, groups = blobs(n_groups=5, per_group=6, spread=0.15)
    result = cluster_personas(matrix, ids, method=method, k_range=(2, 8))
    assert result.k == 5 and max(result.silhouette_by_k, key=result.silhouette_by_k.get) == 5
    assert sorted(result.silhouette_by_k) == list(range(2, 9))
    assert adjusted_rand_score(groups, result.labels) == pytest.approx(1.0)
    assert result.quality in ("reasonable", "strong") and sum(result.sizes) == len(ids)
    expected = silhouette_score(matrix, result.labels, metric="cosine")
    assert result.silhouette == pytest.approx(expected, abs=1e-6)


def test_noise_gets_a_poor_verdict():
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(30, 64))
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    result = cluster_personas(matrix, k=4)
    assert result.quality == "poor" and result.silhouette_by_k is None
    assert "unlikely to beat one unified adapter" in format_clustering(result)


def test_centroids_sizes_and_numbering():
    matrix, ids, _ = blobs(n_groups=3, per_group=4, spread=0.1)
    result = cluster_personas(matrix, ids, k=3)
    labels = np.array(result.labels)
    assert result.labels[0] == 0 and list(dict.fromkeys(result.labels)) == [0, 1, 2]
    for cluster in range(3):
        np.testing.assert_allclose(result.centroids[cluster],
                                   matrix[labels == cluster].mean(axis=0), atol=1e-6)
        assert result.sizes[cluster] == len(result.members(cluster))
    assert result.assignments == dict(zip(ids, result.labels))


def test_same_seed_same_clusters():
    matrix, ids, _ = blobs(n_groups=4, per_group=5, spread=0.6, seed=3)
    first = cluster_personas(matrix, ids, k=4, seed=7)
    assert cluster_personas(matrix, ids, k=4, seed=7).to_json() == first.to_json()


def test_json_round_trip():
    matrix, ids, _ = blobs(n_groups=3, per_group=4, spread=0.2)
    result = cluster_personas(matrix, ids, k_range=(2, 5))
    back = Clustering.from_json(result.to_json())
    assert back.to_json() == result.to_json()
    np.testing.assert_array_equal(back.centroids, result.centroids)
    assert back.silhouette_by_k == result.silhouette_by_k and back.quality == result.quality
    assert set(back.silhouette_by_k) == {2, 3, 4, 5}  # int keys again, not JSON's strings


def test_k_range_is_clipped_to_n_minus_one():
    matrix, ids, _ = blobs(n_groups=2, per_group=3, spread=0.1)
    result = cluster_personas(matrix, ids, k_range=(2, 8))
    assert sorted(result.silhouette_by_k) == [2, 3, 4, 5]


@pytest.mark.parametrize(
    ("n", "kwargs", "message"),
    [
        (6, {"k": 1}, "at least 2"),
        (6, {"k": 6}, "too large"),
        (2, {}, "too few"),
        (6, {"k_range": (1, 4)}, "k_min"),
        (6, {"k_range": (5, 3)}, "k_min"),
        (6, {"method": "dbscan"}, "unknown clustering method"),
    ],
)
def test_impossible_requests_are_user_errors(n, kwargs, message):
    matrix, ids, _ = blobs(n_groups=1, per_group=n, spread=1.0)
    with pytest.raises(PersonalabError, match=message):
        cluster_personas(matrix, ids, **kwargs)


def test_identical_personas_cannot_make_more_clusters_than_distinct_points():
    matrix = np.repeat(np.eye(4, dtype=np.float32)[:2], 3, axis=0)  # 6 rows, 2 distinct
    with pytest.raises(PersonalabError, match="distinct"):
        cluster_personas(matrix, k=3)
    assert cluster_personas(matrix, k_range=(2, 8)).k == 2


@pytest.mark.parametrize(
    ("value", "verdict"),
    [(-0.3, "poor"), (0.022, "poor"), (0.25, "poor"), (0.26, "weak"), (0.5, "weak"),
     (0.55, "reasonable"), (0.7, "reasonable"), (0.71, "strong")],
)
def test_kaufman_rousseeuw_bands(value, verdict):
    assert silhouette_quality(value) == verdict


def test_summary_says_everything_needed():
    matrix, ids, _ = blobs(n_groups=3, per_group=5, spread=0.2)
    result = cluster_personas(matrix, ids, k_range=(2, 4))
    text = format_clustering(result)
    assert text.startswith("3 clusters (kmeans, k chosen by silhouette over 2..4), 15 personas")
    assert "sizes: 0: 5, 1: 5, 2: 5" in text
    assert f"silhouette {result.silhouette:.3f} (cosine): {result.quality}" in text
    assert f"Davies-Bouldin {result.davies_bouldin:.3f}" in text
    assert f"[3: {result.silhouette_by_k[3]:.3f}]" in text and "2: " in text


def test_plot_writes_a_png_and_nothing_else(tmp_path):
    from matplotlib.image import imread

    matrix, ids, _ = blobs(n_groups=3, per_group=5, spread=0.2)
    result = cluster_personas(matrix, ids, k=3)
    target = tmp_path / "plots" / "clusters.png"
    assert plot_clusters(matrix, result, target) == target
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(target).ndim == 3
    assert [p.name for p in target.parent.iterdir()] == ["clusters.png"]  # no temp left
    with pytest.raises(PersonalabError, match="embeddings but"):
        plot_clusters(matrix[:-1], result, tmp_path / "x.png")
