"""APIEnablement: only clusters that serve the resource's API (``status.apiEnablements``).

A cluster already in the binding's ``spec.clusters`` always passes, so an API that
disappears for a moment (a CRD reinstalled on the member) never unschedules what runs
there; the execution controller recreates the objects when the API is back.
"""

from __future__ import annotations

from typing import Any, ClassVar

from atoll.federation.scheduler.framework import SUCCESS, BindingContext, Status, unschedulable
from atoll.federation.scheduler.placement import cluster_name, target_contains

Obj = dict[str, Any]
REASON = "cluster(s) did not have the API resource"


def api_enabled(cluster: Obj, api_version: str, kind: str) -> bool:
    """``Cluster.APIEnablement(gvk) == APIEnabled``: the group/version lists the kind.

    Absent from a complete list is "disabled", absent from a partial one "unknown";
    the filter passes neither.
    """
    for enablement in (cluster.get("status") or {}).get("apiEnablements") or []:
        if enablement.get("groupVersion") != api_version:
            continue
        if any(r.get("kind") == kind for r in enablement.get("resources") or []):
            return True
    return False


class APIEnablement:
    NAME: ClassVar[str] = "APIEnablement"

    def filter(self, ctx: BindingContext, cluster: Obj) -> Status:
        if target_contains(ctx.spec, cluster_name(cluster)):
            return SUCCESS
        resource = ctx.spec.get("resource") or {}
        if api_enabled(cluster, str(resource.get("apiVersion", "")), str(resource.get("kind", ""))):
            return SUCCESS
        return unschedulable(REASON)
