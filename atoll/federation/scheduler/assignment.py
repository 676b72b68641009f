"""Dividing a binding's replicas among the selected clusters (Karmada's ``core/assignment.go``).

- **Duplicated**: every selected cluster runs all replicas.
- **Divided, static weights** (``staticWeightList``; no list weighs every cluster 1): the
  Webster method over the weights of the clusters each rule's ``targetCluster`` matches
  (a cluster matched by several rules takes the highest weight; clusters without weight
  get nothing). Recomputed from scratch each time: the weights alone decide.
- **Divided, dynamic weight** (``dynamicWeight: AvailableReplicas``) and **Aggregated**:
  steady by default — scaling down divides the new total in proportion to the current
  assignment (clusters no longer candidates drop out); scaling up keeps what is there
  and divides only the extra replicas in proportion to each cluster's free room
  (Aggregated fills as few clusters as possible, those already used first); the same
  total keeps the current assignment. ``spec.rescheduleTriggeredAt`` newer than
  ``status.lastScheduledTime`` asks for a fresh division of everything, the current
  replicas counted as room where they run.

Workloads without replicas and requirements (ConfigMaps, Services) go to every selected
cluster without a replica count. A ``clusterAffinities`` term with ``overflowAffinities``
fills its own clusters first and overflows group by group (each tier divided by the
strategy above), emptying the last groups first when scaling down.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from atoll.federation.scheduler.framework import SchedulingError, UnschedulableError, wrap
from atoll.federation.scheduler.placement import (
    AGGREGATED_STRATEGY,
    DUPLICATED_STRATEGY,
    DYNAMIC_WEIGHT_STRATEGY,
    STATIC_WEIGHT_STRATEGY,
    cluster_matches,
    overflow_enabled,
    strategy_type,
    sum_replicas,
    target_clusters,
    weight_preference,
)
from atoll.federation.scheduler.spread import ClusterDetail
from atoll.federation.scheduler.webster import WeightInfo, allocate_by_weight, spread_by_target_clusters

Obj = dict[str, Any]


def parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def reschedule_required(spec: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """``util.RescheduleRequired``: a trigger newer than the last successful schedule.

    Before the first success there is nothing to redo: the pending schedule is fresh anyway.
    """
    triggered = parse_time(spec.get("rescheduleTriggeredAt"))
    last = parse_time(status.get("lastScheduledTime"))
    if triggered is None or last is None:
        return False
    return triggered > last


def merge_target_clusters(old: list[Obj], new: list[Obj]) -> list[Obj]:
    """``util.MergeTargetClusters``: add ``old``'s replicas into ``new``; clusters only in ``old`` follow."""
    if not old:
        return new
    if not new:
        return old
    left = {c["name"]: int(c["replicas"]) for c in old}
    merged = []
    for c in new:
        replicas = int(c["replicas"])
        if c["name"] in left:
            replicas += left.pop(c["name"])
        merged.append({"name": c["name"], "replicas": replicas})
    merged += [{"name": c["name"], "replicas": left[c["name"]]} for c in old if c["name"] in left]
    return merged


def _by_replicas_desc(clusters: list[Obj]) -> list[Obj]:
    # Go's sort.Sort is an insertion sort (stable) up to 12 elements; a stable sort matches it.
    return sorted(clusters, key=lambda c: -int(c["replicas"]))


class _State:
    """The inputs of one assignment (Karmada's ``assignState``)."""

    def __init__(self, candidates: list[ClusterDetail], spec: Mapping[str, Any], status: Mapping[str, Any]) -> None:
        self.candidates = candidates
        self.spec = spec
        self.placement: Obj = spec.get("placement") or {}
        self.strategy = strategy_type(self.placement)
        self.fresh = reschedule_required(spec, status)
        self.uid = str((spec.get("resource") or {}).get("uid") or "")
        self.replicas = int(spec.get("replicas") or 0)
        names = {c.name for c in candidates}
        # Clusters no longer candidates are left out, so their replicas count as scale-up to place again.
        self.scheduled = [c for c in target_clusters(spec) if c["name"] in names]
        self.assigned = sum_replicas(self.scheduled)
        self.available: list[Obj] = []
        self.target = 0

    def allocatable(self) -> list[Obj]:
        return [{"name": c.name, "replicas": c.allocatable_replicas} for c in self.candidates]

    def resort_available(self) -> list[Obj]:
        """Clusters already holding replicas first, so Aggregated grows where it already runs."""
        prior = {c["name"] for c in self.scheduled if int(c["replicas"]) > 0}
        if not prior:
            return self.available
        return ([c for c in self.available if c["name"] in prior]
                + [c for c in self.available if c["name"] not in prior])

    def divide(self) -> list[Obj]:
        """``dynamicDivideReplicas``: ``target`` replicas in proportion to ``available``, merged onto ``scheduled``."""
        room = sum_replicas(self.available)
        if room < self.target:
            raise UnschedulableError(f"Clusters available replicas {room} are not enough to schedule.")
        if self.strategy == AGGREGATED_STRATEGY:
            self.available = self.resort_available()
            total = 0
            for i, c in enumerate(self.available):
                total += int(c["replicas"])
                if total >= self.target:
                    self.available = self.available[:i + 1]
                    break
        return merge_target_clusters(self.scheduled, spread_by_target_clusters(self.target, self.available,
                                                                               None, self.uid))


def _duplicated(state: _State) -> list[Obj]:
    return [{"name": c.name, "replicas": state.replicas} for c in state.candidates]


def static_weight_list(state: _State) -> list[WeightInfo]:
    """``getStaticWeightInfoList``: the highest matching rule's weight per candidate; all 1 when none weighs."""
    preference = weight_preference(state.placement)
    if preference is None:
        rules: list[Obj] = [{"targetCluster": {"clusterNames": [c.name]}, "weight": 1} for c in state.candidates]
    else:
        rules = list(preference.get("staticWeightList") or [])
    last = {c["name"]: int(c["replicas"]) for c in target_clusters(state.spec)}
    out = []
    for c in state.candidates:
        weight = 0
        for rule in rules:
            if cluster_matches(c.cluster or {"metadata": {"name": c.name}}, rule.get("targetCluster") or {}):
                weight = max(weight, int(rule.get("weight") or 0))
        if weight > 0:
            out.append(WeightInfo(c.name, weight, last.get(c.name, 0)))
    if sum(w.weight for w in out) == 0:
        out = [WeightInfo(c.name, 1) for c in state.candidates]
    return out


def _static_weight(state: _State) -> list[Obj]:
    return allocate_by_weight(state.replicas, static_weight_list(state), uid=state.uid)


def _fresh(state: _State) -> list[Obj]:
    state.target = state.replicas
    room = state.allocatable()
    current = {c["name"]: int(c["replicas"]) for c in state.scheduled}
    state.available = _by_replicas_desc([{"name": c["name"], "replicas": int(c["replicas"]) + current.get(c["name"], 0)}
                                         for c in room])
    state.scheduled = []
    return state.divide()


def _scale_down(state: _State) -> list[Obj]:
    state.target = state.replicas
    state.available = _by_replicas_desc([dict(c) for c in state.scheduled])
    state.scheduled = []
    return state.divide()


def _scale_up(state: _State) -> list[Obj]:
    state.target = state.replicas - state.assigned
    state.available = _by_replicas_desc(state.allocatable())
    return state.divide()


def _dynamic(state: _State) -> list[Obj]:
    try:
        if state.fresh:
            step = "failed to do fresh scale"
            return _fresh(state)
        if state.assigned > state.replicas:
            step = "failed to scale down"
            return _scale_down(state)
        if state.assigned < state.replicas:
            step = "failed to scale up"
            return _scale_up(state)
    except SchedulingError as exc:
        raise wrap(step, exc) from exc
    return state.scheduled


_ASSIGNERS = {
    DUPLICATED_STRATEGY: _duplicated,
    AGGREGATED_STRATEGY: _dynamic,
    STATIC_WEIGHT_STRATEGY: _static_weight,
    DYNAMIC_WEIGHT_STRATEGY: _dynamic,
}


def assign_replicas(clusters: list[ClusterDetail], spec: Mapping[str, Any], status: Mapping[str, Any]) -> list[Obj]:
    """``AssignReplicas``: ``[{name, replicas}]`` for the selected clusters, clusters given 0 left out."""
    if not clusters:
        raise SchedulingError("no clusters available to schedule")
    workload = int(spec.get("replicas") or 0) > 0 or spec.get("replicaRequirements") is not None
    if not (workload and len(spec.get("components") or []) <= 1):
        return [{"name": c.name, "replicas": 0} for c in clusters]
    if overflow_enabled(spec.get("placement") or {}, status):
        return _assign_overflowing(clusters, spec, status)
    return _assign_to(clusters, spec, status)


def _assign_to(clusters: list[ClusterDetail], spec: Mapping[str, Any], status: Mapping[str, Any]) -> list[Obj]:
    state = _State(clusters, spec, status)
    result = _ASSIGNERS[state.strategy](state)
    return [{"name": c["name"], "replicas": int(c["replicas"])} for c in result if int(c["replicas"]) > 0]


def _assign_overflowing(clusters: list[ClusterDetail], spec: Mapping[str, Any],
                        status: Mapping[str, Any]) -> list[Obj]:
    """Fill the term's own clusters first, then each overflow group in order, as much as each can hold.

    Scaling down empties the last groups first: each tier is assigned its share of the
    new total in order, and tiers after the total is reached get nothing.
    """
    tiers: dict[int, list[ClusterDetail]] = {}
    for c in clusters:
        tiers.setdefault(c.overflow_order, []).append(c)
    remaining = int(spec.get("replicas") or 0)
    out: list[Obj] = []
    for order in sorted(tiers):
        tier = tiers[order]
        share = min(remaining, sum(c.available_replicas for c in tier))
        out += _assign_to(tier, {**spec, "replicas": share}, status)
        remaining -= share
        if remaining <= 0:
            break
    if remaining > 0:
        raise UnschedulableError("Clusters available replicas are not enough to schedule.")
    return out
