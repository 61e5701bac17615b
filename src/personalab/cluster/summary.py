"""A clustering as readable text: what the CLI prints and the report can quote."""

from __future__ import annotations

from personalab.cluster.clustering import Clustering, quality_meaning


def format_clustering(clustering: Clustering) -> str:
    """E.g.::

        4 clusters (kmeans, k chosen by silhouette over 2..8), 24 personas embedded from inputs
        sizes: 0: 6, 1: 6, 2: 6, 3: 6
        silhouette 0.512 (cosine): reasonable — a reasonable structure has been found
        Davies-Bouldin 0.91 (lower is better)
        silhouette by k: 2: 0.38  3: 0.46  [4: 0.51]  5: 0.48 ...
    """
    lines = [_headline(clustering)]
    lines.append("sizes: " + ", ".join(f"{c}: {n}" for c, n in enumerate(clustering.sizes)))
    lines.append(
        f"silhouette {clustering.silhouette:.3f} (cosine): {clustering.quality} — "
        f"{quality_meaning(clustering.silhouette)}"
    )
    lines.append(f"Davies-Bouldin {clustering.davies_bouldin:.3f} (lower is better)")
    if clustering.silhouette_by_k:
        lines.append("silhouette by k: " + "  ".join(
            f"[{k}: {s:.3f}]" if k == clustering.k else f"{k}: {s:.3f}"
            for k, s in sorted(clustering.silhouette_by_k.items())
        ))
    if clustering.quality == "poor":
        lines.append(
            "The personas do not form clear groups in this embedding: per-cluster adapters "
            "are unlikely to beat one unified adapter."
        )
    return "\n".join(lines)


def _headline(clustering: Clustering) -> str:
    how = clustering.method
    if clustering.silhouette_by_k:
        ks = sorted(clustering.silhouette_by_k)
        how += f", k chosen by silhouette over {ks[0]}..{ks[-1]}"
    line = f"{clustering.k} clusters ({how}), {len(clustering.ids)} personas"
    if clustering.source:
        line += f" embedded from {clustering.source}"
        if clustering.model:
            line += f" with {clustering.model}"
    return line
