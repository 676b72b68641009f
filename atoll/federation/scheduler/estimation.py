"""How many more replicas a member cluster can take, from ``Cluster.status.resourceSummary``.

Karmada's general estimator (``pkg/estimator/client/general.go``): the pod slots left
(allocatable - allocated - allocating ``pods``) bound the answer; each requested
resource bounds it again by ``available // request`` (CPU in millicores, everything else
in whole units, both rounded up as ``Quantity.Value``/``MilliValue`` do). A cluster that
lacks a requested resource, or has none of it left, takes no replica. A cluster without
a resource summary (not probed yet) takes none either.

The scheduler's view (``calAvailableReplicas``): a binding without replicas (a
ConfigMap, a Service) is not estimated at all — every cluster counts as unbounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from atoll.federation.scheduler.placement import MAX_INT32, milli_value_of, quantity, value_of

Obj = dict[str, Any]


def _resource(summary: Mapping[str, Any], part: str, name: str) -> Fraction | None:
    values = summary.get(part)
    if not isinstance(values, Mapping) or name not in values:
        return None
    return quantity(values[name])


def allowed_pods(summary: Mapping[str, Any]) -> int:
    """``getAllowedPodNumber``: pod slots left, never negative."""
    parts = [_resource(summary, p, "pods") for p in ("allocatable", "allocated", "allocating")]
    allocatable, allocated, allocating = (value_of(q) if q is not None else 0 for q in parts)
    return max(0, allocatable - allocated - allocating)


def replicas_by_summary(summary: Mapping[str, Any], requests: Mapping[str, Any]) -> int:
    """``getMaximumReplicasBasedOnClusterSummary``: the tightest bound over the requested resources."""
    best: int | None = None
    for name, raw in requests.items():
        requested = quantity(raw)
        if value_of(requested) <= 0:
            continue
        allocatable = _resource(summary, "allocatable", name)
        if allocatable is None:
            return 0
        left = allocatable
        for part in ("allocated", "allocating"):
            used = _resource(summary, part, name)
            if used is not None:
                left -= used
        if value_of(left) <= 0:
            return 0
        if name == "cpu":
            bound = milli_value_of(left) // milli_value_of(requested)
        else:
            bound = value_of(left) // value_of(requested)
        best = bound if best is None else min(best, bound)
    return best if best is not None else 2**63 - 1


def max_available_replicas(cluster: Mapping[str, Any], requirements: Mapping[str, Any] | None) -> int:
    """The general estimator's answer for one cluster (int32, as Karmada reports it)."""
    summary = (cluster.get("status") or {}).get("resourceSummary")
    if not isinstance(summary, Mapping):
        return 0
    maximum = allowed_pods(summary)
    if maximum <= 0:
        return 0
    if requirements is None:
        return min(maximum, MAX_INT32)
    requests = requirements.get("resourceRequest") or {}
    maximum = min(maximum, replicas_by_summary(summary, requests))
    return min(maximum, MAX_INT32)


def available_replicas(clusters: list[Obj], spec: Mapping[str, Any]) -> list[Obj]:
    """``calAvailableReplicas``: ``[{name, replicas}]`` per cluster, in the order given."""
    replicas = int(spec.get("replicas") or 0)
    names = [str((c.get("metadata") or {}).get("name", "")) for c in clusters]
    if replicas == 0 and not spec.get("components"):
        return [{"name": n, "replicas": MAX_INT32} for n in names]
    requirements = spec.get("replicaRequirements")
    out = []
    for name, cluster in zip(names, clusters, strict=True):
        n = min(MAX_INT32, max_available_replicas(cluster, requirements))
        # Unbounded means best-effort without an estimator: count the binding's replicas, not 2^31.
        out.append({"name": name, "replicas": replicas if n == MAX_INT32 else n})
    return out
