"""``personalab cluster --data DIR``: embed the personas, cluster them, and say whether the
clusters are real (silhouette) — the check to make before any per-cluster strategy."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Embed every persona of a dataset, cluster the personas, and print the clusters with their
silhouette: the first question of the playbook ("cluster the personas, train one LoRA per
cluster") is whether there are clusters at all.

embedding sources (--source):
  inputs   how the persona labels its train rows (default). For a label set: per label, the
           mean embedding of the inputs the persona gave that label minus the mean of all its
           inputs — what it likes versus dislikes. Only train rows are used, never val/test.
  profile  the embedding of the persona's profile text (who it is, not how it labels).
  both     the two side by side; similarity is the mean of the two similarities.

the silhouette (cosine) of a persona compares its mean distance to its own cluster with that
to the nearest other cluster: +1 well inside its cluster, 0 on a border, < 0 closer to another
cluster. The mean over personas reads (Kaufman & Rousseeuw):
  > 0.7 strong   0.5-0.7 reasonable   0.25-0.5 weak (may be artificial)   < 0.25 poor
A poor silhouette means the personas do not form groups in this embedding: per-cluster
strategies (cluster adapters, merges within clusters) are then unlikely to beat one unified
adapter. Without --k, every k from --k-min to --k-max is tried and the best silhouette wins.

examples:
  personalab cluster --data data/synth
  personalab cluster --data data/synth --k 4 --plot runs/clusters.png
  personalab cluster --data data/popquorn --source profile --method agglomerative
"""

K_RANGE = (2, 8)


def register(subparsers: argparse._SubParsersAction) -> None:
    from personalab.cluster.clustering import METHODS
    from personalab.embed.personas import DEFAULT_SOURCE, SOURCES

    parser = subparsers.add_parser(
        "cluster",
        help="cluster the personas by embedding and report the silhouette",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", required=True, metavar="DIR", help="dataset folder")
    parser.add_argument("--source", choices=SOURCES, default=DEFAULT_SOURCE,
                        help="what a persona vector is built from (default %(default)s)")
    parser.add_argument("--no-outputs", dest="with_outputs", action="store_false",
                        help="'inputs' from the inputs alone, ignoring the labels given")
    parser.add_argument("--method", choices=METHODS, default="kmeans",
                        help="clustering algorithm (default %(default)s)")
    parser.add_argument("--k", type=int, metavar="K", help="number of clusters (default: "
                        "chosen by silhouette over --k-min..--k-max)")
    parser.add_argument("--k-min", type=int, metavar="K",
                        help=f"smallest k to try (default {K_RANGE[0]})")
    parser.add_argument("--k-max", type=int, metavar="K",
                        help=f"largest k to try, clipped to personas - 1 (default {K_RANGE[1]})")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="k-means seed; the same seed gives the same clusters (default 0)")
    parser.add_argument("--model", metavar="PATH",
                        help="local sentence-transformers folder (default: embedded MiniLM)")
    parser.add_argument("--plot", metavar="PNG", help="also draw the clusters (2-D PCA) here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from personalab.cluster import cluster_personas, format_clustering, plot_clusters
    from personalab.data import load_dataset
    from personalab.embed import persona_embeddings
    from personalab.errors import PersonalabError

    if args.k is not None and (args.k_min is not None or args.k_max is not None):
        raise PersonalabError("give either --k or --k-min/--k-max, not both")
    k_range = (_or(args.k_min, K_RANGE[0]), _or(args.k_max, K_RANGE[1]))
    dataset = load_dataset(args.data)  # its DataError lists every problem of the folder
    embeddings = persona_embeddings(
        dataset, source=args.source, with_outputs=args.with_outputs, model=args.model,
        progress=sys.stderr.isatty(),
    )
    clustering = cluster_personas(
        embeddings, method=args.method, k=args.k, k_range=k_range, seed=args.seed
    )
    print(format_clustering(clustering))
    if args.plot:
        print(f"plot: {plot_clusters(embeddings, clustering, args.plot)}")
    return 0


def _or(value: int | None, default: int) -> int:
    return default if value is None else value
