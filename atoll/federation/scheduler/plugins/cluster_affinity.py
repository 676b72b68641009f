"""ClusterAffinity: clusters the placement's affinity selects.

``clusterAffinity`` applies as it is; with ordered ``clusterAffinities`` only the term
the scheduler is currently trying (``status.schedulerObservingAffinityName``, which the
scheduler sets per attempt) applies, so a later term is the fallback when the earlier
ones cannot fit. No affinity at all selects every cluster.
"""

from __future__ import annotations

from typing import Any, ClassVar

from atoll.federation.scheduler.framework import (
    MIN_CLUSTER_SCORE,
    SUCCESS,
    BindingContext,
    Status,
    unschedulable,
)
from atoll.federation.scheduler.placement import cluster_matches, is_workload

Obj = dict[str, Any]
REASON = "cluster(s) did not match the placement cluster affinity constraint"


def active_affinities(ctx: BindingContext) -> list[Obj] | None:
    """The affinities a cluster may match (any one suffices); None when nothing restricts.

    For ``clusterAffinities`` that is the term in use and, for workloads, its
    ``overflowAffinities`` (the groups replicas overflow to when the term is full; a
    ConfigMap consumes nothing, so it stays in the primary group).
    """
    placement = ctx.placement
    single = placement.get("clusterAffinity")
    if single is not None:
        return [single]
    observed = ctx.status.get("schedulerObservingAffinityName") or ""
    for term in placement.get("clusterAffinities") or []:
        if (term.get("affinityName") or "") == observed:
            out = [term]
            if is_workload(ctx.spec):
                out += list(term.get("overflowAffinities") or [])
            return out
    return None


class ClusterAffinity:
    NAME: ClassVar[str] = "ClusterAffinity"

    def filter(self, ctx: BindingContext, cluster: Obj) -> Status:
        affinities = active_affinities(ctx)
        if affinities is None or any(cluster_matches(cluster, a) for a in affinities):
            return SUCCESS
        return unschedulable(REASON)

    def score(self, ctx: BindingContext, cluster: Obj) -> int:
        return MIN_CLUSTER_SCORE
