"""Execution controller: the table-driven object rules, and Works applied to a real member API server."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from atoll.api.errors import NotFound
from atoll.client import Client, Resource
from atoll.federation import kinds
from atoll.federation.clusters import join
from atoll.federation.execution import (
    EXECUTION_FINALIZER,
    contained,
    desired_object,
    may_update,
    prune,
    released,
    retain,
)
from tests.conftest import RunningServer, stop_process
from tests.federation.clusters.harness import Federation, ensure_namespace, federation, start_member
from tests.waiting import eventually

DEPLOYMENTS = Resource("apps/v1", "deployments", True, "Deployment")
CONFIGMAPS = Resource("v1", "configmaps", True, "ConfigMap")
SERVICES = Resource("v1", "services", True, "Service")
NSS = Resource("v1", "namespaces", False, "Namespace")
ES = "karmada-es-member-x"

WORK = {"metadata": {"name": "web-abc", "namespace": ES, "uid": "u-1", "labels": {}}}


def svc(spec: dict[str, Any], **md: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "n", **md}, "spec": spec}


# -- pure rules ---------------------------------------------------------------------------------------

def test_desired_object_prunes_and_labels() -> None:
    manifest = {"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "n", "uid": "x", "resourceVersion": "9", "generation": 3,
                             "annotations": {"deployment.kubernetes.io/revision": "2", "keep": "1"},
                             "ownerReferences": [{"kind": "X"}], "finalizers": ["f"], "managedFields": []},
                "spec": {"replicas": 2}, "status": {"replicas": 2}}
    work = {"metadata": {**WORK["metadata"], "annotations": {"work.karmada.io/conflict-resolution": "overwrite"}}}
    out = desired_object(work, manifest)
    assert out["metadata"] == {
        "name": "web", "namespace": "n",
        "labels": {"karmada.io/managed": "true", "work.karmada.io/permanent-id": "u-1"},
        "annotations": {"keep": "1", "work.karmada.io/name": "web-abc", "work.karmada.io/namespace": ES,
                        "work.karmada.io/conflict-resolution": "overwrite"}}
    assert "status" not in out and out["spec"] == {"replicas": 2}
    assert manifest["metadata"]["uid"] == "x"  # the Work's copy is not changed


@pytest.mark.parametrize(("manifest", "gone", "kept"), [
    (svc({"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"]}), ["clusterIP", "clusterIPs"], []),
    (svc({"clusterIP": "None"}), [], ["clusterIP"]),
    ({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
      "spec": {"ttlSecondsAfterFinished": 5, "selector": {"matchLabels": {"controller-uid": "1"}}}},
     ["ttlSecondsAfterFinished"], ["selector"]),
])
def test_prune_per_kind(manifest: dict[str, Any], gone: list[str], kept: list[str]) -> None:
    spec = prune(manifest)["spec"]
    assert not set(gone) & set(spec) and set(kept) <= set(spec)


@pytest.mark.parametrize(("desired", "observed", "path", "expected"), [
    # A Service keeps what the member allocated.
    (svc({"type": "NodePort", "ports": [{"port": 80}]}),
     svc({"type": "NodePort", "clusterIP": "10.1.0.5", "clusterIPs": ["10.1.0.5"],
          "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}),
     ("spec",), {"type": "NodePort", "clusterIP": "10.1.0.5", "clusterIPs": ["10.1.0.5"],
                 "ports": [{"port": 80, "nodePort": 30080}]}),
    # A node port the template names wins.
    (svc({"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]}),
     svc({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
     ("spec", "ports"), [{"port": 80, "nodePort": 31000}]),
    # A Pod keeps its node and volumes.
    ({"kind": "Pod", "metadata": {}, "spec": {"containers": [{"name": "c"}]}},
     {"kind": "Pod", "metadata": {}, "spec": {"nodeName": "n1", "serviceAccountName": "default",
                                              "volumes": [{"name": "v"}],
                                              "containers": [{"name": "c", "volumeMounts": [{"name": "v"}]}]}},
     ("spec",), {"nodeName": "n1", "serviceAccountName": "default", "volumes": [{"name": "v"}],
                 "containers": [{"name": "c", "volumeMounts": [{"name": "v"}]}]}),
    # Replicas an HPA scales in the member are kept only with the retain-replicas label.
    ({"kind": "Deployment", "metadata": {"labels": {"resourcetemplate.karmada.io/retain-replicas": "true"}},
      "spec": {"replicas": 2}}, {"kind": "Deployment", "metadata": {}, "spec": {"replicas": 7}},
     ("spec", "replicas"), 7),
    ({"kind": "Deployment", "metadata": {}, "spec": {"replicas": 2}},
     {"kind": "Deployment", "metadata": {}, "spec": {"replicas": 7}}, ("spec", "replicas"), 2),
    # Member-side metadata stays; labels the template managed and dropped go.
    ({"kind": "ConfigMap", "metadata": {"labels": {"a": "1"}}},
     {"kind": "ConfigMap", "metadata": {"resourceVersion": "5", "finalizers": ["x/y"],
                                        "labels": {"a": "0", "member": "m", "old": "o"},
                                        "annotations": {"resourcetemplate.karmada.io/managed-labels": "a,old"}}},
     ("metadata",), {"resourceVersion": "5", "finalizers": ["x/y"], "labels": {"a": "1", "member": "m"},
                     "annotations": {"resourcetemplate.karmada.io/managed-labels": "a,old"}}),
    # A ServiceAccount's secrets are merged.
    ({"kind": "ServiceAccount", "metadata": {}, "secrets": [{"name": "mine"}]},
     {"kind": "ServiceAccount", "metadata": {}, "secrets": [{"name": "tok"}, {"name": "mine"}]},
     ("secrets",), [{"name": "mine"}, {"name": "tok"}]),
    ({"kind": "PersistentVolumeClaim", "metadata": {}, "spec": {}},
     {"kind": "PersistentVolumeClaim", "metadata": {}, "spec": {"volumeName": "pv-1"}},
     ("spec", "volumeName"), "pv-1"),
])
def test_retain(desired: dict[str, Any], observed: dict[str, Any], path: tuple[str, ...], expected: Any) -> None:
    before = copy.deepcopy(desired)
    value: Any = retain(desired, observed)
    for part in path:
        value = value[part]
    assert value == expected
    assert desired == before


@pytest.mark.parametrize(("desired_annotations", "observed_labels", "allowed"), [
    ({}, {"karmada.io/managed": "true"}, True),           # ours
    ({}, {}, False),                                       # someone else's: abort by default
    ({"work.karmada.io/conflict-resolution": "abort"}, {}, False),
    ({"work.karmada.io/conflict-resolution": "overwrite"}, {}, True),
    ({"work.karmada.io/conflict-resolution": "Overwrite"}, {}, True),
])
def test_conflict_rules(desired_annotations: dict[str, str], observed_labels: dict[str, str], allowed: bool) -> None:
    assert may_update({"metadata": {"annotations": desired_annotations}},
                      {"metadata": {"labels": observed_labels}}) is allowed


@pytest.mark.parametrize(("desired", "observed", "expected"), [
    ({"spec": {"replicas": 2}}, {"spec": {"replicas": 2, "strategy": {"type": "RollingUpdate"}}}, True),
    ({"spec": {"replicas": 2}}, {"spec": {"replicas": 3}}, False),
    ({"spec": {"ports": [{"port": 80}]}}, {"spec": {"ports": [{"port": 80, "protocol": "TCP"}]}}, True),
    ({"spec": {"ports": [{"port": 80}]}}, {"spec": {"ports": [{"port": 80}, {"port": 81}]}}, False),
    ({"spec": {"paused": False}}, {"spec": {"paused": 0}}, False),
    ({"spec": {"x": 1}}, {"spec": {"x": 1.0}}, True),
])
def test_contained(desired: dict[str, Any], observed: dict[str, Any], expected: bool) -> None:
    assert contained(desired, observed) is expected


def test_released_strips_karmada_metadata() -> None:
    obj = {"metadata": {"labels": {"karmada.io/managed": "true", "work.karmada.io/permanent-id": "1", "app": "a",
                                   "propagationpolicy.karmada.io/permanent-id": "p"},
                        "annotations": {"work.karmada.io/name": "w", "work.karmada.io/namespace": ES, "keep": "k"}}}
    assert released(obj)["metadata"] == {"labels": {"app": "a"}, "annotations": {"keep": "k"}}


# -- integration ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def member(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = start_member(tmp_path_factory.mktemp("member-x") / "state", name="member-x")
    try:
        yield server
    finally:
        stop_process(server.process)


@pytest.fixture
async def fed(apiserver: RunningServer, member: RunningServer) -> AsyncIterator[Federation]:
    async with federation(apiserver) as f:
        await join(f.client, "member-x", member.kubeconfig)
        await ensure_namespace(f.client, ES)

        async def ready() -> bool:
            c = await f.client.get(kinds.CLUSTERS, "member-x")
            return any(x["type"] == "Ready" and x["status"] == "True"
                       for x in (c.get("status") or {}).get("conditions") or [])

        await eventually(ready, timeout=15)
        yield f


def deployment(name: str, namespace: str, replicas: int = 2) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "echo"}]}}}}


def work(name: str, *items: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": kinds.WORK_V1ALPHA1, "kind": "Work", "metadata": {"name": name, "namespace": ES},
            "spec": {"workload": {"manifests": list(items)}, **spec}}


def condition(w: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in (w.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


async def _absent(mc: Client, res: Resource, name: str, namespace: str | None) -> bool:
    try:
        await mc.get(res, name, namespace)
    except NotFound:
        return True
    return False


async def test_work_applied_to_member_then_removed(fed: Federation, member: RunningServer) -> None:
    async with Client.from_kubeconfig(member.kubeconfig) as mc:
        await fed.client.create(kinds.WORKS, work("web-1", deployment("web", "shop")))

        async def applied() -> dict[str, Any] | None:
            w = await fed.client.get(kinds.WORKS, "web-1", ES)
            return w if (condition(w, "Applied") or {}).get("status") == "True" else None

        w = await eventually(applied, timeout=15)
        assert condition(w, "Applied")["reason"] == "AppliedSuccessful"  # type: ignore[index]
        assert condition(w, "Dispatching")["status"] == "True"  # type: ignore[index]
        assert EXECUTION_FINALIZER in w["metadata"]["finalizers"]
        d = await mc.get(DEPLOYMENTS, "web", "shop")  # the namespace was created for it
        assert d["metadata"]["labels"]["karmada.io/managed"] == "true"
        assert d["metadata"]["labels"]["work.karmada.io/permanent-id"] == w["metadata"]["uid"]
        assert d["metadata"]["labels"]["app"] == "web"
        assert d["metadata"]["annotations"]["work.karmada.io/name"] == "web-1"
        assert d["metadata"]["annotations"]["work.karmada.io/namespace"] == ES
        assert d["spec"]["replicas"] == 2

        # A change of the Work reaches the member.
        await fed.client.patch(kinds.WORKS, "web-1", {"spec": {"workload": {"manifests": [
            deployment("web", "shop", replicas=4)]}}}, ES)

        async def scaled() -> bool:
            return bool((await mc.get(DEPLOYMENTS, "web", "shop"))["spec"]["replicas"] == 4)

        await eventually(scaled, timeout=10)

        await fed.client.delete(kinds.WORKS, "web-1", ES)
        await eventually(lambda: _absent(mc, DEPLOYMENTS, "web", "shop"), timeout=10)
        await eventually(lambda: _absent(fed.client, kinds.WORKS, "web-1", ES), timeout=10)


async def test_conflict_abort_then_overwrite(fed: Federation, member: RunningServer) -> None:
    async with Client.from_kubeconfig(member.kubeconfig) as mc:
        await ensure_namespace(mc, "conf")
        await mc.create(CONFIGMAPS, {"metadata": {"name": "settings", "namespace": "conf"}, "data": {"v": "mine"}})
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "conf"},
              "data": {"v": "federated"}}
        await fed.client.create(kinds.WORKS, work("settings-1", cm))

        async def failed() -> dict[str, Any] | None:
            w = await fed.client.get(kinds.WORKS, "settings-1", ES)
            c = condition(w, "Applied")
            return c if c and c["status"] == "False" else None

        c = await eventually(failed, timeout=15)
        assert c["reason"] == "AppliedFailed"
        assert "Failed to apply all manifests (0/1)" in c["message"]
        assert "ConfigMap(conf/settings) already exists in the cluster member-x" in c["message"]
        assert (await mc.get(CONFIGMAPS, "settings", "conf"))["data"] == {"v": "mine"}

        await fed.client.patch(kinds.WORKS, "settings-1", {"metadata": {"annotations": {
            "work.karmada.io/conflict-resolution": "overwrite"}}}, ES)

        async def overwritten() -> bool:
            got = await mc.get(CONFIGMAPS, "settings", "conf")
            return got["data"] == {"v": "federated"} and got["metadata"]["labels"]["karmada.io/managed"] == "true"

        await eventually(overwritten, timeout=10)
        w = await fed.client.get(kinds.WORKS, "settings-1", ES)
        assert condition(w, "Applied")["status"] == "True"  # type: ignore[index]
        await fed.client.delete(kinds.WORKS, "settings-1", ES)
        await eventually(lambda: _absent(mc, CONFIGMAPS, "settings", "conf"), timeout=10)


async def test_suspend_preserve_and_service_fields(fed: Federation, member: RunningServer) -> None:
    async with Client.from_kubeconfig(member.kubeconfig) as mc:
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "front", "namespace": "edge"},
                   "spec": {"type": "NodePort", "selector": {"app": "front"}, "ports": [{"port": 80}]}}
        await fed.client.create(kinds.WORKS, work("front-1", service, suspendDispatching=True))

        async def suspended() -> bool:
            w = await fed.client.get(kinds.WORKS, "front-1", ES)
            return (condition(w, "Dispatching") or {}).get("reason") == "SuspendDispatching"

        await eventually(suspended, timeout=10)
        assert await _absent(mc, SERVICES, "front", "edge")

        await fed.client.patch(kinds.WORKS, "front-1", {"spec": {"suspendDispatching": False,
                                                                 "preserveResourcesOnDeletion": True}}, ES)

        async def created() -> dict[str, Any] | None:
            try:
                return await mc.get(SERVICES, "front", "edge")
            except NotFound:
                return None

        first = await eventually(created, timeout=10)
        ip, node_port = first["spec"]["clusterIP"], first["spec"]["ports"][0]["nodePort"]
        assert ip and node_port

        # An update keeps the member's clusterIP and node port (the template names neither).
        relabelled_service = copy.deepcopy(service)
        relabelled_service["metadata"]["labels"] = {"rev": "2"}
        await fed.client.patch(kinds.WORKS, "front-1", {"spec": {"workload": {"manifests": [relabelled_service]}}},
                               ES)

        async def relabelled() -> dict[str, Any] | None:
            got = await mc.get(SERVICES, "front", "edge")
            return got if (got["metadata"].get("labels") or {}).get("rev") == "2" else None

        got = await eventually(relabelled, timeout=10)
        assert got["spec"]["clusterIP"] == ip and got["spec"]["ports"][0]["nodePort"] == node_port
        w = await fed.client.get(kinds.WORKS, "front-1", ES)
        assert condition(w, "Applied")["status"] == "True"  # type: ignore[index]

        # preserveResourcesOnDeletion: the Service stays, handed over to the member.
        await fed.client.delete(kinds.WORKS, "front-1", ES)
        await eventually(lambda: _absent(fed.client, kinds.WORKS, "front-1", ES), timeout=10)
        kept = await mc.get(SERVICES, "front", "edge")
        assert "karmada.io/managed" not in (kept["metadata"].get("labels") or {})
        assert "work.karmada.io/name" not in (kept["metadata"].get("annotations") or {})
        assert kept["metadata"]["labels"]["rev"] == "2"


async def test_kind_the_member_does_not_serve(fed: Federation) -> None:
    widget = {"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "n"}}
    await fed.client.create(kinds.WORKS, work("widget-1", widget))

    async def failed() -> dict[str, Any] | None:
        c = condition(await fed.client.get(kinds.WORKS, "widget-1", ES), "Applied")
        return c if c and c["status"] == "False" else None

    c = await eventually(failed, timeout=10)
    assert c["reason"] == "AppliedFailed" and "Widget" in c["message"]
    await fed.client.delete(kinds.WORKS, "widget-1", ES)  # nothing to delete in the member: the finalizer goes
    await eventually(lambda: _absent(fed.client, kinds.WORKS, "widget-1", ES), timeout=10)


async def test_kubectl_delete_cluster_removes_its_works_and_their_objects(fed: Federation, apiserver: RunningServer,
                                                                          member: RunningServer) -> None:
    async with Client.from_kubeconfig(member.kubeconfig) as mc:
        await fed.client.create(kinds.WORKS, work("db-1", deployment("db", "data", replicas=1)))

        async def created() -> bool:
            return not await _absent(mc, DEPLOYMENTS, "db", "data")

        await eventually(created, timeout=10)
        # kubectl waits for the finalizers: the Works, their member objects and the execution
        # namespace go first. (In a thread: the controllers share this event loop.)
        out = await asyncio.to_thread(apiserver.kubectl, "delete", "cluster", "member-x", "--timeout=30s")
        assert 'cluster.cluster.karmada.io "member-x" deleted' in out.stdout
        assert await _absent(mc, DEPLOYMENTS, "db", "data")
        assert await _absent(fed.client, kinds.WORKS, "db-1", ES)
        await eventually(lambda: _absent(fed.client, NSS, ES, None), timeout=10)
