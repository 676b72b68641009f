"""Work status controller: status reflection and health per kind (table-driven), and a real member read back.

The integration test runs the member's own Deployment, ReplicaSet and scheduler controllers
with simulated nodes against a real member API server, so the Deployment's status in the
Work is what the member's controllers really wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from atoll.api.errors import NotFound
from atoll.client import Client, Resource
from atoll.cluster.controllers.deployment import DeploymentController
from atoll.cluster.controllers.replicaset import ReplicaSetController
from atoll.cluster.kubelet.simulated import NodeSpec, SimulatedNodes
from atoll.cluster.scheduler.controller import SchedulerController
from atoll.federation import kinds
from atoll.federation.clusters import join
from atoll.federation.workstatus import (
    HEALTHY,
    UNHEALTHY,
    interpret_health,
    manifest_status,
    merge_statuses,
    reflect_status,
)
from tests.conftest import RunningServer, stop_process
from tests.federation.clusters.harness import ensure_namespace, federation, start_member
from tests.waiting import eventually

DEPLOYMENTS = Resource("apps/v1", "deployments", True, "Deployment")
ES = "karmada-es-member-w"


def obj(kind: str, api_version: str = "apps/v1", *, generation: int = 1, spec: dict[str, Any] | None = None,
        status: dict[str, Any] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": "x", "namespace": "n", "generation": generation}
    if annotations:
        md["annotations"] = annotations
    out: dict[str, Any] = {"apiVersion": api_version, "kind": kind, "metadata": md, "spec": spec or {}}
    if status is not None:
        out["status"] = status
    return out


@pytest.mark.parametrize(("item", "health"), [
    (obj("Deployment", spec={"replicas": 3}, status={"observedGeneration": 1, "updatedReplicas": 3,
                                                     "availableReplicas": 3}), HEALTHY),
    (obj("Deployment", generation=2, spec={"replicas": 3},
         status={"observedGeneration": 1, "updatedReplicas": 3, "availableReplicas": 3}), UNHEALTHY),
    (obj("Deployment", spec={"replicas": 3}, status={"observedGeneration": 1, "updatedReplicas": 2,
                                                     "availableReplicas": 2}), UNHEALTHY),
    (obj("Deployment", spec={"replicas": 3}, status={"observedGeneration": 1, "updatedReplicas": 3,
                                                     "availableReplicas": 2}), UNHEALTHY),
    (obj("StatefulSet", spec={"replicas": 1}, status={"observedGeneration": 1, "updatedReplicas": 1,
                                                      "availableReplicas": 1}), HEALTHY),
    (obj("ReplicaSet", spec={"replicas": 2}, status={"observedGeneration": 1, "availableReplicas": 1}), UNHEALTHY),
    (obj("DaemonSet", status={"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2,
                              "numberAvailable": 2}), HEALTHY),
    (obj("DaemonSet", status={"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 1,
                              "numberAvailable": 1}), UNHEALTHY),
    (obj("Service", "v1", spec={"type": "ClusterIP"}), HEALTHY),
    (obj("Service", "v1", spec={"type": "LoadBalancer"}, status={"loadBalancer": {}}), UNHEALTHY),
    (obj("Service", "v1", spec={"type": "LoadBalancer"},
         status={"loadBalancer": {"ingress": [{"ip": "127.0.0.9"}]}}), HEALTHY),
    (obj("Ingress", "networking.k8s.io/v1", status={"loadBalancer": {"ingress": [{"hostname": "h"}]}}), HEALTHY),
    (obj("PersistentVolumeClaim", "v1", status={"phase": "Pending"}), UNHEALTHY),
    (obj("PersistentVolumeClaim", "v1", status={"phase": "Bound"}), HEALTHY),
    (obj("Pod", "v1", status={"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}), HEALTHY),
    (obj("Pod", "v1", status={"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}),
     UNHEALTHY),
    (obj("Pod", "v1", status={"phase": "Succeeded"}), HEALTHY),
    (obj("PodDisruptionBudget", "policy/v1", status={"currentHealthy": 1, "desiredHealthy": 2}), UNHEALTHY),
    (obj("ConfigMap", "v1"), HEALTHY),  # no interpreter: healthy
])
def test_interpret_health(item: dict[str, Any], health: str) -> None:
    assert interpret_health(item) == health


@pytest.mark.parametrize(("item", "reflected"), [
    (obj("Deployment", generation=4, annotations={"resourcetemplate.karmada.io/generation": "7"},
         status={"observedGeneration": 4, "replicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                 "updatedReplicas": 2, "conditions": [{"type": "Available"}], "collisionCount": 1}),
     {"generation": 4, "resourceTemplateGeneration": 7, "observedGeneration": 4, "replicas": 2,
      "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2}),
    (obj("Deployment", generation=0, status={}), None),  # nothing collected yet
    (obj("StatefulSet", generation=2, status={"observedGeneration": 2, "replicas": 3, "readyReplicas": 3,
                                              "currentRevision": "r1", "collisionCount": 0}),
     {"generation": 2, "observedGeneration": 2, "replicas": 3, "readyReplicas": 3}),
    (obj("Service", "v1", spec={"type": "ClusterIP"}, status={"loadBalancer": {}}), None),
    (obj("Service", "v1", spec={"type": "LoadBalancer"}, status={"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]},
                                                                 "conditions": []}),
     {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}),
    (obj("Job", "batch/v1", status={"active": 1, "succeeded": 0, "startTime": "t", "uncountedTerminatedPods": {}}),
     {"active": 1, "startTime": "t"}),
    (obj("HorizontalPodAutoscaler", "autoscaling/v2", status={"currentReplicas": 3, "desiredReplicas": 5,
                                                              "conditions": [{}]}),
     {"currentReplicas": 3, "desiredReplicas": 5}),
    (obj("Widget", "example.io/v1", status={"phase": "Spinning", "x": [1]}), {"phase": "Spinning", "x": [1]}),
    (obj("Widget", "example.io/v1"), None),
])
def test_reflect_status(item: dict[str, Any], reflected: dict[str, Any] | None) -> None:
    assert reflect_status(item) == reflected


def test_manifest_status_identifier_and_merge() -> None:
    work = {"spec": {"workload": {"manifests": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "namespace": "n"}}]}}}
    member = obj("Deployment", spec={"replicas": 1}, status={"observedGeneration": 1, "replicas": 1})
    entry = manifest_status(work, member, DEPLOYMENTS)
    assert entry == {"identifier": {"ordinal": 1, "group": "apps", "version": "v1", "kind": "Deployment",
                                    "namespace": "n", "name": "x", "resource": "deployments"},
                     "health": UNHEALTHY, "status": {"generation": 1, "observedGeneration": 1, "replicas": 1}}
    other = {"identifier": {"ordinal": 0, "group": "", "version": "v1", "kind": "ConfigMap", "namespace": "n",
                            "name": "c", "resource": "configmaps"}, "health": HEALTHY}
    merged = merge_statuses([entry], other)
    assert [e["identifier"]["ordinal"] for e in merged] == [0, 1]
    newer = {**entry, "health": HEALTHY}
    assert merge_statuses(merged, newer) == [other, newer]
    assert manifest_status(work, obj("Deployment") | {"metadata": {"name": "y", "namespace": "n"}},
                           DEPLOYMENTS) is None


# -- integration ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_member(tmp_path_factory.mktemp("member-w") / "state", name="member-w")
    try:
        yield server
    finally:
        stop_process(server.process)


def deployment(replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "shop", "labels": {"app": "api"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "api"}},
                     "template": {"metadata": {"labels": {"app": "api"}},
                                  "spec": {"containers": [{"name": "c", "image": "echo",
                                                           "resources": {"requests": {"cpu": "100m"}}}]}}}}


async def test_member_status_reflected_and_drift_corrected(apiserver: RunningServer, member: RunningServer) -> None:
    async with federation(apiserver) as fed, Client.from_kubeconfig(member.kubeconfig) as mc:
        stop = asyncio.Event()
        sim = SimulatedNodes(mc, [NodeSpec("w-node-0")], renew_interval=5)
        member_side = [sim, SchedulerController(mc), DeploymentController(mc), ReplicaSetController(mc)]
        tasks = [asyncio.create_task(c.run(stop)) for c in member_side]
        try:
            await join(fed.client, "member-w", member.kubeconfig)
            await ensure_namespace(fed.client, ES)
            await fed.client.create(kinds.WORKS, {
                "apiVersion": kinds.WORK_V1ALPHA1, "kind": "Work", "metadata": {"name": "api-1", "namespace": ES},
                "spec": {"workload": {"manifests": [deployment(2)]}}})

            async def healthy(replicas: int) -> dict[str, Any] | None:
                w = await fed.client.get(kinds.WORKS, "api-1", ES)
                for entry in (w.get("status") or {}).get("manifestStatuses") or []:
                    if entry.get("health") == HEALTHY and (entry.get("status") or {}).get(
                            "availableReplicas") == replicas:
                        return entry
                return None

            entry = await eventually(lambda: healthy(2), timeout=20)
            assert entry["identifier"] == {"ordinal": 0, "group": "apps", "version": "v1", "kind": "Deployment",
                                           "namespace": "shop", "name": "api", "resource": "deployments"}
            assert entry["status"]["readyReplicas"] == 2 and entry["status"]["generation"] >= 1

            # Someone scales the member copy: the Work's replicas are written back.
            await mc.patch(DEPLOYMENTS, "api", {"spec": {"replicas": 5}}, "shop")

            async def replicas_are(n: int) -> bool:
                try:
                    return bool((await mc.get(DEPLOYMENTS, "api", "shop"))["spec"]["replicas"] == n)
                except NotFound:
                    return False

            await eventually(lambda: replicas_are(2), timeout=10)

            # A label added in the member is member metadata: it stays.
            await mc.patch(DEPLOYMENTS, "api", {"metadata": {"labels": {"team": "ops"}}}, "shop")
            await asyncio.sleep(0.5)
            got = await mc.get(DEPLOYMENTS, "api", "shop")
            assert got["metadata"]["labels"]["team"] == "ops" and got["spec"]["replicas"] == 2

            # Someone deletes it: created again from the Work, and healthy again.
            await mc.delete(DEPLOYMENTS, "api", "shop")
            await eventually(lambda: replicas_are(2), timeout=10)
            await eventually(lambda: healthy(2), timeout=20)

            await fed.client.delete(kinds.WORKS, "api-1", ES)

            async def gone() -> bool:
                try:
                    await mc.get(DEPLOYMENTS, "api", "shop")
                except NotFound:
                    return True
                return False

            await eventually(gone, timeout=10)
        finally:
            stop.set()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 10)
