"""Replica division, table-driven, with Karmada's own expected results.

Each case names the Karmada test it comes from (karmada-io/karmada, pkg/...):
``webster`` = util/helper/webstermethod_test.go, ``dispenser`` = util/helper/binding_test.go
(Test_dispenser_AllocateByWeight, TestDispenseReplicasByTargetClusters), ``division`` =
scheduler/core/division_algorithm_test.go, ``assignment`` = scheduler/core/assignment_test.go.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from atoll.federation.scheduler.assignment import assign_replicas, merge_target_clusters, reschedule_required
from atoll.federation.scheduler.framework import SchedulingError, UnschedulableError
from atoll.federation.scheduler.spread import ClusterDetail
from atoll.federation.scheduler.webster import (
    WeightInfo,
    allocate_by_weight,
    allocate_webster_seats,
    fnv32a,
    names_descending,
    spread_by_target_clusters,
    tie_breaker_by_uid,
)

Obj = dict[str, Any]
EVEN_UID = "4858ca61-3ff8-4095-8267-f3d059d8074c"  # dispenser: fnv32a is even -> names ascending
ODD_UID = "d43fdeeb-d750-4e2b-bee3-64eb94534f4c"  # dispenser: fnv32a is odd -> names descending

DYNAMIC = {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
           "weightPreference": {"dynamicWeight": "AvailableReplicas"}}
AGGREGATED = {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Aggregated"}


def tc(**replicas: int) -> list[Obj]:
    return [{"name": n, "replicas": r} for n, r in replicas.items()]


def as_map(clusters: list[Obj]) -> dict[str, int]:
    return {c["name"]: c["replicas"] for c in clusters}


def detail(name: str, allocatable: int = 0, labels: dict[str, str] | None = None) -> ClusterDetail:
    return ClusterDetail(name, allocatable_replicas=allocatable,
                         cluster={"metadata": {"name": name, "labels": labels or {}}})


def static(*rules: tuple[list[str], int]) -> Obj:
    return {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
            "weightPreference": {"staticWeightList": [{"targetCluster": {"clusterNames": names}, "weight": w}
                                                      for names, w in rules]}}


def test_uid_parity_matches_karmada() -> None:
    assert fnv32a(EVEN_UID.encode()) & 1 == 0
    assert fnv32a(ODD_UID.encode()) & 1 == 1
    assert fnv32a(b"") == 0x811C9DC5


@pytest.mark.parametrize(("seats", "votes", "initial", "want"), [
    # webster: the Wikipedia example, rounds 1..6 and 8
    (1, {"PartyA": 100000, "PartyB": 80000, "PartyC": 30000, "PartyD": 20000}, None, [1, 0, 0, 0]),
    (3, {"PartyA": 100000, "PartyB": 80000, "PartyC": 30000, "PartyD": 20000}, None, [2, 1, 0, 0]),
    (6, {"PartyA": 100000, "PartyB": 80000, "PartyC": 30000, "PartyD": 20000}, None, [2, 2, 1, 1]),
    (8, {"PartyA": 100000, "PartyB": 80000, "PartyC": 30000, "PartyD": 20000}, None, [3, 3, 1, 1]),
    # webster: "tie-breaker is nil, expect break tie by seats" / "by name"
    (1, {"PartyA": 3, "PartyB": 1}, {"PartyA": 1, "PartyB": 0}, [1, 1]),
    (1, {"PartyA": 1, "PartyB": 1}, None, [1, 0]),
    # webster: "non-initial allocation, both new and old parties compete for new seats"
    (2, {"OldParty": 1, "NewParty": 1}, {"OldParty": 1}, [2, 1]),
    # webster: "initialAssignments party not in partyVotes, expect no new seats for that party"
    (2, {"PartyA": 100}, {"PartyB": 3}, [2, 3]),
])
def test_webster_seats(seats: int, votes: dict[str, int], initial: dict[str, int] | None, want: list[int]) -> None:
    assert [p.seats for p in allocate_webster_seats(seats, votes, initial)] == want


@pytest.mark.parametrize(("replicas", "init", "weights", "uid", "want"), [
    # dispenser: "Scale up 6 replicas" / "Scale up 3 replicas" / "Scale up 2 replicas"
    (6, tc(A=1, B=2, C=3), {"A": 1, "B": 2, "C": 3}, "", {"A": 2, "B": 4, "C": 6}),
    (3, tc(A=1, B=2, C=3), {"A": 1, "B": 2, "C": 3}, "", {"A": 2, "B": 3, "C": 4}),
    (2, tc(A=1, B=2, C=3), {"A": 1, "B": 2, "C": 3}, "", {"A": 1, "B": 3, "C": 4}),
    # dispenser: "HA scenario with weight 2:1": the smaller cluster gets the second replica
    (1, None, {"A": 2, "B": 1}, "", {"A": 1, "B": 0}),
    (2, None, {"A": 2, "B": 1}, "", {"A": 1, "B": 1}),
    (3, None, {"A": 2, "B": 1}, "", {"A": 2, "B": 1}),
    # dispenser: "brand new assign 5/6 replicas"
    (5, None, {"A": 170, "B": 110, "C": 60}, "", {"A": 2, "B": 2, "C": 1}),
    (6, None, {"A": 170, "B": 110, "C": 60}, "", {"A": 3, "B": 2, "C": 1}),
    # dispenser: 1:1 with odd replicas -- the object's UID decides who gets the odd one
    (5, None, {"A": 1, "B": 1}, ODD_UID, {"A": 2, "B": 3}),
    (5, None, {"A": 1, "B": 1}, EVEN_UID, {"A": 3, "B": 2}),
    (5, None, {"A": 1, "B": 1}, "", {"A": 3, "B": 2}),
])
def test_dispenser(replicas: int, init: list[Obj] | None, weights: dict[str, int], uid: str,
                   want: dict[str, int]) -> None:
    infos = [WeightInfo(n, w) for n, w in weights.items()]
    assert as_map(allocate_by_weight(replicas, infos, init=init, uid=uid)) == want


def test_tie_breaker_prefers_fewer_seats_whatever_the_uid() -> None:
    from atoll.federation.scheduler.webster import Party
    for uid in ("", EVEN_UID, ODD_UID):
        assert tie_breaker_by_uid(uid)(Party("z", 1, 0), Party("a", 1, 1))


@pytest.mark.parametrize(("total", "weights", "want"), [
    # dispenser (TestDispenseReplicasByTargetClusters)
    (10, tc(member1=5), {"member1": 10}),
    (12, tc(member1=5, member2=5, member3=5), {"member1": 4, "member2": 4, "member3": 4}),
    (10, tc(member1=5, member2=5, member3=5), {"member1": 4, "member2": 3, "member3": 3}),
    (13, tc(member1=1, member2=2, member3=3), {"member1": 2, "member2": 4, "member3": 7}),
    # division (Test_dynamicDivideReplicas): dynamic weights 18:12:6, 20:12:6, 6:12:6
    (12, tc(member1=18, member2=12, member3=6), {"member1": 6, "member2": 4, "member3": 2}),
    (12, tc(member1=20, member2=12, member3=6), {"member1": 6, "member2": 4, "member3": 2}),
    (12, tc(member1=6, member2=12, member3=6), {"member1": 3, "member2": 6, "member3": 3}),
    (10, [], {}),
])
def test_spread_by_target_clusters(total: int, weights: list[Obj], want: dict[str, int]) -> None:
    assert as_map(spread_by_target_clusters(total, weights)) == want


@pytest.mark.parametrize(("replicas", "strategy", "candidates", "want"), [
    # assignment (Test_assignByStaticWeightStrategy): "replica 12, weight 3:2:1", 13 and 14
    (12, static((["member1"], 3), (["member2"], 2), (["member3"], 1)), ["member1", "member2", "member3"],
     {"member1": 6, "member2": 4, "member3": 2}),
    (13, static((["member1"], 3), (["member2"], 2), (["member3"], 1)), ["member1", "member2", "member3"],
     {"member1": 7, "member2": 4, "member3": 2}),
    (14, static((["member1"], 3), (["member2"], 2), (["member3"], 1)), ["member1", "member2", "member3"],
     {"member1": 7, "member2": 5, "member3": 2}),
    # assignment: "replica 12, default weight" (no weightPreference: every cluster weighs 1)
    (12, {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted"},
     ["member1", "member2", "member3"], {"member1": 4, "member2": 4, "member3": 4}),
    # assignment: "insufficient replica assignment should get 0 replica" -- zeros are left out
    (0, static((["member1"], 1), (["member2"], 1)), ["member1", "member2"], {}),
    # assignment: "selected cluster without weight should be ignored"
    (2, static((["member1"], 1),), ["member1", "member2"], {"member1": 2}),
    # assignment: "cluster with multiple weights" -- the highest matching rule wins
    (4, static((["member1"], 1), (["member2"], 1), (["member1"], 3)), ["member1", "member2"],
     {"member1": 3, "member2": 1}),
    # tieBreakerByUID: 1:1 with an odd count and no UID -> names ascending, member1 gets the odd one
    (3, static((["member1"], 1), (["member2"], 1)), ["member1", "member2"], {"member1": 2, "member2": 1}),
])
def test_static_weights(replicas: int, strategy: Obj, candidates: list[str], want: dict[str, int]) -> None:
    spec = {"replicas": replicas, "replicaRequirements": {"resourceRequest": {}},
            "placement": {"replicaScheduling": strategy}, "resource": {}}
    assert as_map(assign_replicas([detail(n) for n in candidates], spec, {})) == want


def test_static_weights_with_odd_uid_give_the_odd_replica_to_the_last_name() -> None:
    spec = {"replicas": 3, "placement": {"replicaScheduling": static((["member1"], 1), (["member2"], 1))},
            "resource": {"uid": ODD_UID}}
    assert as_map(assign_replicas([detail("member1"), detail("member2")], spec, {})) == {"member1": 1, "member2": 2}


def test_static_weights_by_label_selector() -> None:
    strategy = {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
                "weightPreference": {"staticWeightList": [
                    {"targetCluster": {"labelSelector": {"matchLabels": {"tier": "big"}}}, "weight": 2},
                    {"targetCluster": {"labelSelector": {"matchLabels": {"tier": "small"}}}, "weight": 1}]}}
    spec = {"replicas": 9, "placement": {"replicaScheduling": strategy}}
    clusters = [detail("a", labels={"tier": "big"}), detail("b", labels={"tier": "small"}),
                detail("c", labels={"tier": "big"})]
    assert as_map(assign_replicas(clusters, spec, {})) == {"a": 4, "b": 2, "c": 3}


def scaling(replicas: int, strategy: Obj, current: list[Obj]) -> Obj:
    return {"replicas": replicas, "replicaRequirements": {"resourceRequest": {}}, "clusters": current,
            "placement": {"replicaScheduling": strategy}}


@pytest.mark.parametrize(("spec", "candidates", "want"), [
    # assignment (Test_dynamicScale): "replica 12 -> 6, dynamic weighted 1:1:1" -- down in proportion
    (scaling(6, DYNAMIC, tc(member1=2, member2=4, member3=6)), {"member1": 1, "member2": 1, "member3": 1},
     {"member1": 1, "member2": 2, "member3": 3}),
    # "replica 12 -> 24, dynamic weighted 10:10:10" -- only the 12 new ones by free room
    (scaling(24, DYNAMIC, tc(member1=2, member2=4, member3=6)), {"member1": 10, "member2": 10, "member3": 10},
     {"member1": 6, "member2": 8, "member3": 10}),
    # "replica 12 -> 6, aggregated 1:1:1" -- the bigger current share keeps everything
    (scaling(6, AGGREGATED, tc(member1=4, member2=8)), {"member1": 1, "member2": 1, "member3": 1},
     {"member2": 6}),
    # "replica 12 -> 8, aggregated 100:100"
    (scaling(8, AGGREGATED, tc(member1=4, member2=8)), {"member1": 100, "member2": 100}, {"member2": 8}),
    # "replica 12 -> 24, aggregated 4:6:8"
    (scaling(24, AGGREGATED, tc(member1=4, member2=8)), {"member1": 4, "member2": 6, "member3": 8},
     {"member1": 7, "member2": 12, "member3": 5}),
    # "replica 12 -> 24, aggregated 6:6:20" -- clusters already used are filled first
    (scaling(24, AGGREGATED, tc(member1=4, member2=8)), {"member1": 6, "member2": 6, "member3": 20},
     {"member1": 10, "member2": 14}),
    # "replica 12 -> 24, aggregated 4:8:12, with cluster2 disappeared and cluster4 appeared"
    (scaling(24, AGGREGATED, tc(member1=4, member2=8)), {"member1": 4, "member3": 8, "member4": 12},
     {"member1": 7, "member3": 7, "member4": 10}),
    # same replicas: the current assignment stays as it is
    (scaling(12, DYNAMIC, tc(member1=2, member2=4, member3=6)), {"member1": 0, "member2": 0, "member3": 0},
     {"member1": 2, "member2": 4, "member3": 6}),
    # first schedule is a scale up from nothing -- division (Test_dynamicDivideReplicas) aggregated 12:6:6
    (scaling(12, AGGREGATED, []), {"member2": 12, "member1": 6, "member3": 6}, {"member2": 12}),
    # division: aggregated 6:6:6 -> the first two in order
    (scaling(12, AGGREGATED, []), {"member1": 6, "member2": 6, "member3": 6}, {"member1": 6, "member2": 6}),
])
def test_dynamic_scaling(spec: Obj, candidates: dict[str, int], want: dict[str, int]) -> None:
    clusters = [detail(n, a) for n, a in candidates.items()]
    assert as_map(assign_replicas(clusters, spec, {})) == want


@pytest.mark.parametrize(("strategy", "candidates"), [
    (DYNAMIC, {"member1": 1, "member2": 1, "member3": 1}),       # assignment: "replica 12 -> 24, dynamic weighted 1:1:1"
    (AGGREGATED, {"member1": 1, "member2": 1, "member3": 1}),    # assignment: "replica 12 -> 24, aggregated 1:1:1"
])
def test_not_enough_room_is_unschedulable(strategy: Obj, candidates: dict[str, int]) -> None:
    spec = scaling(24, strategy, tc(member1=2, member2=4, member3=6))
    with pytest.raises(UnschedulableError, match=r"^failed to scale up: Clusters available replicas 3 are not enough"):
        assign_replicas([detail(n, a) for n, a in candidates.items()], spec, {})


def test_fresh_reschedule_ignores_the_current_proportions() -> None:
    # Steady: 12 -> 12 keeps 2:4:6. With rescheduleTriggeredAt after lastScheduledTime, all 12 are divided
    # again by room, the current replicas counted as room where they run (dynamicFreshScale).
    spec = scaling(12, DYNAMIC, tc(member1=2, member2=4, member3=6))
    spec["rescheduleTriggeredAt"] = "2026-01-02T00:00:00Z"
    clusters = [detail("member1", 10), detail("member2", 8), detail("member3", 6)]
    assert as_map(assign_replicas(clusters, spec, {"lastScheduledTime": "2026-01-01T00:00:00Z"})) == \
        {"member1": 4, "member2": 4, "member3": 4}
    # A trigger older than the last schedule changes nothing.
    assert as_map(assign_replicas(clusters, spec, {"lastScheduledTime": "2026-01-03T00:00:00Z"})) == \
        {"member1": 2, "member2": 4, "member3": 6}


@pytest.mark.parametrize(("triggered", "last", "want"), [
    (None, "2026-01-01T00:00:00Z", False),
    ("2026-01-02T00:00:00Z", None, False),          # the first schedule has not succeeded yet
    ("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z", True),
    ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", False),
])
def test_reschedule_required(triggered: str | None, last: str | None, want: bool) -> None:
    spec = {"rescheduleTriggeredAt": triggered} if triggered else {}
    status = {"lastScheduledTime": last} if last else {}
    assert reschedule_required(spec, status) is want


def test_duplicated_and_non_workloads() -> None:
    clusters = [detail("a"), detail("b")]
    assert assign_replicas(clusters, {"replicas": 3, "placement": {}}, {}) == tc(a=3, b=3)
    # A ConfigMap (no replicas, no requirements) goes everywhere without a count.
    assert assign_replicas(clusters, {"placement": {"replicaScheduling": DYNAMIC}}, {}) == tc(a=0, b=0)
    with pytest.raises(SchedulingError, match="no clusters available to schedule"):
        assign_replicas([], {"replicas": 1, "placement": {}}, {})


def test_merge_target_clusters() -> None:
    assert merge_target_clusters(tc(a=1, b=2), tc(b=3, c=4)) == tc(b=5, c=4, a=1)
    assert merge_target_clusters([], tc(a=1)) == tc(a=1)
    assert merge_target_clusters(tc(a=1), []) == tc(a=1)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 40), min_size=1, max_size=6),
       st.dictionaries(st.sampled_from("abcdefgh"), st.integers(0, 5), max_size=4),
       st.integers(0, 60), st.sampled_from(["", EVEN_UID, ODD_UID]))
def test_tuple_heap_equals_karmadas_comparator(votes: dict[str, int], initial: dict[str, int], seats: int,
                                               uid: str) -> None:
    # The fast path (tuples) hands out seats exactly as the comparator Karmada's heap uses.
    fast = allocate_webster_seats(seats, votes, initial, descending=names_descending(uid))
    slow = allocate_webster_seats(seats, votes, initial, tie_breaker_by_uid(uid))
    assert [(p.name, p.seats) for p in fast] == [(p.name, p.seats) for p in slow]


OVERFLOW = {"clusterAffinities": [{"affinityName": "home", "clusterNames": ["m1"],
                                   "overflowAffinities": [{"affinityName": "burst", "clusterNames": ["m2"]},
                                                          {"affinityName": "last", "clusterNames": ["m3"]}]}],
            "replicaScheduling": AGGREGATED}


@pytest.mark.parametrize(("replicas", "current", "want"), [
    (3, [], {"m1": 3}),                                   # the home group holds it
    (5, [], {"m1": 3, "m2": 2}),                          # overflow to the first extra group
    (12, [], {"m1": 3, "m2": 4, "m3": 5}),                # and the next
    (2, tc(m1=3, m2=2), {"m1": 2}),                       # scale down empties the overflow first
    (6, tc(m1=3, m2=2), {"m1": 3, "m2": 3}),
])
def test_overflow_affinities_fill_groups_in_order(replicas: int, current: list[Obj], want: dict[str, int]) -> None:
    # Karmada's assignWorkloadReplicas with enableOverflow: tiers by overflow order, each given what it holds.
    room = {"m1": 3, "m2": 4, "m3": 5}
    clusters = [ClusterDetail(n, allocatable_replicas=room[n] - r, overflow_order=i,
                              available_replicas=room[n], cluster={"metadata": {"name": n}})
                for i, (n, r) in enumerate((n, as_map(current).get(n, 0)) for n in ("m1", "m2", "m3"))]
    spec = {"replicas": replicas, "replicaRequirements": {"resourceRequest": {}}, "clusters": current,
            "placement": OVERFLOW}
    assert as_map(assign_replicas(clusters, spec, {"schedulerObservingAffinityName": "home"})) == want


def test_overflow_beyond_every_group_is_unschedulable() -> None:
    clusters = [ClusterDetail("m1", allocatable_replicas=3, available_replicas=3, cluster={"metadata": {"name": "m1"}})]
    spec = {"replicas": 4, "replicaRequirements": {"resourceRequest": {}}, "placement": OVERFLOW}
    with pytest.raises(UnschedulableError, match=r"^Clusters available replicas are not enough to schedule\.$"):
        assign_replicas(clusters, spec, {"schedulerObservingAffinityName": "home"})


def test_karmada_quick_start_sample_puts_one_nginx_on_each_member() -> None:
    # Karmada's quick start (samples/nginx): 2 replicas, static weights 1:1 on member1 and member2 ->
    # "nginx 1/1 on member1, 1/1 on member2" as its README shows.
    from pathlib import Path

    import yaml

    from atoll.federation.scheduler.scheduling import GenericScheduler

    docs = list(yaml.safe_load_all((Path(__file__).parent.parent / "samples" / "quickstart-nginx.yaml").read_text()))
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    policy = next(d for d in docs if d["kind"] == "PropagationPolicy")
    apis = [{"groupVersion": "apps/v1", "resources": [{"name": "deployments", "kind": "Deployment"}]}]
    clusters = [{"metadata": {"name": n}, "spec": {}, "status": {"apiEnablements": apis, "resourceSummary": {
        "allocatable": {"pods": "110", "cpu": "4"}}}} for n in ("member1", "member2", "member3")]
    spec = {"resource": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "nginx", "namespace": "default",
                         "uid": ""}, "replicas": deployment["spec"]["replicas"],
            "replicaRequirements": {"resourceRequest": {}}, "placement": policy["spec"]["placement"]}
    assert GenericScheduler().schedule(spec, {}, clusters) == tc(member1=1, member2=1)
