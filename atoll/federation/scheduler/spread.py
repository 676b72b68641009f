"""Choosing which feasible clusters take part: spread constraints over clusters and topology groups.

Karmada's ``core/spreadconstraint``. The scored clusters are ordered (score descending,
then available replicas descending, then name) and, when the placement spreads by a
topology field, grouped by region (and zone, provider); each group gets a score that
puts "can this group hold its share of the replicas" first (in units of 1000) and the
clusters' average score second. Then:

- spread by region: choose the best combination of regions (a depth-first search over
  combinations within ``[minGroups, maxGroups]`` that together hold at least the
  cluster constraint's ``minGroups`` clusters, preferring higher group scores and, among
  supersets, the shorter prefix), take each chosen region's best cluster, and fill up to
  the cluster constraint's ``maxGroups`` with the remaining clusters with the most room;
- spread by cluster only: the ``maxGroups`` best clusters, swapping the lowest-scored for
  roomier ones until the selection holds the replicas (Divided) — Duplicated ignores room.

Karmada refuses a placement that spreads by zone or provider without region or cluster
("just support cluster and region spread constraint"); Atoll selects zones and
providers with the region algorithm instead (a cluster in several zones counts once).
Static weights ignore spread constraints altogether, as in Karmada.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from atoll.federation.scheduler.framework import ClusterScore, SchedulingError
from atoll.federation.scheduler.placement import (
    DIVIDED,
    DUPLICATED,
    SPREAD_BY_CLUSTER,
    SPREAD_BY_PROVIDER,
    SPREAD_BY_REGION,
    SPREAD_BY_ZONE,
    WEIGHTED,
    assigned_replicas_for,
    cluster_spec,
    cluster_zones,
    division_preference,
    overflow_order,
    replica_scheduling,
    replica_scheduling_type,
    spread_constraints,
)

Obj = dict[str, Any]
INVALID_REPLICAS = -1
WEIGHT_UNIT = 1000

AvailableFn = Callable[[list[Obj], Mapping[str, Any]], list[Obj]]
"""``(clusters, binding spec) -> [{name, replicas}]``: how many more replicas each cluster can take."""


@dataclass(frozen=True, slots=True)
class ClusterDetail:
    """A feasible cluster as selection and assignment see it (Karmada's ``ClusterDetailInfo``)."""

    name: str
    score: int = 0
    available_replicas: int = 0
    """What the cluster could hold of this binding: its free room plus what it already has."""
    allocatable_replicas: int = 0
    """Free room alone."""
    cluster: Obj = field(default_factory=dict)
    overflow_order: int = 0


@dataclass
class Group:
    name: str
    score: int = 0
    available_replicas: int = 0
    clusters: list[ClusterDetail] = field(default_factory=list)


@dataclass
class GroupedClusters:
    clusters: list[ClusterDetail]
    regions: dict[str, Group] = field(default_factory=dict)
    zones: dict[str, Group] = field(default_factory=dict)
    providers: dict[str, Group] = field(default_factory=dict)


def sort_clusters(infos: list[ClusterDetail], *, by_available: bool = True) -> list[ClusterDetail]:
    """``sortClusters``: overflow order, score descending, (available descending), name."""
    if by_available:
        return sorted(infos, key=lambda c: (c.overflow_order, -c.score, -c.available_replicas, c.name))
    return sorted(infos, key=lambda c: (c.overflow_order, -c.score, c.name))


def should_ignore_spread_constraint(placement: Mapping[str, Any]) -> bool:
    """Static weights decide alone: spread constraints are ignored for them."""
    strategy = replica_scheduling(placement)
    if strategy is None or replica_scheduling_type(placement) != DIVIDED or division_preference(placement) != WEIGHTED:
        return False
    preference = strategy.get("weightPreference")
    return preference is None or (bool(preference.get("staticWeightList")) and not preference.get("dynamicWeight"))


def should_ignore_available_resource(placement: Mapping[str, Any]) -> bool:
    return replica_scheduling(placement) is None or replica_scheduling_type(placement) == DUPLICATED


def is_topology_ignored(placement: Mapping[str, Any]) -> bool:
    constraints = spread_constraints(placement)
    if not constraints or (len(constraints) == 1 and constraints[0]["spreadByField"] == SPREAD_BY_CLUSTER):
        return True
    return should_ignore_spread_constraint(placement)


def _duplicate_group_score(clusters: list[ClusterDetail], replicas: int) -> int:
    valid = [c for c in clusters if c.available_replicas >= replicas]
    if not valid:
        return 0
    return len(valid) * WEIGHT_UNIT + sum(c.score for c in valid) // len(valid)


def group_score(clusters: list[ClusterDetail], spec: Mapping[str, Any], min_groups: int) -> int:
    """``calcGroupScore``: room for the group's share first, the clusters' mean score second."""
    placement = spec.get("placement")
    replicas = int(spec.get("replicas") or 0)
    if placement is None or replica_scheduling_type(placement) == DUPLICATED:
        return _duplicate_group_score(clusters, replicas)
    target = math.ceil(replicas / min_groups) if min_groups > 0 else replicas
    cluster_min_groups = 0
    for sc in spread_constraints(placement):
        if sc["spreadByField"] == SPREAD_BY_CLUSTER:
            cluster_min_groups = sc["minGroups"]
    cluster_min_groups = max(cluster_min_groups, min_groups)
    total_available = total_score = valid = 0
    for c in clusters:
        total_available += c.available_replicas
        total_score += c.score
        valid += 1
        if valid >= cluster_min_groups and total_available >= target:
            break
    if total_available < target:
        return total_available * WEIGHT_UNIT + total_score // len(clusters)
    return target * WEIGHT_UNIT + total_score // valid


def group_clusters(scores: list[ClusterScore], spec: Mapping[str, Any], available: AvailableFn,
                   status: Mapping[str, Any] | None = None) -> GroupedClusters:
    """``GroupClustersWithScore``: cluster details, sorted, and the topology groups the placement spreads by."""
    placement = spec.get("placement") or {}
    status = status or {}
    clusters = [s.cluster for s in scores]
    estimates = available(clusters, spec)
    infos = []
    for s, estimate in zip(scores, estimates, strict=True):
        free = int(estimate["replicas"])
        infos.append(ClusterDetail(name=s.name, score=s.score, cluster=s.cluster, allocatable_replicas=free,
                                   available_replicas=free + assigned_replicas_for(spec, s.name),
                                   overflow_order=overflow_order(s.cluster, placement, status)))
    grouped = GroupedClusters(sort_clusters(infos))
    if is_topology_ignored(placement):
        return grouped
    constraints = spread_constraints(placement)
    by = {sc["spreadByField"]: sc for sc in constraints}

    def keys_of(info: ClusterDetail, field_name: str) -> list[str]:
        spec_ = cluster_spec(info.cluster)
        if field_name == SPREAD_BY_ZONE:
            return cluster_zones(info.cluster)
        value = spec_.get(field_name)
        return [str(value)] if value else []

    for field_name, groups in ((SPREAD_BY_ZONE, grouped.zones), (SPREAD_BY_REGION, grouped.regions),
                               (SPREAD_BY_PROVIDER, grouped.providers)):
        if field_name not in by:
            continue
        for info in grouped.clusters:
            for key in keys_of(info, field_name):
                group = groups.setdefault(key, Group(key))
                group.clusters.append(info)
                group.available_replicas += info.available_replicas
        for group in groups.values():
            group.score = group_score(group.clusters, spec, by[field_name]["minGroups"])
    return grouped


# -- choosing groups ---------------------------------------------------------------------------

@dataclass
class GroupInfo:
    name: str
    value: int
    weight: int


@dataclass
class _Path:
    id: int = 0
    groups: list[GroupInfo] = field(default_factory=list)
    weight: int = 0
    value: int = 0

    def snapshot(self, counter: list[int]) -> _Path:
        counter[0] += 1
        groups = sorted(self.groups, key=lambda g: (-g.weight, g.name))
        return _Path(counter[0], groups, sum(g.weight for g in groups), sum(g.value for g in groups))

    def has_prefix(self, sub: _Path) -> bool:
        """``matchSubPath``: ``sub`` is shorter and its groups start this path."""
        if len(sub.groups) >= len(self.groups):
            return False
        return all(self.groups[i].name == g.name for i, g in enumerate(sub.groups))


def find_feasible_paths(groups: list[GroupInfo], min_groups: int, max_groups: int, target: int) -> list[_Path]:
    """Every combination of ``min_groups``..``max_groups`` groups whose values add up to ``target`` (DFS)."""
    ordered = sorted(groups, key=lambda g: (g.value, -g.weight, g.name))
    paths: list[_Path] = []
    path: list[GroupInfo] = []
    counter = [0]

    def dfs(total: int, begin: int) -> None:
        if total >= target and min_groups <= len(path) <= max_groups:
            paths.append(_Path(groups=list(path)).snapshot(counter))
            return
        if len(path) >= max_groups:
            return
        for i in range(begin, len(ordered)):
            path.append(ordered[i])
            dfs(total + ordered[i].value, i + 1)
            if len(ordered) == min_groups:  # every group is needed: no other combination to try
                break
            path.pop()

    dfs(0, 0)
    return paths


def prioritize_paths(paths: list[_Path]) -> _Path:
    """Highest weight, then value, then first found; a shorter prefix of the winner wins over it."""
    if len(paths) == 1:
        return paths[0]
    ordered = sorted(paths, key=lambda p: (-p.weight, -p.value, p.id))
    best = ordered[0]
    for candidate in ordered[1:]:
        if best.has_prefix(candidate):
            best = candidate
    return best


def select_groups(groups: list[GroupInfo], min_groups: int, max_groups: int, target: int) -> list[GroupInfo]:
    if not groups:
        return []
    paths = find_feasible_paths(groups, min_groups, max_groups, target)
    if not paths:
        return []
    return prioritize_paths(paths).groups


def _select_by_groups(kind: str, groups: dict[str, Group], group_constraint: Obj,
                      cluster_constraint: Obj) -> list[ClusterDetail]:
    if len(groups) < group_constraint["minGroups"]:
        raise SchedulingError(f"the number of feasible {kind} is less than spreadConstraint.MinGroups")
    infos = [GroupInfo(g.name, len(g.clusters), g.score) for g in groups.values()]
    chosen = select_groups(infos, group_constraint["minGroups"], group_constraint["maxGroups"],
                           cluster_constraint.get("minGroups", 0))
    if not chosen:
        raise SchedulingError("the number of clusters is less than the cluster spreadConstraint.MinGroups")
    selected: list[ClusterDetail] = []
    candidates: list[ClusterDetail] = []
    seen: set[str] = set()
    for info in chosen:
        members = [c for c in groups[info.name].clusters if c.name not in seen]
        if not members:
            continue
        selected.append(members[0])
        seen.add(members[0].name)
        candidates += members[1:]
    unique: dict[str, ClusterDetail] = {}
    for c in candidates:
        if c.name not in seen:
            unique.setdefault(c.name, c)
    rest = list(unique.values())
    need = min(len(rest) + len(selected), cluster_constraint.get("maxGroups", 0))
    more = need - len(selected)
    if more > 0:
        selected += sort_clusters(rest)[:more]
    return selected


def _max_available_index(candidates: list[ClusterDetail], above: int) -> int:
    best, index = above, -1
    for i, c in enumerate(candidates):
        if best < c.available_replicas:
            best, index = c.available_replicas, i
    return index


def select_clusters_by_available_resource(candidates: list[ClusterDetail], count: int,
                                          need_replicas: int) -> list[ClusterDetail]:
    """The ``count`` best clusters; swap the lowest-scored for roomier ones until they hold ``need_replicas``."""
    chosen, rest = list(candidates[:count]), list(candidates[count:])

    def enough() -> bool:
        return sum(c.available_replicas for c in chosen) >= need_replicas

    i = len(chosen) - 1
    while not enough() and i >= 0:
        j = _max_available_index(rest, chosen[i].available_replicas)
        if j >= 0:
            chosen[i], rest[j] = rest[j], chosen[i]
        i -= 1
    return chosen if enough() else []


def _select_by_cluster(constraint: Obj, grouped: GroupedClusters, need_replicas: int) -> list[ClusterDetail]:
    total = len(grouped.clusters)
    if total < constraint["minGroups"]:
        raise SchedulingError("the number of feasible clusters is less than spreadConstraint.MinGroups")
    count = min(total, constraint["maxGroups"])
    if need_replicas == INVALID_REPLICAS:
        return grouped.clusters[:count]
    selected = select_clusters_by_available_resource(grouped.clusters, count, need_replicas)
    if not selected:
        raise SchedulingError(f"no enough resource when selecting {count} clusters")
    return selected


def select_best_clusters(placement: Mapping[str, Any], grouped: GroupedClusters,
                         need_replicas: int) -> list[ClusterDetail]:
    """``SelectBestClusters``: every feasible cluster, unless spread constraints choose among them."""
    constraints = spread_constraints(placement)
    if not constraints or should_ignore_spread_constraint(placement):
        return list(grouped.clusters)
    if should_ignore_available_resource(placement):
        need_replicas = INVALID_REPLICAS
    by = {sc["spreadByField"]: sc for sc in constraints}
    cluster_constraint = by.get(SPREAD_BY_CLUSTER, {"minGroups": 0, "maxGroups": 0})
    if SPREAD_BY_REGION in by:
        return _select_by_groups("region", grouped.regions, by[SPREAD_BY_REGION], cluster_constraint)
    if SPREAD_BY_CLUSTER in by:
        return _select_by_cluster(by[SPREAD_BY_CLUSTER], grouped, need_replicas)
    if SPREAD_BY_ZONE in by:
        return _select_by_groups("zone", grouped.zones, by[SPREAD_BY_ZONE], cluster_constraint)
    if SPREAD_BY_PROVIDER in by:
        return _select_by_groups("provider", grouped.providers, by[SPREAD_BY_PROVIDER], cluster_constraint)
    raise SchedulingError("just support cluster and region spread constraint")

