"""Filter and score plugins, cluster matching, estimation and one whole decision (table-driven).

Cases follow Karmada's plugin tests (pkg/scheduler/framework/plugins/*/..._test.go) and
pkg/util/selector_test.go (``ClusterMatches``); estimator cases follow
pkg/estimator/client/general_test.go's arithmetic.
"""

from __future__ import annotations

from typing import Any

import pytest

from atoll.federation.scheduler.estimation import available_replicas, max_available_replicas
from atoll.federation.scheduler.framework import BindingContext, Code, FitError, Status
from atoll.federation.scheduler.placement import cluster_matches, taint_string
from atoll.federation.scheduler.plugins import (
    APIEnablement,
    ClusterAffinity,
    ClusterEviction,
    ClusterLocality,
    SpreadConstraint,
    TaintToleration,
)
from atoll.federation.scheduler.scheduling import GenericScheduler

Obj = dict[str, Any]


def cluster(name: str = "member1", *, labels: dict[str, str] | None = None, taints: list[Obj] | None = None,
            provider: str = "", region: str = "", zones: list[str] | None = None,
            apis: dict[str, list[str]] | None = None, summary: Obj | None = None) -> Obj:
    spec: Obj = {}
    if provider:
        spec["provider"] = provider
    if region:
        spec["region"] = region
    if zones:
        spec["zones"] = zones
    if taints:
        spec["taints"] = taints
    status: Obj = {}
    if apis is not None:
        status["apiEnablements"] = [{"groupVersion": gv, "resources": [{"kind": k} for k in kinds]}
                                    for gv, kinds in apis.items()]
    if summary is not None:
        status["resourceSummary"] = summary
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec, "status": status}


def ctx(placement: Obj | None = None, **spec: Any) -> BindingContext:
    spec.setdefault("resource", {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})
    return BindingContext({**spec, "placement": placement or {}}, {})


@pytest.mark.parametrize(("affinity", "c", "want"), [
    (None, cluster(), True),
    ({}, cluster(), True),
    ({"clusterNames": ["member1"]}, cluster(), True),
    ({"clusterNames": ["member2"]}, cluster(), False),
    ({"exclude": ["member1"]}, cluster(), False),
    ({"clusterNames": ["member1"], "exclude": ["member1"]}, cluster(), False),
    ({"labelSelector": {"matchLabels": {"env": "prod"}}}, cluster(labels={"env": "prod"}), True),
    ({"labelSelector": {"matchLabels": {"env": "prod"}}}, cluster(labels={"env": "dev"}), False),
    ({"labelSelector": {"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]}},
     cluster(labels={}), True),
    ({"fieldSelector": {"matchExpressions": [{"key": "provider", "operator": "In", "values": ["aws"]}]}},
     cluster(provider="aws"), True),
    ({"fieldSelector": {"matchExpressions": [{"key": "provider", "operator": "In", "values": ["aws"]}]}},
     cluster(provider="gcp"), False),
    ({"fieldSelector": {"matchExpressions": [{"key": "region", "operator": "NotIn", "values": ["eu"]}]}},
     cluster(region="us"), True),
    ({"fieldSelector": {"matchExpressions": [{"key": "region", "operator": "Exists"}]}}, cluster(), False),
    # zones: In wants an overlap, NotIn none, Exists/DoesNotExist (non-)empty
    ({"fieldSelector": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]}]}},
     cluster(zones=["z1", "z2"]), True),
    ({"fieldSelector": {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z2"]}]}},
     cluster(zones=["z1", "z2"]), False),
    ({"fieldSelector": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}},
     cluster(), False),
    ({"fieldSelector": {"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}}, cluster(), True),
    # all parts must match
    ({"clusterNames": ["member1"], "labelSelector": {"matchLabels": {"env": "prod"}}},
     cluster(labels={"env": "dev"}), False),
    ({"labelSelector": {"matchExpressions": [{"key": "env", "operator": "Bogus"}]}}, cluster(), False),
])
def test_cluster_matches(affinity: Obj | None, c: Obj, want: bool) -> None:
    assert cluster_matches(c, affinity) is want


AFFINITY_REASON = "cluster(s) did not match the placement cluster affinity constraint"


@pytest.mark.parametrize(("placement", "observed", "c", "want"), [
    ({}, "", cluster(), Status()),
    ({"clusterAffinity": {"clusterNames": ["member1"]}}, "", cluster(), Status()),
    ({"clusterAffinity": {"clusterNames": ["member2"]}}, "", cluster(), Status(Code.UNSCHEDULABLE, (AFFINITY_REASON,))),
    # clusterAffinities: only the observed term applies
    ({"clusterAffinities": [{"affinityName": "a", "clusterNames": ["member2"]},
                            {"affinityName": "b", "clusterNames": ["member1"]}]}, "b", cluster(), Status()),
    ({"clusterAffinities": [{"affinityName": "a", "clusterNames": ["member2"]},
                            {"affinityName": "b", "clusterNames": ["member1"]}]}, "a", cluster(),
     Status(Code.UNSCHEDULABLE, (AFFINITY_REASON,))),
    # no term of that name: nothing applies
    ({"clusterAffinities": [{"affinityName": "a", "clusterNames": ["member2"]}]}, "zzz", cluster(), Status()),
])
def test_cluster_affinity(placement: Obj, observed: str, c: Obj, want: Status) -> None:
    context = ctx(placement)
    context.status["schedulerObservingAffinityName"] = observed
    assert ClusterAffinity().filter(context, c) == want
    assert ClusterAffinity().score(context, c) == 0


@pytest.mark.parametrize(("taints", "tolerations", "clusters", "want"), [
    ([], [], [], None),
    ([{"key": "foo", "value": "bar", "effect": "NoSchedule"}], [], [],
     "cluster(s) had untolerated taint {foo=bar:NoSchedule}"),
    ([{"key": "foo", "effect": "NoExecute"}], [], [], "cluster(s) had untolerated taint {foo:NoExecute}"),
    ([{"key": "foo", "effect": "PreferNoSchedule"}], [], [], None),                 # not a filter effect
    ([{"key": "foo", "value": "bar", "effect": "NoSchedule"}],
     [{"key": "foo", "operator": "Equal", "value": "bar", "effect": "NoSchedule"}], [], None),
    ([{"key": "foo", "value": "bar", "effect": "NoSchedule"}], [{"key": "foo", "operator": "Exists"}], [], None),
    ([{"key": "foo", "value": "bar", "effect": "NoSchedule"}], [{"operator": "Exists"}], [], None),
    ([{"key": "foo", "value": "bar", "effect": "NoSchedule"}], [{"key": "foo", "value": "baz"}], [],
     "cluster(s) had untolerated taint {foo=bar:NoSchedule}"),
    ([{"key": "foo", "value": "bar", "effect": "NoSchedule"}],
     [{"key": "foo", "operator": "Exists", "effect": "NoExecute"}], [],
     "cluster(s) had untolerated taint {foo=bar:NoSchedule}"),
    # already scheduled there: stays (eviction is the taint manager's decision)
    ([{"key": "foo", "effect": "NoExecute"}], [], [{"name": "member1", "replicas": 1}], None),
])
def test_taint_toleration(taints: list[Obj], tolerations: list[Obj], clusters: list[Obj], want: str | None) -> None:
    status = TaintToleration().filter(ctx({"clusterTolerations": tolerations}, clusters=clusters),
                                      cluster(taints=taints))
    assert status == (Status() if want is None else Status(Code.UNSCHEDULABLE, (want,)))


def test_taint_string() -> None:
    assert taint_string({"key": "k", "value": "v", "effect": "NoSchedule"}) == "k=v:NoSchedule"
    assert taint_string({"key": "k", "effect": "NoExecute"}) == "k:NoExecute"


@pytest.mark.parametrize(("apis", "resource", "clusters", "ok"), [
    ({"apps/v1": ["Deployment"]}, ("apps/v1", "Deployment"), [], True),
    ({"apps/v1": ["StatefulSet"]}, ("apps/v1", "Deployment"), [], False),
    ({"apps/v1beta1": ["Deployment"]}, ("apps/v1", "Deployment"), [], False),
    ({"v1": ["ConfigMap"]}, ("v1", "ConfigMap"), [], True),
    (None, ("v1", "ConfigMap"), [], False),                                         # not collected yet
    (None, ("v1", "ConfigMap"), [{"name": "member1"}], True),                       # already there: stays
])
def test_api_enablement(apis: dict[str, list[str]] | None, resource: tuple[str, str], clusters: list[Obj],
                        ok: bool) -> None:
    context = ctx(resource={"apiVersion": resource[0], "kind": resource[1]}, clusters=clusters)
    status = APIEnablement().filter(context, cluster(apis=apis))
    assert status.ok is ok
    if not ok:
        assert status.reasons == ("cluster(s) did not have the API resource",)


@pytest.mark.parametrize(("by", "c", "reason"), [
    ("provider", cluster(provider="aws"), None),
    ("provider", cluster(), "cluster(s) did not have provider property"),
    ("region", cluster(region="us"), None),
    ("region", cluster(), "cluster(s) did not have region property"),
    ("zone", cluster(zones=["z"]), None),
    ("zone", cluster(), "cluster(s) did not have zones property"),
    ("cluster", cluster(), None),
])
def test_spread_constraint_filter(by: str, c: Obj, reason: str | None) -> None:
    status = SpreadConstraint().filter(ctx({"spreadConstraints": [{"spreadByField": by, "maxGroups": 1}]}), c)
    assert status == (Status() if reason is None else Status(Code.UNSCHEDULABLE, (reason,)))


@pytest.mark.parametrize(("tasks", "ok"), [
    ([], True),
    ([{"fromCluster": "member2"}], True),
    ([{"fromCluster": "member1", "reason": "TaintUntolerated"}], False),
])
def test_cluster_eviction(tasks: list[Obj], ok: bool) -> None:
    status = ClusterEviction().filter(ctx(gracefulEvictionTasks=tasks), cluster())
    assert status.ok is ok
    if not ok:
        assert status.reasons == ("cluster(s) is in the process of eviction",)


@pytest.mark.parametrize(("clusters", "name", "score"), [
    ([], "member1", 0),
    ([{"name": "member1"}], "member1", 100),
    ([{"name": "member2"}], "member1", 0),
])
def test_cluster_locality(clusters: list[Obj], name: str, score: int) -> None:
    assert ClusterLocality().score(ctx(clusters=clusters), cluster(name)) == score


def summary(pods: int, cpu: str = "", memory: str = "", allocated: Obj | None = None,
            allocating: Obj | None = None) -> Obj:
    allocatable: Obj = {"pods": str(pods)}
    if cpu:
        allocatable["cpu"] = cpu
    if memory:
        allocatable["memory"] = memory
    out: Obj = {"allocatable": allocatable}
    if allocated:
        out["allocated"] = allocated
    if allocating:
        out["allocating"] = allocating
    return out


@pytest.mark.parametrize(("s", "requests", "want"), [
    (None, {"cpu": "1"}, 0),                                                        # no summary yet
    (summary(10), None, 10),                                                        # pods bound only
    (summary(10, allocated={"pods": "4"}, allocating={"pods": "1"}), None, 5),
    (summary(3, allocated={"pods": "9"}), None, 0),                                 # over-committed
    (summary(100, cpu="2"), {"cpu": "500m"}, 4),                                    # CPU in millicores
    (summary(100, cpu="2", allocated={"cpu": "1500m"}), {"cpu": "200m"}, 2),
    (summary(100, cpu="8", memory="4Gi"), {"cpu": "1", "memory": "1Gi"}, 4),        # the tightest resource
    (summary(3, cpu="8"), {"cpu": "1"}, 3),                                         # the pods bound
    (summary(100, cpu="8"), {"nvidia.com/gpu": "1"}, 0),                            # resource absent
    (summary(100, cpu="1", allocated={"cpu": "1"}), {"cpu": "100m"}, 0),            # none left
    (summary(100, cpu="1"), {"cpu": "0"}, 100),                                     # zero requests ignored
])
def test_max_available_replicas(s: Obj | None, requests: Obj | None, want: int) -> None:
    c = cluster(summary=s) if s is not None else cluster()
    requirements = None if requests is None else {"resourceRequest": requests}
    assert max_available_replicas(c, requirements) == want


def test_available_replicas_for_non_workloads_is_unbounded() -> None:
    out = available_replicas([cluster("a"), cluster("b", summary=summary(3))], {"replicas": 0})
    assert out == [{"name": "a", "replicas": 2**31 - 1}, {"name": "b", "replicas": 2**31 - 1}]
    out = available_replicas([cluster("a"), cluster("b", summary=summary(3))], {"replicas": 5})
    assert out == [{"name": "a", "replicas": 0}, {"name": "b", "replicas": 3}]


DEPLOYMENT_APIS = {"apps/v1": ["Deployment"]}


def test_fit_error_message_counts_and_sorts_reasons() -> None:
    clusters = [cluster("m1", apis={}), cluster("m2", apis=DEPLOYMENT_APIS, taints=[{"key": "t", "effect": "NoSchedule"}]),
                cluster("m3", apis={}), cluster("m4", apis=DEPLOYMENT_APIS)]
    binding = {"metadata": {"name": "web", "namespace": "ns"},
               "spec": {"resource": {"apiVersion": "apps/v1", "kind": "Deployment"}, "replicas": 1,
                        "placement": {"clusterAffinity": {"exclude": ["m4"]}}}}
    with pytest.raises(FitError) as info:
        GenericScheduler().schedule(binding["spec"], {}, clusters)
    assert str(info.value) == ("0/4 clusters are available: 1 cluster(s) did not match the placement cluster "
                               "affinity constraint, 1 cluster(s) had untolerated taint {t:NoSchedule}, "
                               "2 cluster(s) did not have the API resource.")
    assert str(FitError(0, {})) == "0/0 clusters are available: no cluster exists."


def test_decide_falls_back_through_affinity_terms_and_reports_each_failure() -> None:
    clusters = [cluster("m1", apis=DEPLOYMENT_APIS, summary=summary(10)),
                cluster("m2", apis=DEPLOYMENT_APIS, summary=summary(10))]
    placement = {"clusterAffinities": [{"affinityName": "first", "clusterNames": ["gone"]},
                                       {"affinityName": "second", "clusterNames": ["m2"]}]}
    binding = {"metadata": {"name": "web", "namespace": "ns"},
               "spec": {"resource": {"apiVersion": "apps/v1", "kind": "Deployment"}, "replicas": 2,
                        "placement": placement}}
    outcome = GenericScheduler().decide(binding, clusters)
    assert outcome.clusters == [{"name": "m2", "replicas": 2}] and outcome.error is None
    assert outcome.affinity_name == "second"
    assert outcome.term_failures == ["failed to schedule ResourceBinding(ns/web) with clusterAffiliates index(0): "
                                     "0/2 clusters are available: 2 cluster(s) did not match the placement "
                                     "cluster affinity constraint."]
    # Scheduled with "second" already: it is tried first; a triggered reschedule starts over at "first".
    binding["status"] = {"schedulerObservingAffinityName": "second", "lastScheduledTime": "2026-01-01T00:00:00Z"}
    assert GenericScheduler().decide(binding, clusters).term_failures == []
    binding["spec"]["rescheduleTriggeredAt"] = "2026-01-02T00:00:00Z"
    assert len(GenericScheduler().decide(binding, clusters).term_failures) == 1
    # No term fits: the old placement is cleared, the observed term is kept.
    placement["clusterAffinities"][1]["clusterNames"] = ["gone"]
    outcome = GenericScheduler().decide(binding, clusters)
    assert outcome.clusters == [] and isinstance(outcome.error, FitError) and outcome.affinity_name is None


def test_decide_keeps_the_placement_when_room_is_short() -> None:
    clusters = [cluster("m1", apis=DEPLOYMENT_APIS, summary=summary(2))]
    binding = {"metadata": {"name": "web", "namespace": "ns"},
               "spec": {"resource": {"apiVersion": "apps/v1", "kind": "Deployment"}, "replicas": 5,
                        "replicaRequirements": {"resourceRequest": {}},
                        "placement": {"replicaScheduling": {"replicaDivisionPreference": "Aggregated"}}}}
    outcome = GenericScheduler().decide(binding, clusters)
    assert outcome.clusters is None
    assert str(outcome.error) == ("failed to assign replicas: failed to scale up: Clusters available replicas 2 "
                                  "are not enough to schedule.")


def test_deleting_clusters_are_skipped_but_counted() -> None:
    gone = cluster("m1", apis=DEPLOYMENT_APIS)
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    spec = {"resource": {"apiVersion": "apps/v1", "kind": "Deployment"}, "placement": {}}
    with pytest.raises(FitError, match=r"^0/1 clusters are available: no cluster exists\.$"):
        GenericScheduler().schedule(spec, {}, [gone])
    assert GenericScheduler().schedule(spec, {}, [gone, cluster("m2", apis=DEPLOYMENT_APIS)]) == \
        [{"name": "m2", "replicas": 0}]


def test_overflow_groups_pass_the_affinity_filter_for_workloads_only_and_sort_last() -> None:
    placement = {"clusterAffinities": [{"affinityName": "home", "clusterNames": ["m1"],
                                        "overflowAffinities": [{"affinityName": "burst", "clusterNames": ["m2"]}]}]}
    workload = ctx(placement, replicas=2)
    workload.status["schedulerObservingAffinityName"] = "home"
    config = ctx(placement)
    config.status["schedulerObservingAffinityName"] = "home"
    assert ClusterAffinity().filter(workload, cluster("m2")).ok
    assert not ClusterAffinity().filter(config, cluster("m2")).ok
    assert not ClusterAffinity().filter(workload, cluster("m3")).ok
    clusters = [cluster("m2", apis=DEPLOYMENT_APIS, summary=summary(10)),
                cluster("m1", apis=DEPLOYMENT_APIS, summary=summary(1))]
    binding = {"metadata": {"name": "w", "namespace": "ns"},
               "spec": {**workload.spec, "replicaRequirements": {"resourceRequest": {}},
                        "placement": {**placement, "replicaScheduling": {"replicaDivisionPreference": "Aggregated"}}}}
    outcome = GenericScheduler().decide(binding, clusters)
    assert outcome.clusters == [{"name": "m1", "replicas": 1}, {"name": "m2", "replicas": 1}]
    assert outcome.affinity_name == "home"
