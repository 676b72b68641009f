"""WorkloadRebalancer: the CRD, the request builder, and the controller over a real API server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from atoll.api.errors import NotFound
from atoll.client import Client, Resource
from atoll.federation import crds
from atoll.federation.kinds import CLUSTER_RESOURCE_BINDINGS, CLUSTERS, RESOURCE_BINDINGS
from atoll.federation.rebalance import (
    DEFINITION,
    WORKLOAD_REBALANCERS,
    RebalancerController,
    finished,
    needs_trigger,
    observed_workloads,
    rebalance_request,
    results,
    time_left,
)
from atoll.federation.scheduler.controller import SchedulerController
from atoll.federation.status import parse_time
from tests.conftest import RunningServer
from tests.waiting import eventually

Obj = dict[str, Any]
NAMESPACES = Resource("v1", "namespaces", False, "Namespace")
DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "default", "name": "demo"}
ROLE = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "name": "demo-role"}


# -- pure ---------------------------------------------------------------------------------------------------


def test_rebalance_request_from_references_and_objects() -> None:
    template = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "demo", "namespace": "default"},
                "spec": {"replicas": 3}}
    request = rebalance_request([template, DEPLOY, ROLE], name="demo", ttl_seconds_after_finished=60)
    assert request == {"apiVersion": "apps.karmada.io/v1alpha1", "kind": "WorkloadRebalancer",
                       "metadata": {"name": "demo"},
                       "spec": {"workloads": [DEPLOY, ROLE], "ttlSecondsAfterFinished": 60}}
    assert rebalance_request([ROLE])["metadata"] == {"generateName": "rebalance-"}


@pytest.mark.parametrize("workloads", [[], [{"apiVersion": "apps/v1", "kind": "Deployment"}],
                                       [{"kind": "Deployment", "name": "x"}]])
def test_rebalance_request_rejects(workloads: list[Obj]) -> None:
    with pytest.raises(ValueError):
        rebalance_request(workloads)


@pytest.mark.parametrize(("spec_workloads", "observed", "expected"), [
    ([DEPLOY, ROLE], [], [{"workload": DEPLOY}, {"workload": ROLE}]),
    ([ROLE, DEPLOY], [], [{"workload": DEPLOY}, {"workload": ROLE}]),  # sorted: apps/v1 before rbac...
    ([DEPLOY], [{"workload": DEPLOY, "result": "Successful"}], [{"workload": DEPLOY, "result": "Successful"}]),
    # A workload removed from the spec keeps its success, loses its failure.
    ([DEPLOY], [{"workload": ROLE, "result": "Successful"}],
     [{"workload": DEPLOY}, {"workload": ROLE, "result": "Successful"}]),
    ([DEPLOY], [{"workload": ROLE, "result": "Failed", "reason": "ReferencedBindingNotFound"}],
     [{"workload": DEPLOY}]),
    ([DEPLOY, DEPLOY], [], [{"workload": DEPLOY}]),
])
def test_observed_workloads(spec_workloads: list[Obj], observed: list[Obj], expected: list[Obj]) -> None:
    assert observed_workloads({"workloads": spec_workloads}, {"observedWorkloads": observed}) == expected


T = "2026-01-01T00:00:10Z"


@pytest.mark.parametrize(("created", "triggered", "expected"), [
    (parse_time(T), None, True),
    (parse_time(T), "2026-01-01T00:00:09Z", True),
    (parse_time(T), T, False),  # already triggered by this rebalancer
    (parse_time(T), "2026-01-01T00:00:11Z", False),  # a later rebalancer already did
])
def test_needs_trigger(created: float | None, triggered: str | None, expected: bool) -> None:
    assert needs_trigger(created, triggered) is expected


def test_time_left_and_results() -> None:
    base = parse_time(T)
    assert base is not None
    assert time_left({}, 5, base) is None
    assert time_left({"finishTime": T}, 5, base + 2) == 3
    assert time_left({"finishTime": T}, 0, base + 2) == -2
    rebalancer = {"status": {"finishTime": T, "observedWorkloads": [{"workload": DEPLOY, "result": "Successful"}]}}
    assert finished(rebalancer) and not finished({})
    assert results(rebalancer) == [(DEPLOY, "Successful", "")]


def test_definition_is_karmadas() -> None:
    crd = DEFINITION.manifest()
    assert crd["metadata"]["name"] == "workloadrebalancers.apps.karmada.io"
    assert crd["spec"]["scope"] == "Cluster"
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["properties"]["spec"]["required"] == ["workloads"]
    assert schema["properties"]["spec"]["properties"]["workloads"]["minItems"] == 1


# -- over the API server ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(apiserver: RunningServer) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await crds.install(client, definitions=[*crds.DEFINITIONS, DEFINITION])
        stop = asyncio.Event()
        controller = RebalancerController(client)
        task = asyncio.create_task(controller.run(stop))
        try:
            yield client
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)


async def make_binding(client: Client, ref: Obj) -> Obj:
    namespace = ref.get("namespace")
    resource = RESOURCE_BINDINGS if namespace else CLUSTER_RESOURCE_BINDINGS
    name = f"{ref['name']}-{ref['kind']}".lower()
    return await client.create(resource, {
        "apiVersion": "work.karmada.io/v1alpha2", "kind": resource.kind,
        "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
        "spec": {"resource": ref, "clusters": [{"name": "member1", "replicas": 1}]}})


async def test_rebalancer_triggers_bindings_reports_and_expires(apiserver: RunningServer) -> None:
    ns = "rebalance"
    deploy = {**DEPLOY, "namespace": ns}
    missing = {**DEPLOY, "namespace": ns, "name": "missing"}
    async with running(apiserver) as client:
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        await make_binding(client, deploy)
        await make_binding(client, ROLE)
        # As in Karmada's documentation, through kubectl.
        manifest = f"""apiVersion: apps.karmada.io/v1alpha1
kind: WorkloadRebalancer
metadata:
  name: demo
spec:
  workloads:
    - apiVersion: apps/v1
      kind: Deployment
      name: demo
      namespace: {ns}
    - apiVersion: apps/v1
      kind: Deployment
      name: missing
      namespace: {ns}
    - apiVersion: rbac.authorization.k8s.io/v1
      kind: ClusterRole
      name: demo-role
"""
        apiserver.kubectl("apply", "-f", "-", input=manifest)

        async def done() -> Obj | None:
            r = await client.get(WORKLOAD_REBALANCERS, "demo")
            return r if finished(r) else None

        rebalancer = await eventually(done)
        created = rebalancer["metadata"]["creationTimestamp"]
        assert rebalancer["status"]["observedWorkloads"] == [
            {"workload": deploy, "result": "Successful"},
            {"workload": missing, "result": "Failed", "reason": "ReferencedBindingNotFound"},
            {"workload": ROLE, "result": "Successful"}]
        assert rebalancer["status"]["observedGeneration"] == rebalancer["metadata"]["generation"]
        rb = await client.get(RESOURCE_BINDINGS, "demo-deployment", ns)
        crb = await client.get(CLUSTER_RESOURCE_BINDINGS, "demo-role-clusterrole")
        assert rb["spec"]["rescheduleTriggeredAt"] == crb["spec"]["rescheduleTriggeredAt"] == created
        table = apiserver.kubectl("get", "workloadrebalancers")
        assert "demo" in table.stdout

        # A workload added to the list is handled; results already reported are final (Karmada's rule), so
        # the binding of "missing" appearing now changes nothing, and "demo" is not triggered twice.
        await make_binding(client, missing)
        before = rb["metadata"]["resourceVersion"]
        rebalancer["spec"]["workloads"] = [deploy, missing, ROLE, {**missing, "name": "x"}]
        await client.replace(WORKLOAD_REBALANCERS, rebalancer)

        async def x_failed() -> Obj | None:
            r = await client.get(WORKLOAD_REBALANCERS, "demo")
            names = {i["workload"]["name"]: i.get("result") for i in (r.get("status") or {}).get(
                "observedWorkloads") or []}
            return r if names.get("x") == "Failed" else None

        r = await eventually(x_failed)
        assert [i.get("result") for i in r["status"]["observedWorkloads"]] == ["Successful", "Failed", "Failed",
                                                                              "Successful"]
        assert (await client.get(RESOURCE_BINDINGS, "demo-deployment", ns))["metadata"]["resourceVersion"] == before
        assert "rescheduleTriggeredAt" not in (await client.get(RESOURCE_BINDINGS, "missing-deployment", ns))["spec"]

    # ttlSecondsAfterFinished: deleted once finished that long ago.
    async with running(apiserver) as client:
        request = rebalance_request([deploy], name="short-lived", ttl_seconds_after_finished=1)
        await client.create(WORKLOAD_REBALANCERS, request)

        async def deleted() -> bool:
            try:
                await client.get(WORKLOAD_REBALANCERS, "short-lived")
            except NotFound:
                return True
            return False

        await eventually(deleted, timeout=10)
        rb = await client.get(RESOURCE_BINDINGS, "demo-deployment", ns)
        assert parse_time(rb["spec"]["rescheduleTriggeredAt"]) is not None


def _cluster(name: str) -> Obj:
    return {"apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster", "metadata": {"name": name},
            "spec": {"provider": "atoll", "region": "r", "syncMode": "Push", "apiEndpoint": "https://127.0.0.1:1"}}


def _capacity(pods: int) -> Obj:
    return {"apiEnablements": [{"groupVersion": "apps/v1", "resources": [{"name": "deployments",
                                                                          "kind": "Deployment"}]}],
            "resourceSummary": {"allocatable": {"cpu": "100", "memory": "100Gi", "pods": str(pods)},
                                "allocated": {"cpu": "0", "memory": "0", "pods": "0"}}}


async def test_rebalance_makes_the_scheduler_start_from_scratch(apiserver: RunningServer) -> None:
    """Karmada's use case: replicas piled on one cluster stay there until a rebalance spreads them."""
    ns = "rebalance-dynamic"
    async with running(apiserver) as client:
        stop = asyncio.Event()
        scheduler = asyncio.create_task(SchedulerController(client).run(stop))
        try:
            await client.create(NAMESPACES, {"metadata": {"name": ns}})
            for name, pods in (("rebal-a", 20), ("rebal-b", 0)):
                await client.create(CLUSTERS, _cluster(name))
                await client.patch_status(CLUSTERS, name, {"status": _capacity(pods)})
            await client.create(RESOURCE_BINDINGS, {
                "apiVersion": "work.karmada.io/v1alpha2", "kind": "ResourceBinding",
                "metadata": {"name": "web-deployment", "namespace": ns},
                "spec": {"resource": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": ns,
                                      "uid": "uid-web"},
                         "replicas": 4, "replicaRequirements": {"resourceRequest": {"cpu": "100m"}},
                         "placement": {"clusterAffinity": {"clusterNames": ["rebal-a", "rebal-b"]},
                                       "replicaScheduling": {"replicaSchedulingType": "Divided",
                                                             "replicaDivisionPreference": "Weighted",
                                                             "weightPreference": {
                                                                 "dynamicWeight": "AvailableReplicas"}}}}})

            async def placed(expected: dict[str, int]) -> Obj | None:
                rb = await client.get(RESOURCE_BINDINGS, "web-deployment", ns)
                got = {c["name"]: c.get("replicas", 0) for c in rb["spec"].get("clusters") or []}
                return rb if got == expected else None

            first = await eventually(lambda: placed({"rebal-a": 4}))
            # rebal-b gains capacity: the scheduler keeps what runs (nothing asks it to move).
            await client.patch_status(CLUSTERS, "rebal-b", {"status": _capacity(20)})
            await asyncio.sleep(0.5)
            assert await placed({"rebal-a": 4})
            # Timestamps have whole seconds, and the scheduler acts on a trigger *after* its last run.
            last = parse_time(first["status"]["lastScheduledTime"])
            assert last is not None
            await asyncio.sleep(max(0.0, last + 1.05 - time.time()))
            await client.create(WORKLOAD_REBALANCERS, rebalance_request(
                [{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": ns, "name": "web"}], name="spread"))
            after = await eventually(lambda: placed({"rebal-a": 2, "rebal-b": 2}))
            assert after["status"]["lastScheduledTime"] >= first["status"]["lastScheduledTime"]
            assert after["spec"]["rescheduleTriggeredAt"]
        finally:
            stop.set()
            await asyncio.wait_for(scheduler, 10)
