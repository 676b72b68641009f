"""TaintToleration: a cluster's NoSchedule/NoExecute taints must be tolerated by ``clusterTolerations``.

A cluster already in ``spec.clusters`` passes: the workload stays until the taint
manager (failover) evicts it after its grace period, rather than the scheduler pulling
it at the next reschedule.
"""

from __future__ import annotations

from typing import Any, ClassVar

from atoll.federation.scheduler.framework import SUCCESS, BindingContext, Status, unschedulable
from atoll.federation.scheduler.placement import (
    cluster_name,
    cluster_spec,
    taint_string,
    target_contains,
    untolerated_taint,
)

Obj = dict[str, Any]


class TaintToleration:
    NAME: ClassVar[str] = "TaintToleration"

    def filter(self, ctx: BindingContext, cluster: Obj) -> Status:
        if target_contains(ctx.spec, cluster_name(cluster)):
            return SUCCESS
        taints = cluster_spec(cluster).get("taints") or []
        taint = untolerated_taint(taints, list(ctx.placement.get("clusterTolerations") or []))
        if taint is None:
            return SUCCESS
        return unschedulable(f"cluster(s) had untolerated taint {{{taint_string(taint)}}}")
