"""``per_cluster``: embed the personas, cluster them, and fleet-train one adapter per cluster
on its personas' rows; each persona routes to its cluster's adapter.

``from_unified`` (the playbook's branch 2) is the same with every cluster adapter trained
with the unified adapter active and frozen beneath it: route ``{unified: 1, cluster: 1}``.
Personas without train rows (held out, or new) route to the unified adapter.
"""

from __future__ import annotations

from personalab.engine import Route
from personalab.routing import RoutingTable
from personalab.strategies.base import FitContext
from personalab.strategies.grouping import Grouping, Groups, group_personas
from personalab.strategies.registry import register
from personalab.strategies.steps import UNIFIED, train_group_adapters


def cluster_adapter(cluster: int, stacked: bool = False) -> str:
    return f"{'stacked_cluster' if stacked else 'cluster'}/{cluster}"


def train_clusters(context: FitContext, groups: Groups, stacked: bool, batch_size: int) -> dict[int, str]:
    """One adapter per cluster (reused when already trained); cluster -> adapter name."""
    names = {c: cluster_adapter(c, stacked) for c in groups.members()}
    train_group_adapters(context, {names[c]: members for c, members in groups.members().items()},
                         on_top_of_unified=stacked, batch_size=batch_size, label="clusters")
    return names


@register
class PerCluster:
    name = "per_cluster"
    summary = "cluster personas by embedding, fleet-train one adapter per cluster; route by cluster"
    stacked = False

    def __init__(self, k: int | None = None, k_min: int = 2, k_max: int = 8, method: str = "kmeans",
                 source: str = "inputs", batch_size: int = 16):
        self.grouping = Grouping(k, k_min, k_max, method, source)
        self.batch_size = batch_size

    def fit(self, context: FitContext) -> RoutingTable:
        groups = group_personas(context, self.grouping)
        names = train_clusters(context, groups, self.stacked, self.batch_size)
        under = {UNIFIED: 1.0} if self.stacked else {}
        table = {pid: Route({**under, names[groups.cluster_of(pid)]: 1.0}) for pid in groups.ids}
        return RoutingTable(default=Route.single(UNIFIED), table=table)


@register
class FromUnified(PerCluster):
    name = "from_unified"
    summary = "per_cluster, each cluster adapter trained on top of the frozen unified one; route unified + cluster"
    stacked = True
