"""Reading Karmada's placement and Cluster objects (plain dicts) the way karmada-scheduler reads them.

The scheduler works on the objects as the API server stores them, which may not carry
the defaults Karmada's CRDs and webhooks would add (``replicaSchedulingType`` is
``Divided`` when ``replicaScheduling`` is present, ``replicaDivisionPreference`` is
``Weighted``, a spread constraint spreads by ``cluster`` with ``minGroups`` 1). The
helpers here apply those defaults when reading, so a placement written by hand behaves
as the same placement admitted by Karmada.

Cluster matching follows ``util.ClusterMatches``: ``exclude`` first, then the label
selector, the field selector (``provider``, ``region`` and ``zone``, where ``zone``
matches against ``spec.zones``), then ``clusterNames``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

from atoll.api.meta import parse_quantity
from atoll.api.selectors import LabelSelector

Obj = dict[str, Any]

DUPLICATED = "Duplicated"
DIVIDED = "Divided"
AGGREGATED = "Aggregated"
WEIGHTED = "Weighted"

# The strategies the assignment step dispatches on (Karmada's core/assignment.go).
DUPLICATED_STRATEGY = "Duplicated"
AGGREGATED_STRATEGY = "Aggregated"
STATIC_WEIGHT_STRATEGY = "StaticWeight"
DYNAMIC_WEIGHT_STRATEGY = "DynamicWeight"

SPREAD_BY_CLUSTER = "cluster"
SPREAD_BY_REGION = "region"
SPREAD_BY_ZONE = "zone"
SPREAD_BY_PROVIDER = "provider"

PROVIDER_FIELD = "provider"
REGION_FIELD = "region"
ZONE_FIELD = "zone"

MAX_INT32 = 2**31 - 1


def cluster_name(cluster: Mapping[str, Any]) -> str:
    return str((cluster.get("metadata") or {}).get("name", ""))


def cluster_spec(cluster: Mapping[str, Any]) -> Obj:
    spec: Obj = cluster.get("spec") or {}
    return spec


def cluster_zones(cluster: Mapping[str, Any]) -> list[str]:
    """``spec.zones``; the deprecated ``spec.zone`` counts as a one-zone list when ``zones`` is unset."""
    spec = cluster_spec(cluster)
    zones = spec.get("zones")
    if zones:
        return [str(z) for z in zones]
    zone = spec.get("zone")
    return [str(zone)] if zone else []


# -- placement ----------------------------------------------------------------------------

def replica_scheduling(placement: Mapping[str, Any]) -> Obj | None:
    strategy: Obj | None = placement.get("replicaScheduling")
    return strategy


def replica_scheduling_type(placement: Mapping[str, Any]) -> str:
    """``Placement.ReplicaSchedulingType()``: no strategy is Duplicated; a strategy defaults to Divided."""
    strategy = replica_scheduling(placement)
    if strategy is None:
        return DUPLICATED
    return str(strategy.get("replicaSchedulingType") or DIVIDED)


def division_preference(placement: Mapping[str, Any]) -> str:
    strategy = replica_scheduling(placement) or {}
    return str(strategy.get("replicaDivisionPreference") or WEIGHTED)


def weight_preference(placement: Mapping[str, Any]) -> Obj | None:
    strategy = replica_scheduling(placement) or {}
    preference: Obj | None = strategy.get("weightPreference")
    return preference


def strategy_type(placement: Mapping[str, Any]) -> str:
    """Which assignment function applies (``newAssignState``)."""
    if replica_scheduling_type(placement) == DUPLICATED:
        return DUPLICATED_STRATEGY
    if division_preference(placement) == AGGREGATED:
        return AGGREGATED_STRATEGY
    preference = weight_preference(placement)
    if preference is not None and preference.get("dynamicWeight"):
        return DYNAMIC_WEIGHT_STRATEGY
    return STATIC_WEIGHT_STRATEGY


def spread_constraints(placement: Mapping[str, Any]) -> list[Obj]:
    """The spread constraints with the webhook's defaults (``spreadByField: cluster``, ``minGroups: 1``)."""
    out = []
    for raw in placement.get("spreadConstraints") or []:
        sc = dict(raw)
        if not sc.get("spreadByLabel") and not sc.get("spreadByField"):
            sc["spreadByField"] = SPREAD_BY_CLUSTER
        if not sc.get("minGroups"):
            sc["minGroups"] = 1
        sc["maxGroups"] = int(sc.get("maxGroups") or 0)
        sc["minGroups"] = int(sc["minGroups"])
        out.append(sc)
    return out


def cluster_affinities(placement: Mapping[str, Any]) -> list[Obj] | None:
    terms: list[Obj] | None = placement.get("clusterAffinities")
    return terms


def affinity_index(terms: list[Obj], observed: str) -> int:
    """``getAffinityIndex``: the term the binding is scheduled with, the first when unknown."""
    if not observed:
        return 0
    for i, term in enumerate(terms):
        if term.get("affinityName") == observed:
            return i
    return 0


def observed_term(placement: Mapping[str, Any], status: Mapping[str, Any]) -> Obj | None:
    """The ``clusterAffinities`` term named by ``status.schedulerObservingAffinityName`` (None without one)."""
    if placement.get("clusterAffinity") is not None:
        return None
    observed = status.get("schedulerObservingAffinityName") or ""
    for term in placement.get("clusterAffinities") or []:
        if (term.get("affinityName") or "") == observed:
            return dict(term)
    return None


def overflow_enabled(placement: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """``enableOverflow``: the term in use has ``overflowAffinities``."""
    if placement.get("clusterAffinity") is not None or placement.get("clusterAffinities") is None:
        return False
    if not status.get("schedulerObservingAffinityName"):
        return False
    term = observed_term(placement, status)
    return term is not None and term.get("overflowAffinities") is not None


def overflow_order(cluster: Mapping[str, Any], placement: Mapping[str, Any], status: Mapping[str, Any]) -> int:
    """``getClusterOverflowOrder``: 0 for the term's own clusters, ``i+1`` for its ``i``-th overflow group."""
    if placement.get("clusterAffinity") is not None or not placement.get("clusterAffinities"):
        return 0
    term = observed_term(placement, status)
    if term is not None:
        if cluster_matches(cluster, term):
            return 0
        for i, overflow in enumerate(term.get("overflowAffinities") or []):
            if cluster_matches(cluster, overflow):
                return i + 1
    return 1000


# -- binding spec ---------------------------------------------------------------------------

def target_clusters(spec: Mapping[str, Any]) -> list[Obj]:
    return [{"name": str(c.get("name", "")), "replicas": int(c.get("replicas") or 0)}
            for c in spec.get("clusters") or []]


def target_contains(spec: Mapping[str, Any], name: str) -> bool:
    return any(c.get("name") == name for c in spec.get("clusters") or [])


def assigned_replicas_for(spec: Mapping[str, Any], name: str) -> int:
    for c in spec.get("clusters") or []:
        if c.get("name") == name:
            return int(c.get("replicas") or 0)
    return 0


def in_graceful_eviction(spec: Mapping[str, Any], name: str) -> bool:
    return any(t.get("fromCluster") == name for t in spec.get("gracefulEvictionTasks") or [])


def is_workload(spec: Mapping[str, Any]) -> bool:
    """``ResourceBindingSpec.IsWorkload``: replicas, per-replica requirements or components."""
    return (int(spec.get("replicas") or 0) > 0 or spec.get("replicaRequirements") is not None
            or len(spec.get("components") or []) >= 1)


def sum_replicas(clusters: Iterable[Mapping[str, Any]]) -> int:
    return sum(int(c.get("replicas") or 0) for c in clusters)


# -- cluster matching -------------------------------------------------------------------------

def _requirement_matches(expr: Mapping[str, Any], fields: Mapping[str, str]) -> bool:
    """One ``NodeSelectorRequirement`` against the cluster's fields (kube's node selector semantics)."""
    key, op = str(expr.get("key", "")), str(expr.get("operator", ""))
    values = [str(v) for v in expr.get("values") or []]
    present = key in fields
    value = fields.get(key, "")
    if op == "In":
        return present and value in values
    if op == "NotIn":
        return not present or value not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        try:
            have, want = int(value), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _zones_match(expr: Mapping[str, Any], zones: list[str]) -> bool:
    """``matchZones``: ``In`` wants any overlap, ``NotIn`` none, ``Exists``/``DoesNotExist`` (non-)empty."""
    op = expr.get("operator")
    values = [str(v) for v in expr.get("values") or []]
    if op == "In":
        return any(z in values for z in zones)
    if op == "NotIn":
        return not any(z in values for z in zones)
    if op == "Exists":
        return bool(zones)
    if op == "DoesNotExist":
        return not zones
    return False


def cluster_matches(cluster: Mapping[str, Any], affinity: Mapping[str, Any] | None) -> bool:
    """``util.ClusterMatches``: every part of the affinity that is set must match."""
    if affinity is None:
        return True
    name = cluster_name(cluster)
    if name in (affinity.get("exclude") or []):
        return False
    selector = affinity.get("labelSelector")
    if selector is not None:
        try:
            parsed = LabelSelector.from_dict(selector)
        except Exception:  # an invalid selector (BadRequest) matches nothing, as Karmada's error path
            return False
        if not parsed.matches((cluster.get("metadata") or {}).get("labels") or {}):
            return False
    field_selector = affinity.get("fieldSelector")
    if field_selector is not None:
        spec = cluster_spec(cluster)
        fields = {k: str(spec[k]) for k in (PROVIDER_FIELD, REGION_FIELD) if spec.get(k)}
        for expr in field_selector.get("matchExpressions") or []:
            if expr.get("key") == ZONE_FIELD:
                if not _zones_match(expr, cluster_zones(cluster)):
                    return False
            elif not _requirement_matches(expr, fields):
                return False
    names = affinity.get("clusterNames") or []
    return not names or name in names


# -- taints -----------------------------------------------------------------------------------

def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """``Toleration.ToleratesTaint`` (without the comparison operators, as Karmada calls it)."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if op == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def untolerated_taint(taints: Iterable[Mapping[str, Any]], tolerations: list[Obj],
                      effects: tuple[str, ...] = ("NoSchedule", "NoExecute")) -> Mapping[str, Any] | None:
    """The first taint with one of ``effects`` that no toleration tolerates (``FindMatchingUntoleratedTaint``)."""
    for taint in taints:
        if taint.get("effect") not in effects:
            continue
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


def taint_string(taint: Mapping[str, Any]) -> str:
    """``Taint.ToString``: ``key=value:effect``, the value part only when there is one."""
    key, value, effect = taint.get("key") or "", taint.get("value") or "", taint.get("effect") or ""
    if not value:
        return f"{key}:{effect}"
    return f"{key}={value}:{effect}"


# -- quantities -------------------------------------------------------------------------------

def quantity(value: Any) -> Fraction:
    try:
        return parse_quantity(value)
    except (ValueError, TypeError):
        return Fraction(0)


def value_of(q: Fraction) -> int:
    """``Quantity.Value()``: rounded up to a whole unit."""
    return math.ceil(q)


def milli_value_of(q: Fraction) -> int:
    """``Quantity.MilliValue()``: rounded up to a whole thousandth."""
    return math.ceil(q * 1000)
