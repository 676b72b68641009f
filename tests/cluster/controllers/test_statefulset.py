"""StatefulSet controller: the ordinal planner table-driven, then the controller over a real API server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from atoll.client import Client, Resource
from atoll.cluster.controllers.history import (
    CONTROLLER_REVISIONS,
    REVISION_LABEL,
    hash_revision,
    safe_encode,
    stale_revisions,
    template_of,
    template_patch,
)
from atoll.cluster.controllers.statefulset import (
    PODS,
    PVCS,
    STATEFULSETS,
    Member,
    StatefulSetController,
    ordinal_of,
    plan,
    scaled_down,
    uses_current_revision,
)
from atoll.cluster.kubelet.simulated import NODES, NodeSpec, SimulatedNodes
from atoll.cluster.scheduler.controller import SchedulerController
from tests.conftest import RunningServer, require_kubectl
from tests.waiting import eventually

NSS = Resource("v1", "namespaces", namespaced=False)
OK = Member(revision="new", phase="Running", healthy=True)
OLD = Member(revision="old", phase="Running", healthy=True)
PENDING = Member(revision="new", phase="Pending")
FAILED = Member(revision="new", phase="Failed")
GOING = Member(revision="new", phase="Running", healthy=True, terminating=True)


@pytest.mark.parametrize(("members", "kw", "expected"), [
    # OrderedReady: one ordinal at a time, each after the previous is Running and Ready.
    ({}, {"replicas": 3}, [("create", 0)]),
    ({0: PENDING}, {"replicas": 3}, []),
    ({0: OK}, {"replicas": 3}, [("create", 1)]),
    ({0: OK, 1: OK, 2: OK}, {"replicas": 3}, []),
    # Parallel: all at once, no waiting.
    ({}, {"replicas": 3, "parallel": True}, [("create", 0), ("create", 1), ("create", 2)]),
    ({0: PENDING}, {"replicas": 2, "parallel": True}, [("create", 1)]),
    # Failed pods are deleted (and recreated on the next round).
    ({0: OK, 1: FAILED}, {"replicas": 2}, [("delete-failed", 1)]),
    ({0: FAILED, 1: OK}, {"replicas": 2, "parallel": True}, [("delete-failed", 0)]),
    # Scale down: highest ordinal first, one at a time, and only when the rest is healthy.
    ({0: OK, 1: OK, 2: OK}, {"replicas": 1}, [("delete-condemned", 2)]),
    ({0: OK, 1: OK, 2: GOING}, {"replicas": 1}, []),
    ({0: OK, 1: PENDING, 2: OK}, {"replicas": 1}, []),
    ({0: OK, 1: OK, 2: PENDING}, {"replicas": 1}, [("delete-condemned", 2)]),
    ({0: PENDING, 1: OK, 2: OK}, {"replicas": 1}, []),
    ({0: OK, 1: OK, 2: OK}, {"replicas": 1, "parallel": True}, [("delete-condemned", 2), ("delete-condemned", 1)]),
    # RollingUpdate: highest ordinal first, wait for each replacement, stop at the partition.
    ({0: OLD, 1: OLD, 2: OLD}, {"replicas": 3, "update_revision": "new"}, [("delete-update", 2)]),
    ({0: OLD, 1: OLD, 2: OK}, {"replicas": 3, "update_revision": "new"}, [("delete-update", 1)]),
    ({0: OLD, 1: OLD}, {"replicas": 3, "update_revision": "new"}, [("create", 2)]),
    ({0: OLD, 1: OLD, 2: OK}, {"replicas": 3, "update_revision": "new", "partition": 2}, []),
    ({0: OLD, 1: OLD, 2: OLD}, {"replicas": 3, "update_revision": "new", "partition": 2}, [("delete-update", 2)]),
    ({0: OLD, 1: OLD, 2: OLD}, {"replicas": 3, "update_revision": "new", "rolling": False}, []),
    ({0: OLD, 1: OLD, 2: PENDING}, {"replicas": 3, "update_revision": "new", "parallel": True}, []),
    # maxUnavailable: several at once, counting pods already down.
    ({0: OLD, 1: OLD, 2: OLD, 3: OLD}, {"replicas": 4, "max_unavailable": 2}, [("delete-update", 3), ("delete-update", 2)]),
    ({0: OLD, 1: OLD, 2: OLD, 3: PENDING}, {"replicas": 4, "max_unavailable": 2, "parallel": True},
     [("delete-update", 2)]),
    ({0: OLD, 1: OLD, 2: OK, 3: PENDING}, {"replicas": 4, "max_unavailable": 1, "parallel": True}, []),
    ({0: OLD, 1: OLD, 2: OLD, 3: OLD}, {"replicas": 4, "max_unavailable": 3, "partition": 2},
     [("delete-update", 3), ("delete-update", 2)]),
    # ordinals.start shifts the names, not the rules.
    ({5: OK}, {"replicas": 2, "start": 5}, [("create", 6)]),
    ({4: OK, 5: OK}, {"replicas": 1, "start": 5}, [("delete-condemned", 4)]),
])
def test_plan(members: dict[int, Member], kw: dict[str, Any], expected: list[tuple[str, int]]) -> None:
    assert plan(dict(members), **{"update_revision": "new", **kw}) == expected


@pytest.mark.parametrize(("value", "total", "expected"), [(2, 10, 2), ("25%", 10, 2), ("1%", 10, 1), (0, 3, 1)])
def test_max_unavailable_scaling(value: Any, total: int, expected: int) -> None:
    assert scaled_down(value, total) == expected


@pytest.mark.parametrize(("index", "rolling", "partition", "current"), [
    (0, True, 2, True), (2, True, 2, False), (0, False, 2, False), (0, True, 0, False)])
def test_recreated_pod_revision(index: int, rolling: bool, partition: int, current: bool) -> None:
    assert uses_current_revision(index, rolling=rolling, partition=partition) is current


@pytest.mark.parametrize(("name", "ordinal"), [
    ("web-0", 0), ("web-12", 12), ("web-01", None), ("web-x", None), ("web2-1", None), ("other-web-1", None)])
def test_ordinal_of(name: str, ordinal: int | None) -> None:
    assert ordinal_of("web", {"metadata": {"name": name}}) == ordinal


def test_revision_hash_is_stable_and_safe() -> None:
    a, b = hash_revision({"x": 1}), hash_revision({"x": 1}, 1)
    assert a == hash_revision({"x": 1}) and a != b
    assert set(a) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert safe_encode("0") == "4"  # byte 48 % 27 = 21


def rev(name: str, number: int) -> dict[str, Any]:
    return {"metadata": {"name": name}, "revision": number}


@pytest.mark.parametrize(("revisions", "live", "limit", "stale"), [
    ([rev("a", 1), rev("b", 2), rev("c", 3)], {"c"}, 10, []),
    ([rev("a", 1), rev("b", 2), rev("c", 3)], {"c"}, 1, ["a"]),
    ([rev("a", 1), rev("b", 2), rev("c", 3)], {"c"}, 0, ["a", "b"]),
    ([rev("c", 3), rev("a", 1), rev("b", 2)], {"a", "c"}, 0, ["b"]),   # a pod still runs revision a
])
def test_history_truncation(revisions: list[dict[str, Any]], live: set[str], limit: int, stale: list[str]) -> None:
    assert [r["metadata"]["name"] for r in stale_revisions(revisions, live=live, limit=limit)] == stale


def test_revision_data_round_trips_the_template() -> None:
    template = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    data = template_patch({"spec": {"template": template}})
    assert data["spec"]["template"]["$patch"] == "replace"
    assert template_of({"data": data}) == template


@contextlib.asynccontextmanager
async def cluster(apiserver: RunningServer, namespace: str) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(NSS, {"metadata": {"name": namespace}})
        stop = asyncio.Event()
        nodes = [NodeSpec(f"{namespace}-node-{i}") for i in range(2)]
        sim = SimulatedNodes(client, nodes, renew_interval=1)
        controllers = [SchedulerController(client), StatefulSetController(client)]
        tasks = [asyncio.create_task(sim.run(stop))] + [asyncio.create_task(c.run(stop)) for c in controllers]
        try:
            yield client
        finally:
            stop.set()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(t, 10)
            for n in nodes:  # later tests on this server must not schedule onto nodes nobody runs
                with contextlib.suppress(Exception):
                    await client.delete(NODES, n.name)


def statefulset(name: str, ns: str, *, replicas: int, image: str = "v1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}, **spec}}


async def test_ordered_statefulset_identity_storage_rollout_and_scale(apiserver: RunningServer) -> None:
    require_kubectl()
    ns = "sts"
    async with cluster(apiserver, ns) as client:
        claim = {"metadata": {"name": "data"},
                 "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
        await client.create(STATEFULSETS, statefulset("db", ns, replicas=3, volumeClaimTemplates=[claim],
                                                      persistentVolumeClaimRetentionPolicy={"whenScaled": "Delete"}))
        created_order: list[str] = []

        async def ready(n: int) -> dict[str, Any] | None:
            pods = (await client.list(PODS, ns, label_selector="app=db"))["items"]
            for p in sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"]):
                if p["metadata"]["name"] not in created_order:
                    created_order.append(p["metadata"]["name"])
            st = (await client.get(STATEFULSETS, "db", ns)).get("status") or {}
            return st if st.get("readyReplicas") == n and st.get("replicas") == n else None

        st = await eventually(lambda: ready(3), timeout=30)
        assert created_order == ["db-0", "db-1", "db-2"]
        assert st["currentRevision"] == st["updateRevision"] and st["updatedReplicas"] == 3
        pod = await client.get(PODS, "db-1", ns)
        labels = pod["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == "db-1" and labels["apps.kubernetes.io/pod-index"] == "1"
        assert labels[REVISION_LABEL] == st["updateRevision"]
        assert pod["spec"]["hostname"] == "db-1" and pod["spec"]["subdomain"] == "db"
        assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-db-1"}} in pod["spec"]["volumes"]
        pvcs = {c["metadata"]["name"] for c in (await client.list(PVCS, ns))["items"]}
        assert pvcs == {"data-db-0", "data-db-1", "data-db-2"}

        # A rolling update replaces pods from the highest ordinal down; rollout status follows it.
        await client.patch(STATEFULSETS, "db", {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "v2"}]}}}}, ns, patch_type="strategic")
        out = await asyncio.to_thread(apiserver.kubectl, "rollout", "status", "statefulset/db", "-n", ns,
                                      "--timeout=40s", timeout=50)
        assert "complete" in out.stdout
        st = (await client.get(STATEFULSETS, "db", ns))["status"]
        assert st["currentRevision"] == st["updateRevision"] and st["updatedReplicas"] == 3
        images = {p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
                  for p in (await client.list(PODS, ns))["items"]}
        assert images == {"db-0": "v2", "db-1": "v2", "db-2": "v2"}
        revisions = (await client.list(CONTROLLER_REVISIONS, ns))["items"]
        assert sorted(r["revision"] for r in revisions) == [1, 2]
        history = await asyncio.to_thread(apiserver.kubectl, "rollout", "history", "statefulset/db", "-n", ns)
        assert [line.split()[0] for line in history.stdout.splitlines()[2:] if line.strip()] == ["1", "2"]

        # kubectl rollout undo re-applies revision 1; the controller reuses (renumbers) that revision.
        await asyncio.to_thread(apiserver.kubectl, "rollout", "undo", "statefulset/db", "-n", ns)
        out = await asyncio.to_thread(apiserver.kubectl, "rollout", "status", "statefulset/db", "-n", ns,
                                      "--timeout=40s", timeout=50)
        images = {p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
                  for p in (await client.list(PODS, ns))["items"]}
        assert images == {"db-0": "v1", "db-1": "v1", "db-2": "v1"}
        revisions = (await client.list(CONTROLLER_REVISIONS, ns))["items"]
        assert sorted(r["revision"] for r in revisions) == [2, 3] and len(revisions) == 2

        # A failed pod is recreated under the same name.
        old_uid = (await client.get(PODS, "db-0", ns))["metadata"]["uid"]
        await client.patch(PODS, "db-0", {"status": {"phase": "Failed"}}, ns, subresource="status")

        async def recreated() -> bool:
            with contextlib.suppress(Exception):
                p = await client.get(PODS, "db-0", ns)
                return p["metadata"]["uid"] != old_uid and (p.get("status") or {}).get("phase") == "Running"
            return False

        await eventually(recreated, timeout=20)

        # Scale down (through /scale) removes the highest ordinals; whenScaled: Delete hands their claims
        # to the pods.
        await asyncio.to_thread(apiserver.kubectl, "scale", "statefulset/db", "--replicas=1", "-n", ns)
        await eventually(lambda: ready(1), timeout=30)
        names = {p["metadata"]["name"] for p in (await client.list(PODS, ns))["items"]}
        assert names == {"db-0"}

        async def claims_collected() -> dict[str, list[str]] | None:
            owners = {c["metadata"]["name"]: [r["kind"] for r in c["metadata"].get("ownerReferences") or []]
                      for c in (await client.list(PVCS, ns))["items"]}
            return owners if set(owners) == {"data-db-0"} else None

        owners = await eventually(claims_collected, timeout=20)
        assert owners == {"data-db-0": []}
        # A changed retention policy applies to the claims that already exist.
        await client.patch(STATEFULSETS, "db", {"spec": {"persistentVolumeClaimRetentionPolicy": {
            "whenDeleted": "Delete"}}}, ns)

        async def set_owns_claim() -> bool:
            pvc = await client.get(PVCS, "data-db-0", ns)
            return [r["kind"] for r in pvc["metadata"].get("ownerReferences") or []] == ["StatefulSet"]

        await eventually(set_owns_claim, timeout=20)
        events = Resource("v1", "events", True, "Event")
        reasons = {e["reason"] for e in (await client.list(events, ns))["items"]
                   if e["involvedObject"].get("kind") == "StatefulSet"}
        assert {"SuccessfulCreate", "SuccessfulDelete", "RecreatingFailedPod"} <= reasons


async def test_parallel_statefulset_and_partitioned_update(apiserver: RunningServer) -> None:
    ns = "sts-par"
    async with cluster(apiserver, ns) as client:
        await client.create(STATEFULSETS, statefulset(
            "par", ns, replicas=3, podManagementPolicy="Parallel",
            updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}))

        async def status(**want: Any) -> dict[str, Any] | None:
            st = (await client.get(STATEFULSETS, "par", ns)).get("status") or {}
            return st if all(st.get(k) == v for k, v in want.items()) else None

        first = await eventually(lambda: status(readyReplicas=3, updatedReplicas=3), timeout=30)
        await client.patch(STATEFULSETS, "par", {"spec": {"template": {"metadata": {"labels": {"app": "par",
                                                                                              "v": "2"}}}}}, ns)
        st = await eventually(lambda: status(readyReplicas=3, updatedReplicas=1, currentReplicas=2), timeout=30)
        assert st["currentRevision"] == first["currentRevision"] != st["updateRevision"]
        pods = {p["metadata"]["name"]: p["metadata"]["labels"][REVISION_LABEL]
                for p in (await client.list(PODS, ns))["items"]}
        assert pods == {"par-0": st["currentRevision"], "par-1": st["currentRevision"], "par-2": st["updateRevision"]}
        # Removing the partition finishes the update; currentRevision follows.
        await client.patch(STATEFULSETS, "par", {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}},
                           ns)
        done = await eventually(lambda: status(readyReplicas=3, updatedReplicas=3, currentReplicas=3), timeout=30)
        assert done["currentRevision"] == done["updateRevision"] == st["updateRevision"]


async def test_on_delete_updates_only_pods_someone_deletes(apiserver: RunningServer) -> None:
    ns = "sts-ondelete"
    async with cluster(apiserver, ns) as client:
        await client.create(STATEFULSETS, statefulset("od", ns, replicas=2, podManagementPolicy="Parallel",
                                                      updateStrategy={"type": "OnDelete"}))

        async def status(**want: Any) -> dict[str, Any] | None:
            st = (await client.get(STATEFULSETS, "od", ns)).get("status") or {}
            return st if all(st.get(k) == v for k, v in want.items()) else None

        await eventually(lambda: status(readyReplicas=2, updatedReplicas=2), timeout=30)
        await client.patch(STATEFULSETS, "od", {"spec": {"template": {"metadata": {"labels": {"app": "od",
                                                                                             "v": "2"}}}}}, ns)
        st = await eventually(lambda: status(readyReplicas=2, updatedReplicas=0, currentReplicas=2), timeout=20)
        assert st["currentRevision"] != st["updateRevision"]
        await asyncio.sleep(0.5)  # nothing is replaced on its own
        assert all("v" not in p["metadata"]["labels"] for p in (await client.list(PODS, ns))["items"])
        await client.delete(PODS, "od-1", ns)
        await eventually(lambda: status(readyReplicas=2, updatedReplicas=1, currentReplicas=1), timeout=20)
        assert (await client.get(PODS, "od-1", ns))["metadata"]["labels"]["v"] == "2"
        assert "v" not in (await client.get(PODS, "od-0", ns))["metadata"]["labels"]


async def test_orphans_named_as_members_are_adopted(apiserver: RunningServer) -> None:
    ns = "sts-adopt"
    async with cluster(apiserver, ns) as client:
        orphan = await client.create(PODS, {"metadata": {"name": "keep-0", "namespace": ns, "labels": {"app": "keep"}},
                                            "spec": {"containers": [{"name": "c", "image": "v1"}]}})
        stranger = await client.create(PODS, {"metadata": {"name": "keep-x", "namespace": ns,
                                                           "labels": {"app": "keep"}},
                                              "spec": {"containers": [{"name": "c", "image": "v1"}]}})
        # OnDelete: an adopted pod has no revision label, so a RollingUpdate would (as in kube) replace it.
        await client.create(STATEFULSETS, statefulset("keep", ns, replicas=2, podManagementPolicy="Parallel",
                                                      updateStrategy={"type": "OnDelete"}))

        async def ready() -> bool:
            st = (await client.get(STATEFULSETS, "keep", ns)).get("status") or {}
            return st.get("readyReplicas") == 2

        await eventually(ready, timeout=30)
        adopted = await client.get(PODS, "keep-0", ns)
        assert adopted["metadata"]["uid"] == orphan["metadata"]["uid"]
        assert adopted["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
        assert not (await client.get(PODS, "keep-x", ns))["metadata"].get("ownerReferences")  # not a member name
        assert stranger["metadata"]["uid"]
