"""ClusterLocality: clusters that already run the workload score 100, others 0.

Rescheduling then prefers to keep replicas where they are (moving a workload between
clouds is the expensive thing to do).
"""

from __future__ import annotations

from typing import Any, ClassVar

from atoll.federation.scheduler.framework import MAX_CLUSTER_SCORE, MIN_CLUSTER_SCORE, BindingContext
from atoll.federation.scheduler.placement import cluster_name, target_contains

Obj = dict[str, Any]


class ClusterLocality:
    NAME: ClassVar[str] = "ClusterLocality"

    def score(self, ctx: BindingContext, cluster: Obj) -> int:
        if not ctx.spec.get("clusters"):
            return MIN_CLUSTER_SCORE
        return MAX_CLUSTER_SCORE if target_contains(ctx.spec, cluster_name(cluster)) else MIN_CLUSTER_SCORE
