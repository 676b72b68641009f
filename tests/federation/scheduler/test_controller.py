"""The scheduler controller over a real API server serving Karmada's CRDs."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import shutil
from collections.abc import AsyncIterator
from typing import Any

import pytest

from atoll.api.errors import AlreadyExists
from atoll.client import Client, Resource
from atoll.federation.scheduler.controller import (
    APPLIED_PLACEMENT,
    CLUSTER_RESOURCE_BINDINGS,
    CLUSTERS,
    RESOURCE_BINDINGS,
    SchedulerController,
    placement_changed,
    replicas_changed,
)
from tests.conftest import RunningServer
from tests.waiting import eventually

Obj = dict[str, Any]
NSS = Resource("v1", "namespaces", namespaced=False)
EVENTS = Resource("v1", "events", True, "Event")
CRDS = Resource("apiextensions.k8s.io/v1", "customresourcedefinitions", False, "CustomResourceDefinition")
NS = "fedsched"


def _minimal_crd(res: Resource) -> Obj:
    group, version = res.api_version.split("/")
    singular = res.kind.lower()
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{res.plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced" if res.namespaced else "Cluster",
                     "names": {"plural": res.plural, "singular": singular, "kind": res.kind},
                     "versions": [{"name": version, "served": True, "storage": True,
                                   "subresources": {"status": {}}, "schema": {"openAPIV3Schema": schema}}]}}


async def install_crds(client: Client) -> None:
    """The federation's CRDs when that module is there, else minimal ones (unknown fields preserved)."""
    try:
        from atoll.federation.crds import install
    except ImportError:
        for res in (CLUSTERS, RESOURCE_BINDINGS, CLUSTER_RESOURCE_BINDINGS):
            with contextlib.suppress(AlreadyExists):
                await client.create(CRDS, _minimal_crd(res))

        async def served() -> bool:
            plurals = {r["name"] for r in await client.api_resources(CLUSTERS.api_version)}
            plurals |= {r["name"] for r in await client.api_resources(RESOURCE_BINDINGS.api_version)}
            return {"clusters", "resourcebindings", "clusterresourcebindings"} <= plurals

        await eventually(served, 20)
        client.invalidate_discovery()
        return
    await install(client)


def cluster(name: str, *, region: str, pods: int, labels: dict[str, str] | None = None) -> tuple[Obj, Obj]:
    obj = {"apiVersion": CLUSTERS.api_version, "kind": "Cluster",
           "metadata": {"name": name, "labels": labels or {}},
           "spec": {"provider": "atoll", "region": region, "zones": [f"{region}-a"], "syncMode": "Push",
                    "apiEndpoint": "https://127.0.0.1:6443"}}
    status = {"apiEnablements": [{"groupVersion": "apps/v1", "resources": [{"name": "deployments",
                                                                            "kind": "Deployment"}]},
                                 {"groupVersion": "v1", "resources": [{"name": "configmaps", "kind": "ConfigMap"}]},
                                 {"groupVersion": "rbac.authorization.k8s.io/v1",
                                  "resources": [{"name": "clusterroles", "kind": "ClusterRole"}]}],
              "resourceSummary": {"allocatable": {"cpu": "100", "memory": "100Gi", "pods": str(pods)},
                                  "allocated": {"cpu": "0", "memory": "0", "pods": "0"}}}
    return obj, status


def binding(name: str, placement: Obj, *, replicas: int = 0, kind: str = "Deployment", uid: str = "",
            namespaced: bool = True) -> Obj:
    api_version = "apps/v1" if kind == "Deployment" else ("v1" if kind == "ConfigMap"
                                                            else "rbac.authorization.k8s.io/v1")
    resource = {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid or f"uid-{name}"}
    res = RESOURCE_BINDINGS if namespaced else CLUSTER_RESOURCE_BINDINGS
    md: Obj = {"name": f"{name}-{kind.lower()}"}
    if namespaced:
        md["namespace"] = NS
        resource["namespace"] = NS
    spec: Obj = {"resource": resource, "placement": placement}
    if replicas:
        spec["replicas"] = replicas
        spec["replicaRequirements"] = {"resourceRequest": {"cpu": "100m"}}
    return {"apiVersion": res.api_version, "kind": res.kind, "metadata": md, "spec": spec}


DIVIDED_1_2 = {"clusterAffinity": {"clusterNames": ["member1", "member2"]},
               "replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
                                     "weightPreference": {"staticWeightList": [
                                         {"targetCluster": {"clusterNames": ["member1"]}, "weight": 1},
                                         {"targetCluster": {"clusterNames": ["member2"]}, "weight": 2}]}}}
DYNAMIC = {"replicaScheduling": {"replicaSchedulingType": "Divided", "replicaDivisionPreference": "Weighted",
                                 "weightPreference": {"dynamicWeight": "AvailableReplicas"}}}


@contextlib.asynccontextmanager
async def running(client: Client) -> AsyncIterator[SchedulerController]:
    controller = SchedulerController(client)
    stop = asyncio.Event()
    task = asyncio.create_task(controller.run(stop))
    try:
        yield controller
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def targets(obj: Obj) -> dict[str, int]:
    return {c["name"]: c.get("replicas", 0) for c in (obj.get("spec") or {}).get("clusters") or []}


def scheduled(obj: Obj) -> Obj:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Scheduled"), {})


async def test_controller_places_scales_falls_back_and_reports(apiserver: RunningServer) -> None:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await install_crds(client)
        await client.create(NSS, {"metadata": {"name": NS}})
        for name, region, pods in (("member1", "us", 10), ("member2", "eu", 20), ("member3", "ap", 30)):
            obj, status = cluster(name, region=region, pods=pods, labels={"env": "prod" if name != "member3"
                                                                                else "dev"})
            await client.create(CLUSTERS, obj)
            await client.patch_status(CLUSTERS, name, {"status": status})

        async with running(client) as controller:
            async def get(res: Resource, name: str) -> Obj:
                return await client.get(res, name, NS if res.namespaced else None)

            # Static weights 1:2 over member1 and member2, 3 replicas.
            await client.create(RESOURCE_BINDINGS, binding("web", DIVIDED_1_2, replicas=3))

            async def placed(res: Resource, name: str, want: dict[str, int]) -> Obj | None:
                obj = await get(res, name)
                ok = targets(obj) == want and scheduled(obj).get("status") == "True" and \
                    (obj.get("status") or {}).get("schedulerObservedGeneration") == obj["metadata"]["generation"]
                return obj if ok else None

            web = await eventually(lambda: placed(RESOURCE_BINDINGS, "web-deployment", {"member1": 1, "member2": 2}))
            assert scheduled(web)["reason"] == "Success"
            assert web["status"]["lastScheduledTime"]
            assert APPLIED_PLACEMENT in web["metadata"]["annotations"]

            # Scaling up redivides by the weights.
            await client.patch(RESOURCE_BINDINGS, "web-deployment", {"spec": {"replicas": 6}}, NS)
            await eventually(lambda: placed(RESOURCE_BINDINGS, "web-deployment", {"member1": 2, "member2": 4}))

            # Failover takes member2's replicas away and records an eviction task: the scheduler places
            # them elsewhere, never back on the cluster being evicted from.
            await client.patch(RESOURCE_BINDINGS, "web-deployment", {"spec": {
                "clusters": [{"name": "member1", "replicas": 2}],
                "gracefulEvictionTasks": [{"fromCluster": "member2", "reason": "TaintUntolerated",
                                           "producer": "taint-manager"}]}}, NS)
            await eventually(lambda: placed(RESOURCE_BINDINGS, "web-deployment", {"member1": 6}))

            # Dynamic weight: free pod slots 10:20:30 for 12 replicas.
            await client.create(RESOURCE_BINDINGS, binding("api", DYNAMIC, replicas=12))
            await eventually(lambda: placed(RESOURCE_BINDINGS, "api-deployment",
                                            {"member1": 2, "member2": 4, "member3": 6}))
            # Scale down: in proportion to the current assignment.
            await client.patch(RESOURCE_BINDINGS, "api-deployment", {"spec": {"replicas": 6}}, NS)
            await eventually(lambda: placed(RESOURCE_BINDINGS, "api-deployment",
                                            {"member1": 1, "member2": 2, "member3": 3}))

            # Room moves (a status write: nothing is rescheduled for it) and the user triggers a fresh
            # reschedule with kubectl: everything is divided again by room, current replicas counted.
            await client.patch_status(CLUSTERS, "member1", {"status": {"resourceSummary": {
                "allocatable": {"pods": "100"}}}})
            for name, pods in (("member2", "20"), ("member3", "30")):
                await client.patch_status(CLUSTERS, name, {"status": {"resourceSummary": {"allocated": {
                    "pods": pods}}}})
            trigger = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
            if shutil.which("kubectl"):
                await asyncio.to_thread(apiserver.kubectl, "patch", "resourcebinding", "api-deployment", "-n", NS,
                                        "--type", "merge", "-p",
                                        json.dumps({"spec": {"rescheduleTriggeredAt": trigger}}))
            else:
                await client.patch(RESOURCE_BINDINGS, "api-deployment", {"spec": {"rescheduleTriggeredAt": trigger}},
                                   NS)
            await eventually(lambda: placed(RESOURCE_BINDINGS, "api-deployment", {"member1": 6}))

            # Nothing fits: NoClusterFit with Karmada's message, and a warning Event.
            await client.create(RESOURCE_BINDINGS, binding("lost", {"clusterAffinity": {"clusterNames": ["nope"]}},
                                                           replicas=1))

            async def unfit() -> Obj | None:
                cond = scheduled(await get(RESOURCE_BINDINGS, "lost-deployment"))
                return cond if cond.get("reason") == "NoClusterFit" else None

            cond = await eventually(unfit)
            assert cond["status"] == "False"
            assert cond["message"] == ("0/3 clusters are available: 3 cluster(s) did not match the placement "
                                       "cluster affinity constraint.")

            # Ordered affinities: the first term selects nothing, the second takes over.
            terms = {"clusterAffinities": [{"affinityName": "primary", "clusterNames": ["nope"]},
                                           {"affinityName": "backup", "labelSelector": {
                                               "matchLabels": {"env": "dev"}}}]}
            await client.create(RESOURCE_BINDINGS, binding("db", terms, replicas=2))
            db = await eventually(lambda: placed(RESOURCE_BINDINGS, "db-deployment", {"member3": 2}))
            assert db["status"]["schedulerObservingAffinityName"] == "backup"

            # A ConfigMap (no replicas) is Duplicated to every cluster, without a count.
            await client.create(RESOURCE_BINDINGS, binding("settings", {}, kind="ConfigMap"))
            await eventually(lambda: placed(RESOURCE_BINDINGS, "settings-configmap",
                                            {"member1": 0, "member2": 0, "member3": 0}))

            # A cluster-scoped template: ClusterResourceBinding; a tainted cluster is left out.
            await client.patch(CLUSTERS, "member3", {"spec": {"taints": [{"key": "maintenance",
                                                                          "effect": "NoSchedule"}]}})
            await client.create(CLUSTER_RESOURCE_BINDINGS, binding("reader", {}, kind="ClusterRole",
                                                                   namespaced=False))
            await eventually(lambda: placed(CLUSTER_RESOURCE_BINDINGS, "reader-clusterrole",
                                            {"member1": 0, "member2": 0}))
            # The running ConfigMap keeps member3 (the taint manager evicts, not the scheduler).
            assert targets(await get(RESOURCE_BINDINGS, "settings-configmap")) == \
                {"member1": 0, "member2": 0, "member3": 0}

            # A new cluster matching the affinity brings the unfit binding back.
            obj, status = cluster("nope", region="sa", pods=5)
            await client.create(CLUSTERS, obj)
            await client.patch_status(CLUSTERS, "nope", {"status": status})
            await eventually(lambda: placed(RESOURCE_BINDINGS, "lost-deployment", {"nope": 1}))

            # A cluster that goes away: what ran there is placed again on the others (nothing else changed).
            even = {"clusterAffinity": {"clusterNames": ["nope", "member1"]},
                    "replicaScheduling": {"replicaSchedulingType": "Divided",
                                          "replicaDivisionPreference": "Weighted"}}
            await client.create(RESOURCE_BINDINGS, binding("edge", even, replicas=4))
            await eventually(lambda: placed(RESOURCE_BINDINGS, "edge-deployment", {"member1": 2, "nope": 2}))
            await client.delete(CLUSTERS, "nope")
            await eventually(lambda: placed(RESOURCE_BINDINGS, "edge-deployment", {"member1": 4}))

            # Events on the binding and on the template, with Karmada's reasons and messages.
            async def events_for(name: str) -> list[Obj]:
                items = (await client.list(EVENTS, NS))["items"]
                return [e for e in items if e["involvedObject"]["name"] == name]

            evs = await eventually(lambda: events_for("web"))
            assert any(e["reason"] == "ScheduleBindingSucceed" and e["message"] ==
                       "Binding has been scheduled successfully. Result: {member1:1, member2:2}" for e in evs)
            failed = [e for e in await events_for("lost-deployment") if e["reason"] == "ScheduleBindingFailed"]
            assert failed and failed[0]["type"] == "Warning"
            assert controller.metrics.get_sample_value(
                "karmada_scheduler_e2e_scheduling_duration_seconds_count",
                {"result": "scheduled", "schedule_type": "ScaleSchedule"}) >= 2


@pytest.mark.parametrize(("placement", "applied", "observed", "want"), [
    ({"clusterAffinity": {"clusterNames": ["a"]}}, "", "", True),  # never scheduled
    ({"clusterAffinity": {"clusterNames": ["a"]}}, '{"clusterAffinity":{"clusterNames":["a"]}}', "", False),
    ({"clusterAffinity": {"clusterNames": ["b"]}}, '{"clusterAffinity":{"clusterNames":["a"]}}', "", True),
    # Only the term in use counts for ordered affinities.
    ({"clusterAffinities": [{"affinityName": "x", "clusterNames": ["a"]}, {"affinityName": "y"}]},
     '{"clusterAffinities":[{"affinityName":"x","clusterNames":["a"]},{"affinityName":"y","exclude":["q"]}]}',
     "x", False),
    ({"clusterAffinities": [{"affinityName": "x", "clusterNames": ["b"]}]},
     '{"clusterAffinities":[{"affinityName":"x","clusterNames":["a"]}]}', "x", True),
    ({"clusterAffinity": {"clusterNames": ["a"]}}, "not json", "", False),
])
def test_placement_changed(placement: Obj, applied: str, observed: str, want: bool) -> None:
    assert placement_changed(placement, applied, observed) is want


@pytest.mark.parametrize(("spec", "want"), [
    ({"replicas": 3, "placement": {}, "clusters": [{"name": "a", "replicas": 1}]}, False),  # no strategy
    ({"replicas": 3, "placement": {"replicaScheduling": {"replicaSchedulingType": "Duplicated"}},
      "clusters": [{"name": "a", "replicas": 3}]}, False),
    ({"replicas": 4, "placement": {"replicaScheduling": {"replicaSchedulingType": "Duplicated"}},
      "clusters": [{"name": "a", "replicas": 3}]}, True),
    ({"replicas": 4, "placement": {"replicaScheduling": {}}, "clusters": [{"name": "a", "replicas": 1},
                                                                          {"name": "b", "replicas": 3}]}, False),
    ({"replicas": 5, "placement": {"replicaScheduling": {}}, "clusters": [{"name": "a", "replicas": 1}]}, True),
])
def test_replicas_changed(spec: Obj, want: bool) -> None:
    assert replicas_changed(spec) is want
