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
from atoll.federation.scheduler.placement import cluster_matches

Obj = dict[str, Any]
REASON = "cluster(s) did not match the placement cluster affinity constraint"


def active_affinity(ctx: BindingContext) -> tuple[bool, Obj | None]:
    """(whether an affinity applies, the affinity): the single one, or the observed term's."""
    placement = ctx.placement
    single = placement.get("clusterAffinity")
    if single is not None:
        return True, single
    observed = ctx.status.get("schedulerObservingAffinityName") or ""
    for term in placement.get("clusterAffinities") or []:
        if (term.get("affinityName") or "") == observed:
            return True, term
    return False, None


class ClusterAffinity:
    NAME: ClassVar[str] = "ClusterAffinity"

    def filter(self, ctx: BindingContext, cluster: Obj) -> Status:
        applies, affinity = active_affinity(ctx)
        if not applies or cluster_matches(cluster, affinity):
            return SUCCESS
        return unschedulable(REASON)

    def score(self, ctx: BindingContext, cluster: Obj) -> int:
        return MIN_CLUSTER_SCORE
