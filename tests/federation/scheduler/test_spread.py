"""Spread constraints: group scores, group selection, cluster selection (table-driven).

Expected results come from Karmada's pkg/scheduler/core/spreadconstraint tests
(select_groups_test.go ``TestSelectGroups``, select_clusters_test.go ``TestSelectBestClusters``,
select_clusters_by_region_test.go) and the worked examples in group_clusters.go's comments.
"""

from __future__ import annotations

from typing import Any

import pytest

from atoll.federation.scheduler.framework import ClusterScore, SchedulingError
from atoll.federation.scheduler.spread import (
    ClusterDetail,
    Group,
    GroupedClusters,
    GroupInfo,
    group_clusters,
    group_score,
    select_best_clusters,
    select_groups,
)

Obj = dict[str, Any]


def topo(name: str, provider: str, region: str, zone: str) -> Obj:
    return {"metadata": {"name": name}, "spec": {"provider": provider, "region": region, "zones": [zone]}}


def cd(name: str, score: int, available: int, region: str = "R1", zone: str = "Z1", provider: str = "P1"
       ) -> ClusterDetail:
    return ClusterDetail(name, score=score, available_replicas=available, allocatable_replicas=available,
                         cluster=topo(name, provider, region, zone))


@pytest.mark.parametrize(("groups", "lo", "hi", "target", "want"), [
    ([], 2, 3, 1, []),                                                                    # empty groups
    ([("R1", 1, 80)], 2, 3, 1, []),                                                       # no enough groups
    ([("R1", 1, 80), ("R2", 2, 30)], 2, 3, 4, []),                                        # no enough value
    ([("R1", 1, 80)], 1, 3, 1, ["R1"]),                                                   # select one group
    ([("R1", 1, 80), ("R3", 1, 80), ("R2", 1, 60), ("R5", 2, 60), ("R4", 5, 50), ("R6", 3, 50)], 1, 3, 10,
     ["R5", "R4", "R6"]),                                                                 # prioritize one path
    ([("R1", 1, 80), ("R2", 4, 40), ("R3", 1, 30), ("R4", 3, 30), ("R5", 3, 20), ("R6", 5, 10)], 2, 6, 5,
     ["R1", "R2"]),                                                                       # less total number
    ([("R1", 1, 60), ("R2", 2, 50), ("R3", 3, 40), ("R4", 4, 30)], 1, 2, 5, ["R1", "R4"]),  # chosen earlier
    ([("R4", 1, 60), ("R3", 3, 50), ("R1", 3, 40), ("R2", 4, 30)], 1, 2, 5, ["R3", "R1"]),  # greater value
])
def test_select_groups(groups: list[tuple[str, int, int]], lo: int, hi: int, target: int, want: list[str]) -> None:
    infos = [GroupInfo(n, v, w) for n, v, w in groups]
    assert [g.name for g in select_groups(infos, lo, hi, target)] == want


CLUSTERS = [cd("member4", 60, 50, "R2", "Z2", "P2"), cd("member2", 40, 60, "R1", "Z2", "P1"),
            cd("member3", 30, 80, "R1", "Z1", "P2"), cd("member1", 20, 40, "R1", "Z1", "P1")]
BY_CLUSTER_2 = [{"spreadByField": "cluster", "maxGroups": 2, "minGroups": 1}]


@pytest.mark.parametrize(("placement", "need", "want"), [
    # "select clusters by cluster score"
    ({"spreadConstraints": BY_CLUSTER_2}, 100, ["member4", "member2"]),
    # "... ignore available resources when scheduling strategy is duplicated"
    ({"spreadConstraints": BY_CLUSTER_2, "replicaScheduling": {"replicaSchedulingType": "Duplicated"}}, 120,
     ["member4", "member2"]),
    # "... ignore available resources when scheduling strategy is static weight": every cluster
    ({"spreadConstraints": BY_CLUSTER_2, "replicaScheduling": {
        "replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
        "weightPreference": {"staticWeightList": [{"targetCluster": {"clusterNames": ["member1"]}, "weight": 2}]}}},
     120, ["member4", "member2", "member3", "member1"]),
    # "... and satisfy available resources": member2 swapped for the roomier member3
    ({"spreadConstraints": BY_CLUSTER_2, "replicaScheduling": {
        "replicaSchedulingType": "Divided", "replicaDivisionPreference": "Aggregated"}}, 120, ["member4", "member3"]),
])
def test_select_best_clusters_by_cluster(placement: Obj, need: int, want: list[str]) -> None:
    grouped = GroupedClusters(list(CLUSTERS))
    assert [c.name for c in select_best_clusters(placement, grouped, need)] == want


@pytest.mark.parametrize(("placement", "need", "message"), [
    # "select clusters by cluster score and insufficient resources"
    ({"spreadConstraints": BY_CLUSTER_2, "replicaScheduling": {
        "replicaSchedulingType": "Divided", "replicaDivisionPreference": "Aggregated"}}, 200,
     "no enough resource when selecting 2 clusters"),
    # "... exceeded the number of available clusters."
    ({"spreadConstraints": [{"spreadByField": "cluster", "maxGroups": 7, "minGroups": 7}]}, 30,
     "the number of feasible clusters is less than spreadConstraint.MinGroups"),
])
def test_select_best_clusters_errors(placement: Obj, need: int, message: str) -> None:
    with pytest.raises(SchedulingError, match=message):
        select_best_clusters(placement, GroupedClusters(list(CLUSTERS)), need)


def regions(**groups: tuple[int, list[ClusterDetail]]) -> GroupedClusters:
    grouped = GroupedClusters([c for _, cs in groups.values() for c in cs])
    grouped.regions = {name: Group(name, score, sum(c.available_replicas for c in cs), cs)
                       for name, (score, cs) in groups.items()}
    return grouped


R1_R2 = {"R1": (100, [cd("member1", 100, 40), cd("member2", 80, 40)]),
         "R2": (80, [cd("member3", 80, 40, "R2"), cd("member4", 80, 40, "R2"), cd("member5", 60, 40, "R2")])}
DIVIDED = {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Aggregated"}


@pytest.mark.parametrize(("region", "cluster", "want"), [
    # "select cluster from the region with the higher score"
    ((1, 1), (2, 2), ["member1", "member2"]),
    # "select cluster from the region with enough clusters"
    ((1, 1), (3, 3), ["member3", "member4", "member5"]),
    # two regions: the best cluster of each, then the roomiest of the rest up to the cluster maxGroups
    ((2, 2), (3, 2), ["member1", "member3", "member2"]),
])
def test_select_best_clusters_by_region(region: tuple[int, int], cluster: tuple[int, int], want: list[str]) -> None:
    placement = {"replicaScheduling": DIVIDED, "spreadConstraints": [
        {"spreadByField": "region", "maxGroups": region[0], "minGroups": region[1]},
        {"spreadByField": "cluster", "maxGroups": cluster[0], "minGroups": cluster[1]}]}
    assert [c.name for c in select_best_clusters(placement, regions(**R1_R2), 10)] == want


@pytest.mark.parametrize(("region", "cluster", "message"), [
    ((3, 3), (3, 3), "the number of feasible region is less than spreadConstraint.MinGroups"),   # "no enough region"
    ((1, 1), (6, 6), "the number of clusters is less than the cluster spreadConstraint.MinGroups"),  # "no enough clusters"
])
def test_select_best_clusters_by_region_errors(region: tuple[int, int], cluster: tuple[int, int],
                                               message: str) -> None:
    placement = {"replicaScheduling": DIVIDED, "spreadConstraints": [
        {"spreadByField": "region", "maxGroups": region[0], "minGroups": region[1]},
        {"spreadByField": "cluster", "maxGroups": cluster[0], "minGroups": cluster[1]}]}
    with pytest.raises(SchedulingError, match=message):
        select_best_clusters(placement, regions(**R1_R2), 10)


def spec_for(replicas: int, strategy: Obj | None, constraints: list[Obj]) -> Obj:
    placement: Obj = {"spreadConstraints": constraints}
    if strategy is not None:
        placement["replicaScheduling"] = strategy
    return {"replicas": replicas, "placement": placement}


@pytest.mark.parametrize(("replicas", "strategy", "min_groups", "clusters", "want"), [
    # group_clusters.go, Duplicated: group 1 (100,100,100,100,100 score; 60,70,40,30,10 room) -> 2100,
    # group 2 (0 score; 60 room each) -> 4000
    (50, None, 1, [(100, 60), (100, 70), (100, 40), (100, 30), (100, 10)], 2100),
    (50, None, 1, [(0, 60), (0, 60), (0, 60), (0, 60)], 4000),
    # Divided, 100 replicas over minGroups 2 (target 50): not enough room -> 45 * 1000 + 100
    (100, DIVIDED, 2, [(100, 10), (100, 10), (100, 10), (100, 10), (100, 5)], 45100),
    (100, DIVIDED, 2, [(0, 40), (0, 30), (0, 10), (0, 10)], 50000),
    (100, DIVIDED, 2, [(100, 40), (100, 40), (100, 10), (100, 10), (100, 5)], 50100),
    (100, DIVIDED, 2, [(0, 100), (0, 100), (0, 10), (0, 10)], 50000),
])
def test_group_score(replicas: int, strategy: Obj | None, min_groups: int, clusters: list[tuple[int, int]],
                     want: int) -> None:
    spec = spec_for(replicas, strategy, [{"spreadByField": "region", "minGroups": min_groups, "maxGroups": 3},
                                         {"spreadByField": "cluster", "minGroups": 1, "maxGroups": 5}])
    details = [ClusterDetail(f"m{i}", score=s, available_replicas=a) for i, (s, a) in enumerate(clusters)]
    assert group_score(details, spec, min_groups) == want


def test_group_clusters_orders_by_score_then_room_and_groups_regions() -> None:
    clusters = [topo("a", "P1", "R1", "Z1"), topo("b", "P1", "R2", "Z2"), topo("c", "P2", "R1", "Z1")]
    scores = [ClusterScore(clusters[0], 0), ClusterScore(clusters[1], 100), ClusterScore(clusters[2], 0)]
    room = {"a": 5, "b": 1, "c": 9}
    spec = spec_for(4, DIVIDED, [{"spreadByField": "region", "minGroups": 1, "maxGroups": 2}])
    spec["clusters"] = [{"name": "a", "replicas": 2}]

    def available(objs: list[Obj], _spec: Any) -> list[Obj]:
        return [{"name": o["metadata"]["name"], "replicas": room[o["metadata"]["name"]]} for o in objs]

    grouped = group_clusters(scores, spec, available)
    assert [(c.name, c.available_replicas, c.allocatable_replicas) for c in grouped.clusters] == \
        [("b", 1, 1), ("c", 9, 9), ("a", 7, 5)]
    assert {n: [c.name for c in g.clusters] for n, g in grouped.regions.items()} == {"R1": ["c", "a"], "R2": ["b"]}
    assert not grouped.zones and not grouped.providers


def test_zone_spreading_is_an_atoll_extension_counting_each_cluster_once() -> None:
    shared = ClusterDetail("ab", score=100, available_replicas=10,
                           cluster={"metadata": {"name": "ab"}, "spec": {"zones": ["Z1", "Z2"]}})
    other = cd("c", 50, 10, zone="Z2")
    grouped = GroupedClusters([shared, other])
    grouped.zones = {"Z1": Group("Z1", 100, 10, [shared]), "Z2": Group("Z2", 90, 20, [shared, other])}
    placement = {"replicaScheduling": DIVIDED, "spreadConstraints": [
        {"spreadByField": "zone", "minGroups": 2, "maxGroups": 2}]}
    assert [c.name for c in select_best_clusters(placement, grouped, 5)] == ["ab", "c"]
