"""SpreadConstraint: spreading by provider, region or zone needs the cluster to declare it.

A cluster without the field could not be counted in any group, so it is filtered out
before the groups are formed.
"""

from __future__ import annotations

from typing import Any, ClassVar

from atoll.federation.scheduler.framework import SUCCESS, BindingContext, Status, unschedulable
from atoll.federation.scheduler.placement import (
    SPREAD_BY_PROVIDER,
    SPREAD_BY_REGION,
    SPREAD_BY_ZONE,
    cluster_spec,
    cluster_zones,
)

Obj = dict[str, Any]


class SpreadConstraint:
    NAME: ClassVar[str] = "SpreadConstraint"

    def filter(self, ctx: BindingContext, cluster: Obj) -> Status:
        spec = cluster_spec(cluster)
        for sc in ctx.placement.get("spreadConstraints") or []:
            by = sc.get("spreadByField")
            if by == SPREAD_BY_PROVIDER and not spec.get("provider"):
                return unschedulable("cluster(s) did not have provider property")
            if by == SPREAD_BY_REGION and not spec.get("region"):
                return unschedulable("cluster(s) did not have region property")
            if by == SPREAD_BY_ZONE and not cluster_zones(cluster):
                return unschedulable("cluster(s) did not have zones property")
        return SUCCESS
