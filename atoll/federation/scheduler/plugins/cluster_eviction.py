"""ClusterEviction: a cluster the binding is being evicted from (``spec.gracefulEvictionTasks``) gets nothing new.

Otherwise failover would evict replicas from a cluster and the scheduler would put them
straight back.
"""

from __future__ import annotations

from typing import Any, ClassVar

from atoll.federation.scheduler.framework import SUCCESS, BindingContext, Status, unschedulable
from atoll.federation.scheduler.placement import cluster_name, in_graceful_eviction

Obj = dict[str, Any]
REASON = "cluster(s) is in the process of eviction"


class ClusterEviction:
    NAME: ClassVar[str] = "ClusterEviction"

    def filter(self, ctx: BindingContext, cluster: Obj) -> Status:
        if in_graceful_eviction(ctx.spec, cluster_name(cluster)):
            return unschedulable(REASON)
        return SUCCESS
