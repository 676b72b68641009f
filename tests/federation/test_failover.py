"""Failover: taint manager, graceful eviction, application failover — pure rules and over a real API server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest

from atoll.api.errors import NotFound
from atoll.client import Client, Resource
from atoll.cluster.controllers.deployment import DeploymentController
from atoll.cluster.controllers.replicaset import ReplicaSetController
from atoll.cluster.kubelet.simulated import NodeSpec, SimulatedNodes
from atoll.cluster.scheduler.controller import SchedulerController as MemberScheduler
from atoll.federation import crds
from atoll.federation.binding import BindingController
from atoll.federation.clusters import join
from atoll.federation.detector import Detector
from atoll.federation.failover import (
    ApplicationFailoverController,
    ClusterTaintManager,
    GracefulEvictionController,
    UnhealthySince,
    all_scheduled_healthy,
    application_eviction_options,
    applied_placement,
    assess_eviction_tasks,
    cluster_purge_mode,
    eviction_delay,
    graceful_evict_cluster,
    has_been_scheduled,
    matching_tolerations,
    min_toleration_time,
    next_retry,
    no_execute_taints,
    tolerates,
    unhealthy_and_others,
)
from atoll.federation.kinds import (
    CLUSTER_RESOURCE_BINDINGS,
    CLUSTERS,
    PROPAGATION_POLICIES,
    RESOURCE_BINDINGS,
)
from atoll.federation.scheduler.controller import SchedulerController
from atoll.federation.status import BindingStatusController, rfc3339
from tests.conftest import RunningServer, stop_process
from tests.federation.clusters.harness import federation, start_member
from tests.waiting import eventually

Obj = dict[str, Any]
NAMESPACES = Resource("v1", "namespaces", False, "Namespace")
DEPLOYMENTS = Resource("apps/v1", "deployments", True, "Deployment")
T0 = 1_800_000_000.0
NOT_READY = {"key": "cluster.karmada.io/not-ready", "effect": "NoExecute", "timeAdded": rfc3339(T0)}
UNREACHABLE = {"key": "cluster.karmada.io/unreachable", "effect": "NoExecute", "timeAdded": rfc3339(T0)}
NO_SCHEDULE = {"key": "cluster.karmada.io/not-ready", "effect": "NoSchedule"}


# -- taints and tolerations -------------------------------------------------------------------------------


@pytest.mark.parametrize(("toleration", "taint", "expected"), [
    ({"key": "k", "operator": "Exists"}, {"key": "k", "effect": "NoExecute"}, True),
    ({"key": "k", "operator": "Equal", "value": "v"}, {"key": "k", "value": "v", "effect": "NoExecute"}, True),
    ({"key": "k", "value": "v"}, {"key": "k", "value": "w", "effect": "NoExecute"}, False),
    ({"key": "k"}, {"key": "k", "effect": "NoExecute"}, True),  # Equal with both values empty
    ({"operator": "Exists"}, {"key": "anything", "effect": "NoExecute"}, True),
    ({"key": "k", "operator": "Exists", "effect": "NoSchedule"}, {"key": "k", "effect": "NoExecute"}, False),
    ({"key": "k", "operator": "Exists", "effect": "NoExecute"}, {"key": "k", "effect": "NoExecute"}, True),
    ({"key": "other", "operator": "Exists"}, {"key": "k", "effect": "NoExecute"}, False),
    ({"key": "k", "operator": "Gt", "value": "1"}, {"key": "k", "value": "2", "effect": "NoExecute"}, False),
])
def test_tolerates(toleration: Obj, taint: Obj, expected: bool) -> None:
    assert tolerates(toleration, taint) is expected


def test_no_execute_taints_and_matching() -> None:
    assert no_execute_taints([NOT_READY, NO_SCHEDULE]) == [NOT_READY]
    assert matching_tolerations([], []) == (True, [])
    assert matching_tolerations([NOT_READY], []) == (False, [])
    exists = {"key": NOT_READY["key"], "operator": "Exists"}
    assert matching_tolerations([NOT_READY, UNREACHABLE], [exists]) == (False, [])
    assert matching_tolerations([NOT_READY], [exists]) == (True, [exists])


def _tol(key: str, seconds: int | None) -> Obj:
    return {"key": key, "operator": "Exists", "effect": "NoExecute",
            **({"tolerationSeconds": seconds} if seconds is not None else {})}


@pytest.mark.parametrize(("taints", "tolerations", "now", "expected"), [
    ([], [], T0, None),  # nothing to flee from
    ([NOT_READY], [], T0, 0),  # Karmada adds no default tolerations: evict at once
    ([NOT_READY], [_tol(NOT_READY["key"], None)], T0 + 10_000, None),  # tolerated forever
    ([NOT_READY], [_tol(NOT_READY["key"], 300)], T0 + 100, 200),
    ([NOT_READY], [_tol(NOT_READY["key"], 300)], T0 + 300, 0),
    ([NOT_READY], [_tol(NOT_READY["key"], 300)], T0 + 301, 0),
    ([NOT_READY, UNREACHABLE], [_tol(NOT_READY["key"], 300), _tol(UNREACHABLE["key"], 60)], T0 + 10, 50),
    ([NOT_READY, UNREACHABLE], [_tol(NOT_READY["key"], 300), _tol(UNREACHABLE["key"], None)], T0 + 10, 290),
    ([NOT_READY, UNREACHABLE], [_tol(NOT_READY["key"], 300)], T0, 0),  # one taint untolerated
    ([{**NOT_READY, "timeAdded": None}], [_tol(NOT_READY["key"], 300)], T0, None),  # no time: no trigger
])
def test_eviction_delay(taints: list[Obj], tolerations: list[Obj], now: float, expected: float | None) -> None:
    assert eviction_delay(taints, tolerations, now) == expected


def test_min_toleration_time_edges() -> None:
    assert min_toleration_time([], [], T0) == -1
    assert min_toleration_time([NOT_READY], [], T0) == 0


def test_applied_placement_prefers_the_scheduler_annotation() -> None:
    applied = {"clusterTolerations": [_tol("a", 5)]}
    binding = {"metadata": {"annotations": {"policy.karmada.io/applied-placement": orjson.dumps(applied).decode()}},
               "spec": {"placement": {"clusterTolerations": []}}}
    assert applied_placement(binding) == applied
    assert applied_placement({"spec": {"placement": {"x": 1}}}) == {"x": 1}
    broken = {"metadata": {"annotations": {"policy.karmada.io/applied-placement": "{"}}, "spec": {}}
    assert applied_placement(broken) == {}


@pytest.mark.parametrize(("failover", "default", "expected"), [
    (None, "Gracefully", "Gracefully"),
    (None, "Directly", "Directly"),
    ({"cluster": {}}, "Directly", "Gracefully"),
    ({"cluster": {"purgeMode": "Directly"}}, "Gracefully", "Directly"),
    ({"application": {"purgeMode": "Never"}}, "Gracefully", "Gracefully"),
])
def test_cluster_purge_mode(failover: Obj | None, default: str, expected: str) -> None:
    assert cluster_purge_mode(failover, default) == expected


# -- eviction tasks ---------------------------------------------------------------------------------------


SPEC: Obj = {"clusters": [{"name": "m1", "replicas": 2}, {"name": "m2", "replicas": 1}], "replicas": 3}


def test_graceful_evict_cluster() -> None:
    out = graceful_evict_cluster(SPEC, "m1", producer="TaintManager", reason="TaintUntolerated", now=T0)
    assert out["clusters"] == [{"name": "m2", "replicas": 1}]
    assert out["gracefulEvictionTasks"] == [{"fromCluster": "m1", "purgeMode": "Gracefully",
                                             "reason": "TaintUntolerated", "producer": "TaintManager",
                                             "replicas": 2, "creationTimestamp": rfc3339(T0)}]
    assert SPEC["clusters"][0]["name"] == "m1"  # the input is not changed
    # A second eviction from the same cluster keeps the first task; one not scheduled there changes nothing.
    again = graceful_evict_cluster({**out, "clusters": [*out["clusters"], {"name": "m1"}]}, "m1",
                                   producer="x", reason="ApplicationFailure", now=T0 + 5)
    assert again["gracefulEvictionTasks"] == out["gracefulEvictionTasks"]
    assert graceful_evict_cluster(SPEC, "m9", producer="x", reason="y", now=T0) == SPEC
    never = graceful_evict_cluster(SPEC, "m2", producer="p", reason="ApplicationFailure", now=T0, purge="Never",
                                   suppress_deletion=True, grace_period_seconds=None, message="unhealthy")
    assert never["gracefulEvictionTasks"][0]["suppressDeletion"] is True
    assert never["gracefulEvictionTasks"][0]["message"] == "unhealthy"
    graceful = graceful_evict_cluster({"clusters": [{"name": "m1"}]}, "m1", producer="p", reason="r", now=T0,
                                      grace_period_seconds=30)
    assert graceful["gracefulEvictionTasks"][0]["gracePeriodSeconds"] == 30
    assert "replicas" not in graceful["gracefulEvictionTasks"][0]  # duplicated: no replica count


def _task(cluster: str = "m1", *, age: float | None = 10, **extra: Any) -> Obj:
    task: Obj = {"fromCluster": cluster, "reason": "TaintUntolerated", "producer": "TaintManager", **extra}
    if age is not None:
        task["creationTimestamp"] = rfc3339(T0 - age)
    return task


HEALTHY_M2 = [{"clusterName": "m1", "health": "Unknown"}, {"clusterName": "m2", "health": "Healthy"}]
UNHEALTHY_M2 = [{"clusterName": "m2", "health": "Unhealthy"}]


@pytest.mark.parametrize(("task", "aggregated", "scheduled", "kept"), [
    (_task(age=None), HEALTHY_M2, True, True),  # new: its clock starts, nothing else decided
    (_task(), HEALTHY_M2, True, False),  # healthy where it now runs
    (_task(), HEALTHY_M2, False, True),  # the scheduler has not answered the eviction yet
    (_task(), UNHEALTHY_M2, True, True),
    (_task(), [], True, True),  # no status from the new cluster yet
    (_task(age=601), UNHEALTHY_M2, True, False),  # default timeout passed
    (_task(age=31, gracePeriodSeconds=30), UNHEALTHY_M2, True, False),
    (_task(age=29, gracePeriodSeconds=30), UNHEALTHY_M2, True, True),
    (_task(age=10_000, suppressDeletion=True), HEALTHY_M2, True, True),  # a human holds it
    (_task(suppressDeletion=False), UNHEALTHY_M2, True, False),  # a human let it go
])
def test_assess_eviction_tasks(task: Obj, aggregated: list[Obj], scheduled: bool, kept: bool) -> None:
    out, done = assess_eviction_tasks([task], T0, timeout=600, clusters=[{"name": "m2"}], aggregated=aggregated,
                                      scheduled=scheduled)
    assert (len(out) == 1) is kept and (done == ["m1"]) is (not kept)
    if kept:
        assert out[0]["creationTimestamp"]


def test_next_retry_and_health() -> None:
    tasks = [_task(age=10), _task("m3", age=100, gracePeriodSeconds=120), _task("m4", suppressDeletion=True)]
    assert next_retry(tasks, 600, T0) == 20
    assert next_retry([_task(suppressDeletion=True)], 600, T0) is None
    assert next_retry([], 600, T0) is None
    assert all_scheduled_healthy([], [])
    assert not all_scheduled_healthy([{"name": "m2"}, {"name": "m3"}], HEALTHY_M2)
    assert has_been_scheduled({"metadata": {"generation": 3}, "status": {"schedulerObservedGeneration": 3}})
    assert not has_been_scheduled({"metadata": {"generation": 4}, "status": {"schedulerObservedGeneration": 3}})
    assert not has_been_scheduled({"metadata": {"generation": 4}, "status": {}})


@pytest.mark.parametrize(("target", "status", "healthy"), [
    ({"name": "m2", "replicas": 4}, {"availableReplicas": 2, "replicas": 2}, False),  # still its old share
    ({"name": "m2", "replicas": 4}, {"availableReplicas": 4}, True),
    ({"name": "m2", "replicas": 4}, {"availableReplicas": 5}, True),
    ({"name": "m2"}, {"availableReplicas": 1}, True),  # duplicated: no share to compare with
    ({"name": "m2", "replicas": 4}, {"phase": "Running"}, True),  # not a replica workload
    ({"name": "m2", "replicas": 4}, None, True),
])
def test_substitute_serves_its_new_share(target: Obj, status: Obj | None, healthy: bool) -> None:
    item: Obj = {"clusterName": "m2", "health": "Healthy", **({"status": status} if status is not None else {})}
    assert all_scheduled_healthy([target], [item]) is healthy


# -- application failover -----------------------------------------------------------------------------------


def test_unhealthy_and_others() -> None:
    aggregated = [{"clusterName": "a", "health": "Unhealthy"}, {"clusterName": "b", "health": "Healthy"},
                  {"clusterName": "c", "health": "Unknown"}, {"clusterName": "d", "health": "Unhealthy"}]
    spec = {"gracefulEvictionTasks": [{"fromCluster": "d"}]}
    assert unhealthy_and_others(aggregated, spec) == (["a"], ["b", "c"])


@pytest.mark.parametrize(("application", "expected"), [
    ({}, {"purge": "Gracefully", "grace_period_seconds": 600}),
    ({"purgeMode": "Gracefully", "gracePeriodSeconds": 30}, {"purge": "Gracefully", "grace_period_seconds": 30}),
    ({"purgeMode": "Graciously"}, {"purge": "Gracefully", "grace_period_seconds": 600}),
    ({"purgeMode": "Directly"}, {"purge": "Directly"}),
    ({"purgeMode": "Immediately"}, {"purge": "Directly"}),
    ({"purgeMode": "Never"}, {"purge": "Never", "suppress_deletion": True}),
])
def test_application_eviction_options(application: Obj, expected: Obj) -> None:
    assert application_eviction_options(application) == expected


def test_unhealthy_since() -> None:
    seen = UnhealthySince()
    assert seen.detect("ns/b", ["a", "c"], 60, T0) == (60, [])
    assert seen.detect("ns/b", ["a"], 60, T0 + 20) == (40, [])
    assert seen.detect("ns/b", ["a", "c"], 60, T0 + 61) == (None, ["a", "c"])
    seen.forget("ns/b", keep={"a", "c"}, healthy=["c"])
    assert seen.since("ns/b", "a") == T0 and seen.since("ns/b", "c") is None
    seen.forget("ns/b", keep={"c"})
    assert seen.since("ns/b", "a") is None
    assert seen.detect("ns/b", ["a"], 0, T0 + 100) == (None, ["a"])  # tolerationSeconds 0: at once
    seen.forget("ns/b")
    assert seen.since("ns/b", "a") is None


# -- over the API server ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(apiserver: RunningServer, *clusters: str, **options: Any) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await crds.install(client)
        for name in clusters:
            await client.create(CLUSTERS, {"apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
                                           "metadata": {"name": name},
                                           "spec": {"syncMode": "Push", "apiEndpoint": "https://127.0.0.1:1"}})
        stop = asyncio.Event()
        controllers = [ClusterTaintManager(client), GracefulEvictionController(client, **options),
                       ApplicationFailoverController(client)]
        tasks = [asyncio.create_task(c.run(stop)) for c in controllers]
        try:
            yield client
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 20)


async def make_binding(client: Client, name: str, namespace: str | None, clusters: list[str], *,
                       placement: Obj | None = None, failover: Obj | None = None) -> Obj:
    resource = RESOURCE_BINDINGS if namespace else CLUSTER_RESOURCE_BINDINGS
    spec: Obj = {"resource": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                              **({"namespace": namespace} if namespace else {})},
                 "replicas": 2 * len(clusters), "clusters": [{"name": c, "replicas": 2} for c in clusters]}
    if failover is not None:
        spec["failover"] = failover
    md: Obj = {"name": f"{name}-deployment", **({"namespace": namespace} if namespace else {})}
    if placement is not None:
        spec["placement"] = placement
        md["annotations"] = {"policy.karmada.io/applied-placement": orjson.dumps(placement).decode()}
    created = await client.create(resource, {"apiVersion": "work.karmada.io/v1alpha2", "kind": resource.kind,
                                             "metadata": md, "spec": spec})
    return created


async def scheduled_with(client: Client, resource: Resource, name: str, namespace: str | None,
                         aggregated: list[Obj]) -> Obj:
    """The scheduler's and status controller's parts, done by hand: the generation seen, and health."""
    current = await client.get(resource, name, namespace)
    return await client.patch_status(resource, name, {"status": {
        "schedulerObservedGeneration": current["metadata"]["generation"], "aggregatedStatus": aggregated}}, namespace)


async def taint(client: Client, cluster: str, *taints: Obj) -> None:
    await client.patch(CLUSTERS, cluster, {"spec": {"taints": list(taints)}})


async def test_tainted_cluster_evicted_then_task_done_once_healthy_elsewhere(apiserver: RunningServer) -> None:
    ns = "failover-taint"
    async with running(apiserver, "fo-a", "fo-b") as client:
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        await make_binding(client, "web", ns, ["fo-a", "fo-b"])
        # A cluster-scoped binding with a toleration for this taint stays.
        await make_binding(client, "tolerant", None, ["fo-a", "fo-b"], placement={"clusterTolerations": [
            {"key": "cluster.karmada.io/not-ready", "operator": "Exists", "effect": "NoExecute"}]})
        await taint(client, "fo-a", {"key": "cluster.karmada.io/not-ready", "effect": "NoExecute",
                                     "timeAdded": rfc3339(time.time())})

        async def evicted() -> Obj | None:
            rb = await client.get(RESOURCE_BINDINGS, "web-deployment", ns)
            return rb if rb["spec"].get("gracefulEvictionTasks") else None

        rb = await eventually(evicted)
        assert [c["name"] for c in rb["spec"]["clusters"]] == ["fo-b"]
        [task] = rb["spec"]["gracefulEvictionTasks"]
        assert (task["fromCluster"], task["reason"], task["producer"], task["replicas"], task["purgeMode"]) == (
            "fo-a", "TaintUntolerated", "TaintManager", 2, "Gracefully")
        assert task["creationTimestamp"]
        crb = await client.get(CLUSTER_RESOURCE_BINDINGS, "tolerant-deployment")
        assert [c["name"] for c in crb["spec"]["clusters"]] == ["fo-a", "fo-b"]
        assert not crb["spec"].get("gracefulEvictionTasks")

        # Not healthy on fo-b yet: the task (and with it the Work on fo-a) stays.
        await scheduled_with(client, RESOURCE_BINDINGS, "web-deployment", ns,
                             [{"clusterName": "fo-a", "applied": True, "health": "Healthy"},
                              {"clusterName": "fo-b", "applied": True, "health": "Unhealthy"}])
        await asyncio.sleep(0.5)
        assert (await client.get(RESOURCE_BINDINGS, "web-deployment", ns))["spec"]["gracefulEvictionTasks"]
        # Healthy where it now runs: the eviction is complete.
        await scheduled_with(client, RESOURCE_BINDINGS, "web-deployment", ns,
                             [{"clusterName": "fo-a", "applied": True, "health": "Healthy"},
                              {"clusterName": "fo-b", "applied": True, "health": "Healthy"}])

        async def task_gone() -> bool:
            rb = await client.get(RESOURCE_BINDINGS, "web-deployment", ns)
            return not rb["spec"].get("gracefulEvictionTasks")

        await eventually(task_gone)
        events = apiserver.kubectl("get", "events", "-n", ns, "-o", "jsonpath={.items[*].reason}")
        assert "EvictWorkloadFromClusterSucceed" in events.stdout


async def test_toleration_seconds_delay_eviction_and_grace_period_ends_the_task(apiserver: RunningServer) -> None:
    ns = "failover-toleration"
    async with running(apiserver, "fo-c", "fo-d", timeout=1.0) as client:
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        await make_binding(client, "api", ns, ["fo-c", "fo-d"], placement={"clusterTolerations": [
            {"key": "cluster.karmada.io/unreachable", "operator": "Exists", "effect": "NoExecute",
             "tolerationSeconds": 3}]})
        tainted_at = time.time()
        await taint(client, "fo-c", {"key": "cluster.karmada.io/unreachable", "effect": "NoExecute",
                                     "timeAdded": rfc3339(tainted_at)})
        await asyncio.sleep(0.5)
        rb = await client.get(RESOURCE_BINDINGS, "api-deployment", ns)
        assert [c["name"] for c in rb["spec"]["clusters"]] == ["fo-c", "fo-d"]  # still tolerated

        async def evicted() -> Obj | None:
            rb = await client.get(RESOURCE_BINDINGS, "api-deployment", ns)
            return rb if rb["spec"].get("gracefulEvictionTasks") else None

        rb = await eventually(evicted, timeout=10)
        assert time.time() - tainted_at >= 2  # timeAdded has whole seconds: 3 s, less up to 1 s of rounding
        assert [c["name"] for c in rb["spec"]["clusters"]] == ["fo-d"]
        # Never healthy elsewhere: the controller's timeout (1 s here) ends the task.

        async def task_gone() -> bool:
            rb = await client.get(RESOURCE_BINDINGS, "api-deployment", ns)
            return not rb["spec"].get("gracefulEvictionTasks")

        await eventually(task_gone, timeout=10)


async def test_application_failover_after_toleration(apiserver: RunningServer) -> None:
    ns = "failover-app"
    async with running(apiserver, "fo-e", "fo-f") as client:
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        await make_binding(client, "shop", ns, ["fo-e", "fo-f"], failover={"application": {
            "decisionConditions": {"tolerationSeconds": 2}, "purgeMode": "Never"}})
        healthy = [{"clusterName": "fo-e", "applied": True, "health": "Healthy"},
                   {"clusterName": "fo-f", "applied": True, "health": "Healthy"}]
        await scheduled_with(client, RESOURCE_BINDINGS, "shop-deployment", ns, healthy)
        # Unhealthy for less than the toleration, then healthy again: nothing happens.
        sick = [healthy[0], {**healthy[1], "health": "Unhealthy"}]
        sick_at = time.monotonic()
        await scheduled_with(client, RESOURCE_BINDINGS, "shop-deployment", ns, sick)
        await asyncio.sleep(0.3)
        await scheduled_with(client, RESOURCE_BINDINGS, "shop-deployment", ns, healthy)
        await asyncio.sleep(max(0.0, sick_at + 2.5 - time.monotonic()))  # past the toleration had it counted
        rb = await client.get(RESOURCE_BINDINGS, "shop-deployment", ns)
        assert [c["name"] for c in rb["spec"]["clusters"]] == ["fo-e", "fo-f"]
        # Unhealthy for longer: evicted, kept until a human decides (purgeMode Never).
        started = time.monotonic()
        await scheduled_with(client, RESOURCE_BINDINGS, "shop-deployment", ns, sick)

        async def evicted() -> Obj | None:
            rb = await client.get(RESOURCE_BINDINGS, "shop-deployment", ns)
            return rb if rb["spec"].get("gracefulEvictionTasks") else None

        rb = await eventually(evicted, timeout=10)
        assert time.monotonic() - started >= 1.9
        [task] = rb["spec"]["gracefulEvictionTasks"]
        assert (task["fromCluster"], task["reason"], task["producer"], task["suppressDeletion"]) == (
            "fo-f", "ApplicationFailure", "resource-binding-application-failover-controller", True)
        assert [c["name"] for c in rb["spec"]["clusters"]] == ["fo-e"]
        # Healthy on fo-e and seen by the scheduler, but suppressDeletion holds the old copy.
        await scheduled_with(client, RESOURCE_BINDINGS, "shop-deployment", ns, healthy)
        await asyncio.sleep(0.5)
        rb = await client.get(RESOURCE_BINDINGS, "shop-deployment", ns)
        assert rb["spec"]["gracefulEvictionTasks"][0]["fromCluster"] == "fo-f"
        # The human decides: suppressDeletion false lets it go.
        rb["spec"]["gracefulEvictionTasks"][0]["suppressDeletion"] = False
        await client.replace(RESOURCE_BINDINGS, rb, ns)

        async def task_gone() -> bool:
            rb = await client.get(RESOURCE_BINDINGS, "shop-deployment", ns)
            return not rb["spec"].get("gracefulEvictionTasks")

        await eventually(task_gone)


# -- the whole path: taint a real member, the workload moves, the old copy goes once the new one is up ------


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RunningServer]]:
    servers = [start_member(tmp_path_factory.mktemp(f"failover-m{i}") / "state", name=f"failover-m{i}")
               for i in (1, 2)]
    try:
        yield servers
    finally:
        for server in servers:
            stop_process(server.process)


async def test_tainted_member_workload_moves_and_old_copy_goes_after(apiserver: RunningServer,
                                                                     members: list[RunningServer]) -> None:
    ns = "failover-e2e"
    async with contextlib.AsyncExitStack() as stack:
        fed = await stack.enter_async_context(federation(apiserver))
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        member_clients = []
        for i, server in enumerate(members, 1):
            mc = await stack.enter_async_context(Client.from_kubeconfig(server.kubeconfig))
            member_clients.append(mc)
            for c in (SimulatedNodes(mc, [NodeSpec(f"f{i}-node-0")], renew_interval=5), MemberScheduler(mc),
                      DeploymentController(mc), ReplicaSetController(mc)):
                tasks.append(asyncio.create_task(c.run(stop)))
            await join(fed.client, f"failover-m{i}", server.kubeconfig)
        for fc in (Detector(fed.client), SchedulerController(fed.client), BindingController(fed.client),
                   BindingStatusController(fed.client), ClusterTaintManager(fed.client),
                   GracefulEvictionController(fed.client)):
            tasks.append(asyncio.create_task(fc.run(stop)))
        try:
            await fed.client.create(NAMESPACES, {"metadata": {"name": ns}})
            await fed.client.create(DEPLOYMENTS, {
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
                "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
            await fed.client.create(PROPAGATION_POLICIES, {
                "apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
                "metadata": {"name": "web", "namespace": ns},
                "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}],
                         "placement": {"clusterAffinity": {"clusterNames": ["failover-m1", "failover-m2"]},
                                       "replicaScheduling": {"replicaSchedulingType": "Divided",
                                                             "replicaDivisionPreference": "Weighted"}}}})

            async def member_ready(index: int, replicas: int) -> bool:
                try:
                    d = await member_clients[index].get(DEPLOYMENTS, "web", ns)
                except NotFound:
                    return False
                return bool(d["spec"].get("replicas") == replicas and (d.get("status") or {}).get(
                    "availableReplicas") == replicas)

            await eventually(lambda: member_ready(0, 2), timeout=30)
            await eventually(lambda: member_ready(1, 2), timeout=30)

            # Maintenance on member 1: a NoExecute taint nobody tolerates.
            await taint(fed.client, "failover-m1", {"key": "example.com/maintenance", "effect": "NoExecute",
                                                    "timeAdded": rfc3339(time.time())})
            seen_task: list[Obj] = []

            async def moved() -> bool:
                rb = await fed.client.get(RESOURCE_BINDINGS, "web-deployment", ns)
                seen_task.extend(rb["spec"].get("gracefulEvictionTasks") or [])
                return bool(seen_task) and rb["spec"].get("clusters") == [{"name": "failover-m2", "replicas": 4}]

            await eventually(moved, timeout=30)
            assert seen_task[0]["fromCluster"] == "failover-m1" and seen_task[0]["reason"] == "TaintUntolerated"
            await eventually(lambda: member_ready(1, 4), timeout=30)

            # Healthy on member 2: the eviction completes and member 1's copy goes.
            async def old_copy_gone() -> bool:
                try:
                    await member_clients[0].get(DEPLOYMENTS, "web", ns)
                except NotFound:
                    return True
                return False

            await eventually(old_copy_gone, timeout=30)
            rb = await fed.client.get(RESOURCE_BINDINGS, "web-deployment", ns)
            assert not rb["spec"].get("gracefulEvictionTasks")

            # The template's status counted the old copy while it ran; now only member 2's replicas.
            async def template_available(n: int) -> bool:
                d = await fed.client.get(DEPLOYMENTS, "web", ns)
                return bool((d.get("status") or {}).get("availableReplicas") == n)

            await eventually(lambda: template_available(4))
        finally:
            stop.set()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 10)
