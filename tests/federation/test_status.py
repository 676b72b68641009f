"""Binding status: Work statuses into aggregatedStatus/FullyApplied, and per-kind aggregation into templates."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from atoll.client import Client, Resource
from atoll.cluster.controllers.deployment import DeploymentController
from atoll.cluster.controllers.replicaset import ReplicaSetController
from atoll.cluster.kubelet.simulated import NodeSpec, SimulatedNodes
from atoll.cluster.scheduler.controller import SchedulerController as MemberScheduler
from atoll.federation import crds
from atoll.federation.binding import BindingController
from atoll.federation.clusters import join
from atoll.federation.detector import Detector
from atoll.federation.kinds import CLUSTER_RESOURCE_BINDINGS, RESOURCE_BINDINGS, WORKS
from atoll.federation.scheduler.controller import SchedulerController
from atoll.federation.status import (
    BindingStatusController,
    aggregate_status,
    assemble_work_status,
    dedupe_load_balancer_ingress,
    existing_clusters,
    fully_applied_condition,
    set_condition,
    template_items,
    work_status_item,
)
from tests.conftest import RunningServer, stop_process
from tests.federation.clusters.harness import federation, start_member
from tests.waiting import eventually

Obj = dict[str, Any]
NAMESPACES = Resource("v1", "namespaces", False, "Namespace")
DEPLOYMENTS = Resource("apps/v1", "deployments", True, "Deployment")
CLUSTER_ROLES = Resource("rbac.authorization.k8s.io/v1", "clusterroles", False, "ClusterRole")
NOW = "2026-01-01T00:00:00Z"
REF = {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "default", "name": "nginx"}


def work(cluster: str, *, applied: str | None = "True", message: str = "", status: Obj | None = None,
         health: str | None = "Healthy", ref: Obj = REF, deleting: bool = False, ordinal: int = 0) -> Obj:
    group, _, version = ref["apiVersion"].rpartition("/")
    manifest = {"apiVersion": ref["apiVersion"], "kind": ref["kind"],
                "metadata": {"name": ref["name"], **({"namespace": ref["namespace"]} if ref.get("namespace") else {})}}
    st: Obj = {}
    if applied is not None:
        st["conditions"] = [{"type": "Applied", "status": applied, "reason": "x", "message": message,
                             "lastTransitionTime": NOW}]
    identifier = {"ordinal": ordinal, "group": group, "version": version, "kind": ref["kind"],
                  "namespace": ref.get("namespace", ""), "name": ref["name"], "resource": "deployments"}
    manifest_status: Obj = {"identifier": identifier}
    if status is not None:
        manifest_status["status"] = status
    if health is not None:
        manifest_status["health"] = health
    st["manifestStatuses"] = [manifest_status]
    md: Obj = {"name": "nginx-687f7fb96f", "namespace": f"karmada-es-{cluster}"}
    if deleting:
        md["deletionTimestamp"] = NOW
    return {"metadata": md, "spec": {"workload": {"manifests": [manifest]}}, "status": st}


# -- Works -> aggregatedStatus --------------------------------------------------------------------------


@pytest.mark.parametrize(("w", "expected"), [
    (work("m1", status={"replicas": 2}), {"clusterName": "m1", "applied": True, "health": "Healthy",
                                          "status": {"replicas": 2}}),
    (work("m1", applied="False", message="boom", status={"replicas": 2}),
     {"clusterName": "m1", "applied": False, "health": "Unknown", "appliedMessage": "boom"}),
    (work("m1", applied="Unknown"), {"clusterName": "m1", "applied": False, "health": "Unknown"}),
    (work("m1", applied=None), {"clusterName": "m1", "applied": False, "health": "Unknown"}),
    (work("m1", health=None), {"clusterName": "m1", "applied": True, "health": "Unknown"}),
    (work("m1", health="Unhealthy", status={"replicas": 1}),
     {"clusterName": "m1", "applied": True, "health": "Unhealthy", "status": {"replicas": 1}}),
    (work("m1", deleting=True), None),
    (work("m1", ordinal=1), {"clusterName": "m1", "applied": True, "health": "Unknown"}),  # other manifest's status
    (work("m1", ref={**REF, "name": "other"}), None),  # the Work holds no copy of this template
])
def test_work_status_item(w: Obj, expected: Obj | None) -> None:
    assert work_status_item(w, REF) == expected


def test_items_sorted_by_cluster() -> None:
    items = assemble_work_status([work("m3"), work("m1"), work("m2", deleting=True), work("m2b")], REF)
    assert [i["clusterName"] for i in items] == ["m1", "m2b", "m3"]


@pytest.mark.parametrize(("spec", "applied", "expected"), [
    ({"clusters": [{"name": "a"}, {"name": "b"}]}, {"a": True, "b": True}, "True"),
    ({"clusters": [{"name": "a"}, {"name": "b"}]}, {"a": True, "b": False}, "False"),
    ({"clusters": [{"name": "a"}, {"name": "b"}]}, {"a": True}, "False"),  # b has not reported
    ({"clusters": []}, {}, "False"),  # not scheduled
    ({"clusters": [{"name": "a"}]}, {"a": True, "z": True}, "False"),  # a Work where none is expected
    ({"clusters": [{"name": "a"}], "gracefulEvictionTasks": [{"fromCluster": "b"}]}, {"a": True}, "False"),
    ({"clusters": [{"name": "a"}], "gracefulEvictionTasks": [{"fromCluster": "b"}]}, {"a": True, "b": True},
     "True"),
    ({"clusters": [{"name": "a"}], "gracefulEvictionTasks": [{"fromCluster": "b", "purgeMode": "Directly"}]},
     {"a": True}, "True"),
    ({"clusters": [{"name": "a"}], "requiredBy": [{"name": "x", "clusters": [{"name": "b"}]}]},
     {"a": True, "b": True}, "True"),
])
def test_fully_applied(spec: Obj, applied: dict[str, bool], expected: str) -> None:
    items = [{"clusterName": c, "applied": ok} for c, ok in sorted(applied.items())]
    condition = fully_applied_condition(spec, items)
    assert condition["type"] == "FullyApplied" and condition["status"] == expected
    assert condition["reason"] == ("FullyAppliedSuccess" if expected == "True" else "FullyAppliedFailed")


def test_existing_clusters() -> None:
    assert existing_clusters({"clusters": [{"name": "a"}], "gracefulEvictionTasks": [
        {"fromCluster": "b", "purgeMode": "Gracefully"}, {"fromCluster": "c", "purgeMode": "Directly"}]}) == {"a", "b"}


def test_set_condition_keeps_transition_time_unless_status_moves() -> None:
    old = [{"type": "FullyApplied", "status": "False", "reason": "r", "message": "m", "lastTransitionTime": "t0"},
           {"type": "Scheduled", "status": "True", "reason": "Success", "message": "", "lastTransitionTime": "t0"}]
    same = set_condition(old, {"type": "FullyApplied", "status": "False", "reason": "r2", "message": "m2"}, "t1")
    assert same[0] == {"type": "FullyApplied", "status": "False", "reason": "r2", "message": "m2",
                       "lastTransitionTime": "t0"}
    moved = set_condition(old, {"type": "FullyApplied", "status": "True", "reason": "r", "message": "m"}, "t1")
    assert moved[0]["lastTransitionTime"] == "t1" and moved[1] == old[1]
    added = set_condition([], {"type": "FullyApplied", "status": "True", "reason": "r", "message": "m"}, "t1")
    assert added == [{"type": "FullyApplied", "status": "True", "reason": "r", "message": "m",
                      "lastTransitionTime": "t1"}]


# -- aggregation per kind -------------------------------------------------------------------------------


def item(cluster: str, status: Obj | None) -> Obj:
    return {"clusterName": cluster, "applied": True, "health": "Healthy",
            **({"status": status} if status is not None else {})}


def template(api_version: str, kind: str, *, generation: int = 2, status: Obj | None = None,
             spec: Obj | None = None) -> Obj:
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x", "generation": generation},
            "spec": spec or {}, "status": status or {}}


def deploy(replicas: int, ready: int, *, generation: int = 1, observed: int = 1, template_generation: int = 2,
           **extra: Any) -> Obj:
    return {"replicas": replicas, "readyReplicas": ready, "updatedReplicas": replicas, "availableReplicas": ready,
            "unavailableReplicas": replicas - ready, "generation": generation, "observedGeneration": observed,
            "resourceTemplateGeneration": template_generation, **extra}


DEPLOYMENT_CASES = [
    pytest.param([item("a", deploy(2, 2)), item("b", deploy(1, 0))], {},
                 {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2,
                  "unavailableReplicas": 1, "observedGeneration": 2}, id="summed-and-caught-up"),
    pytest.param([item("a", deploy(2, 2)), item("b", deploy(1, 1, template_generation=1))],
                 {"observedGeneration": 1},
                 {"replicas": 3, "readyReplicas": 3, "updatedReplicas": 3, "availableReplicas": 3,
                  "unavailableReplicas": 0, "observedGeneration": 1}, id="member-has-an-older-template"),
    pytest.param([item("a", deploy(2, 2)), item("b", deploy(1, 1, generation=3, observed=2))],
                 {"observedGeneration": 1},
                 {"replicas": 3, "readyReplicas": 3, "updatedReplicas": 3, "availableReplicas": 3,
                  "unavailableReplicas": 0, "observedGeneration": 1}, id="member-controller-behind"),
    pytest.param([item("a", deploy(2, 2)), item("b", None)], {"observedGeneration": 1, "collisionCount": 1},
                 {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
                  "unavailableReplicas": 0, "observedGeneration": 1, "collisionCount": 1},
                 id="member-without-status-holds-generation-back"),
]


@pytest.mark.parametrize(("items", "old", "expected"), DEPLOYMENT_CASES)
def test_deployment(items: list[Obj], old: Obj, expected: Obj) -> None:
    assert aggregate_status(template("apps/v1", "Deployment", status=old), items, NOW) == expected


def test_deployment_conditions_from_members_that_report_them() -> None:
    ok = [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
          {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]
    stuck = [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
             {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "late"}]
    out = aggregate_status(template("apps/v1", "Deployment"), [item("a", deploy(1, 1, conditions=ok)),
                                                               item("b", deploy(1, 0, conditions=stuck))], NOW)
    assert out is not None
    by_type = {c["type"]: c for c in out["conditions"]}
    assert by_type["Available"]["status"] == "False"
    assert (by_type["Progressing"]["status"], by_type["Progressing"]["reason"]) == ("False",
                                                                                    "ProgressDeadlineExceeded")
    again = aggregate_status(template("apps/v1", "Deployment", status=out),
                             [item("a", deploy(1, 1, conditions=ok)), item("b", deploy(1, 0, conditions=stuck))],
                             "2026-01-02T00:00:00Z")
    assert again == out  # nothing moved: nothing to write


@pytest.mark.parametrize(("api_version", "kind", "members", "expected"), [
    ("apps/v1", "ReplicaSet", [{"replicas": 2, "readyReplicas": 1, "availableReplicas": 1, "observedGeneration": 1,
                                "generation": 1, "resourceTemplateGeneration": 2}, {"replicas": 1}],
     {"replicas": 3, "readyReplicas": 1, "availableReplicas": 1}),
    ("apps/v1", "StatefulSet", [
        {"replicas": 2, "readyReplicas": 2, "currentReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2,
         "generation": 1, "observedGeneration": 1, "resourceTemplateGeneration": 2},
        {"replicas": 1, "readyReplicas": 0, "currentReplicas": 1, "updatedReplicas": 1, "availableReplicas": 0,
         "generation": 1, "observedGeneration": 1, "resourceTemplateGeneration": 2}],
     {"replicas": 3, "readyReplicas": 2, "currentReplicas": 3, "updatedReplicas": 3, "availableReplicas": 2,
      "observedGeneration": 2}),
    ("apps/v1", "DaemonSet", [
        {"currentNumberScheduled": 2, "desiredNumberScheduled": 2, "numberAvailable": 2, "numberMisscheduled": 0,
         "numberReady": 2, "updatedNumberScheduled": 2, "numberUnavailable": 0, "generation": 1,
         "observedGeneration": 1, "resourceTemplateGeneration": 2},
        {"currentNumberScheduled": 3, "desiredNumberScheduled": 3, "numberAvailable": 1, "numberMisscheduled": 1,
         "numberReady": 1, "updatedNumberScheduled": 3, "numberUnavailable": 2, "generation": 1,
         "observedGeneration": 1, "resourceTemplateGeneration": 2}],
     {"currentNumberScheduled": 5, "desiredNumberScheduled": 5, "numberAvailable": 3, "numberMisscheduled": 1,
      "numberReady": 3, "updatedNumberScheduled": 5, "numberUnavailable": 2, "observedGeneration": 2}),
    ("autoscaling/v2", "HorizontalPodAutoscaler", [{"currentReplicas": 2, "desiredReplicas": 3},
                                                   {"currentReplicas": 1, "desiredReplicas": 1}],
     {"currentReplicas": 3, "desiredReplicas": 4}),
    ("policy/v1", "PodDisruptionBudget", [
        {"currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2, "disruptionsAllowed": 1,
         "disruptedPods": {"p1": NOW}},
        {"currentHealthy": 1, "desiredHealthy": 1, "expectedPods": 1, "disruptionsAllowed": 0}],
     {"currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3, "disruptionsAllowed": 1,
      "disruptedPods": {"a/p1": NOW}}),
    ("v1", "PersistentVolumeClaim", [{"phase": "Bound"}, {"phase": "Pending"}], {"phase": "Pending"}),
    ("v1", "PersistentVolumeClaim", [{"phase": "Pending"}, {"phase": "Lost"}], {"phase": "Lost"}),
    ("v1", "PersistentVolumeClaim", [{"phase": "Bound"}, {"phase": "Bound"}], {"phase": "Bound"}),
    ("v1", "PersistentVolume", [{"phase": "Bound"}, {"phase": "Available"}], {"phase": "Available"}),
    ("v1", "PersistentVolume", [{"phase": "Bound"}, None], {"phase": "Pending"}),
    ("batch/v1", "CronJob", [
        {"active": [{"name": "j1"}], "lastScheduleTime": "2026-01-01T00:01:00Z",
         "lastSuccessfulTime": "2026-01-01T00:00:30Z"},
        {"active": [{"name": "j2"}], "lastScheduleTime": "2026-01-01T00:02:00Z"}],
     {"active": [{"name": "j1"}, {"name": "j2"}], "lastScheduleTime": "2026-01-01T00:02:00Z",
      "lastSuccessfulTime": "2026-01-01T00:00:30Z"}),
])
def test_summed_and_phased_kinds(api_version: str, kind: str, members: list[Obj | None], expected: Obj) -> None:
    items = [item(c, m) for c, m in zip("abcdef", members, strict=False)]
    assert aggregate_status(template(api_version, kind), items, NOW) == expected


def _pod(phase: str, ready: bool = True) -> Obj:
    return {"phase": phase, "containerStatuses": [{"name": "c", "ready": ready, "image": "i",
                                                   "state": {"running": {"startedAt": NOW}}}]}


@pytest.mark.parametrize(("members", "phase"), [
    ([_pod("Running"), _pod("Running")], "Running"),
    ([_pod("Running"), _pod("Pending")], "Pending"),
    ([_pod("Succeeded"), _pod("Running")], "Running"),
    ([_pod("Succeeded"), _pod("Succeeded")], "Succeeded"),
    ([_pod("Failed"), _pod("Pending")], "Failed"),
    ([_pod("Running"), None], "Pending"),  # not collected yet counts as pending
])
def test_pod_phase(members: list[Obj | None], phase: str) -> None:
    out = aggregate_status(template("v1", "Pod"), [item(c, m) for c, m in zip("ab", members, strict=True)], NOW)
    assert out is not None and out["phase"] == phase
    assert all(set(cs) <= {"ready", "state"} for cs in out["containerStatuses"])
    assert len(out["containerStatuses"]) == sum(1 for m in members if m)


def _job(active: int = 0, succeeded: int = 0, failed: int = 0, *, finished: str | None = None,
         start: str | None = None, completion: str | None = None) -> Obj:
    out: Obj = {"active": active, "succeeded": succeeded, "failed": failed}
    if finished:
        out["conditions"] = [{"type": finished, "status": "True"}]
    if start:
        out["startTime"] = start
    if completion:
        out["completionTime"] = completion
    return out


T1, T2, T3 = "2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z", "2026-01-01T00:03:00Z"


@pytest.mark.parametrize(("members", "conditions", "start", "completion", "counts"), [
    ([_job(1, start=T2), _job(2, start=T1)], [], T1, None, (3, 0, 0)),
    ([_job(1, start=T2), _job(2)], [], None, None, (3, 0, 0)),  # one has not started
    ([_job(0, 2, finished="Complete", start=T1, completion=T3), _job(1, 1, start=T2)], [], T1, None, (1, 3, 0)),
    ([_job(0, 2, finished="Complete", start=T1, completion=T2),
      _job(0, 1, finished="Complete", start=T1, completion=T3)], ["Complete"], T1, T3, (0, 3, 0)),
    ([_job(0, 0, 3, finished="Failed", start=T1), _job(1, start=T1)], ["Failed"], T1, None, (1, 0, 3)),
])
def test_job(members: list[Obj], conditions: list[str], start: str | None, completion: str | None,
             counts: tuple[int, int, int]) -> None:
    out = aggregate_status(template("batch/v1", "Job"), [item(c, m) for c, m in zip("ab", members, strict=True)],
                           NOW)
    assert out is not None
    assert (out["active"], out["succeeded"], out["failed"]) == counts
    assert [c["type"] for c in out.get("conditions", [])] == conditions
    assert out.get("startTime") == start and out.get("completionTime") == completion
    if "Failed" in conditions:
        assert "member clusters a" in out["conditions"][0]["message"]


def test_finished_job_status_never_changes() -> None:
    done = {"succeeded": 3, "conditions": [{"type": "Complete", "status": "True"}]}
    assert aggregate_status(template("batch/v1", "Job", status=done), [item("a", _job(1))], NOW) == done


def test_service_load_balancer_ingress() -> None:
    lb = template("v1", "Service", spec={"type": "LoadBalancer"})
    items = [item("a", {"loadBalancer": {"ingress": [{"ip": "127.0.0.9", "ports": [{"port": 80,
                                                                                     "protocol": "TCP"}]}]}}),
             item("b", {"loadBalancer": {"ingress": [{"ip": "127.0.0.2"}, {"hostname": "lb.example"},
                                                     {"ip": "127.0.0.9", "ports": [{"port": 443, "protocol": "TCP"},
                                                                                   {"port": 80,
                                                                                    "protocol": "TCP"}]}]}}),
             item("c", None)]
    assert aggregate_status(lb, items, NOW) == {"loadBalancer": {"ingress": [
        {"ip": "127.0.0.2"}, {"ip": "127.0.0.9", "ports": [{"port": 80, "protocol": "TCP"},
                                                          {"port": 443, "protocol": "TCP"}]},
        {"hostname": "lb.example"}]}}
    cluster_ip = template("v1", "Service", spec={"type": "ClusterIP"}, status={"conditions": []})
    assert aggregate_status(cluster_ip, items, NOW) == {"conditions": []}
    ingress = template("networking.k8s.io/v1", "Ingress")
    assert aggregate_status(ingress, items[:1], NOW) == {"loadBalancer": items[0]["status"]["loadBalancer"]}
    assert aggregate_status(ingress, [], NOW) == {"loadBalancer": {}}


def test_dedupe_keeps_ip_modes_apart() -> None:
    out = dedupe_load_balancer_ingress([{"ip": "127.0.0.1", "ipMode": "VIP"}, {"ip": "127.0.0.1", "ipMode": "Proxy"},
                                        {"ip": "127.0.0.1", "ipMode": "VIP"}])
    assert out == [{"ip": "127.0.0.1", "ipMode": "Proxy"}, {"ip": "127.0.0.1", "ipMode": "VIP"}]


def test_a_member_yet_to_report_holds_the_template_back() -> None:
    spec = {"clusters": [{"name": "a"}, {"name": "b"}]}
    items = template_items(spec, [item("a", deploy(2, 2))])
    assert [i["clusterName"] for i in items] == ["a", "b"] and "status" not in items[1]
    out = aggregate_status(template("apps/v1", "Deployment"), items, NOW)
    assert out is not None and "observedGeneration" not in out
    done = aggregate_status(template("batch/v1", "Job"),
                            template_items(spec, [item("a", _job(0, 1, finished="Complete"))]), NOW)
    assert done is not None and "conditions" not in done


def test_kinds_without_an_aggregator_are_left_alone() -> None:
    assert aggregate_status(template("v1", "ConfigMap"), [item("a", {"x": 1})], NOW) is None
    assert aggregate_status(template("example.com/v1", "Widget"), [item("a", {"x": 1})], NOW) is None


# -- over the API server ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(apiserver: RunningServer) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await crds.install(client)
        for ns in ("karmada-es-member1", "karmada-es-member2"):
            with contextlib.suppress(Exception):
                await client.create(NAMESPACES, {"metadata": {"name": ns}})
        stop = asyncio.Event()
        controller = BindingStatusController(client)
        task = asyncio.create_task(controller.run(stop))
        try:
            yield client
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)


async def make_work(client: Client, cluster: str, manifest: Obj, *, binding: Obj) -> Obj:
    md = binding["metadata"]
    annotations = ({"resourcebinding.karmada.io/namespace": md["namespace"],
                    "resourcebinding.karmada.io/name": md["name"]} if md.get("namespace")
                   else {"clusterresourcebinding.karmada.io/name": md["name"]})
    label = ("resourcebinding.karmada.io/permanent-id" if md.get("namespace")
             else "clusterresourcebinding.karmada.io/permanent-id")
    return await client.create(WORKS, {
        "apiVersion": "work.karmada.io/v1alpha1", "kind": "Work",
        "metadata": {"name": f"{manifest['metadata']['name']}-w", "namespace": f"karmada-es-{cluster}",
                     "labels": {label: md["labels"][label]}, "annotations": annotations},
        "spec": {"workload": {"manifests": [manifest]}}})


async def report(client: Client, cluster: str, name: str, manifest: Obj, status: Obj | None,
                 health: str = "Healthy", applied: str = "True") -> None:
    """What the execution and work status controllers write, done by hand."""
    group, _, version = manifest["apiVersion"].rpartition("/")
    ms: Obj = {"identifier": {"ordinal": 0, "group": group, "version": version, "kind": manifest["kind"],
                              "namespace": manifest["metadata"].get("namespace", ""),
                              "name": manifest["metadata"]["name"], "resource": "x"}, "health": health}
    if status is not None:
        ms["status"] = status
    await client.patch_status(WORKS, name, {"status": {
        "conditions": [{"type": "Applied", "status": applied, "reason": "AppliedSuccessful", "message": "ok",
                        "lastTransitionTime": NOW}],
        "manifestStatuses": [ms]}}, f"karmada-es-{cluster}")


async def make_binding(client: Client, resource: Resource, name: str, namespace: str | None, ref: Obj,
                       clusters: list[str]) -> Obj:
    label = ("resourcebinding.karmada.io/permanent-id" if namespace
             else "clusterresourcebinding.karmada.io/permanent-id")
    await client.create(resource, {
        "apiVersion": "work.karmada.io/v1alpha2", "kind": resource.kind,
        "metadata": {"name": name, **({"namespace": namespace} if namespace else {}),
                     "labels": {label: f"id-{name}"}},
        "spec": {"resource": ref, "clusters": [{"name": c, "replicas": 1} for c in clusters]}})
    return await client.patch_status(resource, name, {"status": {"lastScheduledTime": NOW}}, namespace)


async def test_deployment_status_reaches_the_template_and_rollout_status(apiserver: RunningServer) -> None:
    ns = "status-deploy"
    async with running(apiserver) as client:
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        deployment = await client.create(DEPLOYMENTS, {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
        generation = deployment["metadata"]["generation"]
        ref = {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": ns, "name": "web",
               "resourceVersion": deployment["metadata"]["resourceVersion"]}
        rb = await make_binding(client, RESOURCE_BINDINGS, "web-deployment", ns, ref, ["member1", "member2"])
        manifest = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
                    "spec": {"replicas": 1}}
        w1 = await make_work(client, "member1", manifest, binding=rb)
        w2 = await make_work(client, "member2", manifest, binding=rb)
        await report(client, "member1", w1["metadata"]["name"], manifest,
                     deploy(2, 2, template_generation=generation), health="Healthy")
        await report(client, "member2", w2["metadata"]["name"], manifest,
                     deploy(1, 0, template_generation=generation - 1), health="Unhealthy")

        async def binding_status(fully_applied: str, healths: list[str]) -> Obj | None:
            b = await client.get(RESOURCE_BINDINGS, "web-deployment", ns)
            st = b.get("status") or {}
            conds = {c["type"]: c["status"] for c in st.get("conditions") or []}
            got = [i.get("health") for i in st.get("aggregatedStatus") or []]
            return b if conds.get("FullyApplied") == fully_applied and got == healths else None

        b = await eventually(lambda: binding_status("True", ["Healthy", "Unhealthy"]))
        assert [i["clusterName"] for i in b["status"]["aggregatedStatus"]] == ["member1", "member2"]
        assert b["status"]["aggregatedStatus"][0]["status"]["replicas"] == 2

        async def template_status(ready: int) -> Obj | None:
            d = await client.get(DEPLOYMENTS, "web", ns)
            return d if (d.get("status") or {}).get("readyReplicas") == ready else None

        d = await eventually(lambda: template_status(2))
        assert d["status"]["replicas"] == 3 and d["status"]["unavailableReplicas"] == 1
        # member2 still runs a manifest of the previous template generation: not observed yet.
        assert d["status"].get("observedGeneration", 0) < generation
        waiting = await asyncio.to_thread(apiserver.kubectl, "rollout", "status", "deployment/web", "-n", ns,
                                          "--timeout=1s", check=False)
        assert waiting.returncode != 0

        await report(client, "member2", w2["metadata"]["name"], manifest,
                     deploy(1, 1, template_generation=generation), health="Healthy")
        d = await eventually(lambda: template_status(3))
        assert d["status"]["observedGeneration"] == generation
        done = await asyncio.to_thread(apiserver.kubectl, "rollout", "status", "deployment/web", "-n", ns,
                                       "--timeout=20s")
        assert "successfully rolled out" in done.stdout

        # A member whose Work fails to apply turns FullyApplied False, with its message.
        await report(client, "member2", w2["metadata"]["name"], manifest, None, applied="False")
        b = await eventually(lambda: binding_status("False", ["Healthy", "Unknown"]))
        assert b["status"]["aggregatedStatus"][1]["applied"] is False
        events = apiserver.kubectl("get", "events", "-n", ns, "-o", "jsonpath={.items[*].reason}")
        assert "AggregateStatusSucceed" in events.stdout


async def test_cluster_resource_binding_without_aggregator(apiserver: RunningServer) -> None:
    async with running(apiserver) as client:
        role = await client.create(CLUSTER_ROLES, {"apiVersion": "rbac.authorization.k8s.io/v1",
                                                   "kind": "ClusterRole", "metadata": {"name": "status-reader"},
                                                   "rules": []})
        ref = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "name": "status-reader",
               "resourceVersion": role["metadata"]["resourceVersion"]}
        crb = await make_binding(client, CLUSTER_RESOURCE_BINDINGS, "status-reader-clusterrole", None, ref,
                                 ["member1"])
        manifest = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": "status-reader"}}
        w = await make_work(client, "member1", manifest, binding=crb)
        await report(client, "member1", w["metadata"]["name"], manifest, None)

        async def applied() -> bool:
            b = await client.get(CLUSTER_RESOURCE_BINDINGS, "status-reader-clusterrole")
            st = b.get("status") or {}
            return any(c["type"] == "FullyApplied" and c["status"] == "True" for c in st.get("conditions") or []) \
                and st.get("aggregatedStatus") == [{"clusterName": "member1", "applied": True, "health": "Healthy"}]

        await eventually(applied)
        # The Work going away is seen too.
        await client.delete(WORKS, w["metadata"]["name"], "karmada-es-member1")

        async def gone() -> bool:
            b = await client.get(CLUSTER_RESOURCE_BINDINGS, "status-reader-clusterrole")
            return not (b.get("status") or {}).get("aggregatedStatus")

        await eventually(gone)


# -- the whole path: federation controllers, two real member API servers with their own controllers -------


@pytest.fixture(scope="module")
def members(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RunningServer]]:
    servers = [start_member(tmp_path_factory.mktemp(f"status-m{i}") / "state", name=f"status-m{i}")
               for i in (1, 2)]
    try:
        yield servers
    finally:
        for server in servers:
            stop_process(server.process)


async def test_rollout_status_on_the_federation_waits_for_every_member(apiserver: RunningServer,
                                                                       members: list[RunningServer]) -> None:
    """kubectl apply a Deployment + policy to the federation; members run it; rollout status follows them."""
    ns = "status-e2e"

    async def kubectl(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """The real kubectl, off the event loop: the controllers must run while it waits."""
        return await asyncio.to_thread(functools.partial(apiserver.kubectl, *args, **kwargs))

    async with contextlib.AsyncExitStack() as stack:
        fed = await stack.enter_async_context(federation(apiserver))
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        for i, server in enumerate(members, 1):
            mc = await stack.enter_async_context(Client.from_kubeconfig(server.kubeconfig))
            for c in (SimulatedNodes(mc, [NodeSpec(f"s{i}-node-0")], renew_interval=5), MemberScheduler(mc),
                      DeploymentController(mc), ReplicaSetController(mc)):
                tasks.append(asyncio.create_task(c.run(stop)))
            await join(fed.client, f"status-m{i}", server.kubeconfig)
        for fc in (Detector(fed.client), SchedulerController(fed.client), BindingController(fed.client),
                   BindingStatusController(fed.client)):
            tasks.append(asyncio.create_task(fc.run(stop)))
        try:
            await kubectl("create", "namespace", ns)
            await kubectl("apply", "-n", ns, "-f", "-", input="""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: nginx, resources: {requests: {cpu: 100m}}}]
---
apiVersion: policy.karmada.io/v1alpha1
kind: PropagationPolicy
metadata:
  name: web
spec:
  resourceSelectors: [{apiVersion: apps/v1, kind: Deployment, name: web}]
  placement:
    clusterAffinity: {clusterNames: [status-m1, status-m2]}
    replicaScheduling: {replicaSchedulingType: Divided, replicaDivisionPreference: Weighted,
                        weightPreference: {staticWeightList: [{targetCluster: {clusterNames: [status-m1]},
                                                                weight: 2},
                                                               {targetCluster: {clusterNames: [status-m2]},
                                                                weight: 1}]}}
""")
            done = await kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=40s", timeout=50)
            assert "successfully rolled out" in done.stdout
            d = await fed.client.get(DEPLOYMENTS, "web", ns)
            assert (d["status"]["readyReplicas"], d["status"]["availableReplicas"]) == (3, 3)
            assert d["status"]["observedGeneration"] == d["metadata"]["generation"]
            rb = await fed.client.get(RESOURCE_BINDINGS, "web-deployment", ns)
            assert [(i["clusterName"], i["health"]) for i in rb["status"]["aggregatedStatus"]] == [
                ("status-m1", "Healthy"), ("status-m2", "Healthy")]
            assert [i["status"]["replicas"] for i in rb["status"]["aggregatedStatus"]] == [2, 1]  # weights 2:1

            # A new template generation: not rolled out until both members have it and are available again.
            await kubectl("scale", "deployment/web", "-n", ns, "--replicas=6")
            done = await kubectl("rollout", "status", "deployment/web", "-n", ns, "--timeout=40s", timeout=50)
            assert "successfully rolled out" in done.stdout
            d = await fed.client.get(DEPLOYMENTS, "web", ns)
            assert d["status"]["availableReplicas"] == 6
        finally:
            stop.set()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 10)
