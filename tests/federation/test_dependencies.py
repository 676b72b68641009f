"""propagateDeps: dependency discovery from pod templates, attached bindings following their workload."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from atoll.api.errors import NotFound
from atoll.client import Client, Resource
from atoll.federation import crds
from atoll.federation.binding import BindingController
from atoll.federation.dependencies import (
    DEPENDENCIES_ANNOTATION,
    DISTRIBUTOR_FINALIZER,
    DependenciesDistributor,
    depended_by_label,
    effective_strategy,
    get_dependencies,
    merge_snapshots,
)
from atoll.federation.detector import Detector
from atoll.federation.kinds import CLUSTERS, PROPAGATION_POLICIES, RESOURCE_BINDINGS, WORKS
from tests.conftest import RunningServer
from tests.waiting import eventually

Obj = dict[str, Any]
NAMESPACES = Resource("v1", "namespaces", False, "Namespace")
DEPLOYMENTS = Resource("apps/v1", "deployments", True, "Deployment")
CONFIGMAPS = Resource("v1", "configmaps", True, "ConfigMap")
SECRETS = Resource("v1", "secrets", True, "Secret")
SERVICEACCOUNTS = Resource("v1", "serviceaccounts", True, "ServiceAccount")

POD = {
    "serviceAccountName": "runner",
    "imagePullSecrets": [{"name": "pull"}],
    "initContainers": [{"name": "init", "envFrom": [{"configMapRef": {"name": "init-env"}}]}],
    "containers": [{"name": "app", "image": "app",
                    "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "a"}}},
                            {"name": "B", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "b"}}},
                            {"name": "C", "value": "plain"}],
                    "envFrom": [{"secretRef": {"name": "all-secret"}}]}],
    "volumes": [{"name": "v1", "configMap": {"name": "vol-cm"}},
                {"name": "v2", "secret": {"secretName": "vol-secret"}},
                {"name": "v3", "projected": {"sources": [{"configMap": {"name": "proj-cm"}},
                                                         {"secret": {"name": "proj-secret"}}]}},
                {"name": "v4", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "v5", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-secret"}}},
                {"name": "v6", "emptyDir": {}}],
}
ALL = {("ConfigMap", n) for n in ("init-env", "env-cm", "vol-cm", "proj-cm")} | {
    ("Secret", n) for n in ("pull", "env-secret", "all-secret", "vol-secret", "proj-secret", "csi-secret")} | {
    ("ServiceAccount", "runner"), ("PersistentVolumeClaim", "data")}


def _kinds_names(deps: list[Obj] | None) -> set[tuple[str, str]]:
    assert deps is not None
    assert all(d["namespace"] == "ns" and d["apiVersion"] == "v1" for d in deps)
    return {(d["kind"], d["name"]) for d in deps}


@pytest.mark.parametrize(("obj", "expected"), [
    ({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": POD}}}, ALL),
    ({"apiVersion": "apps/v1", "kind": "DaemonSet", "spec": {"template": {"spec": POD}}}, ALL),
    ({"apiVersion": "apps/v1", "kind": "ReplicaSet", "spec": {"template": {"spec": POD}}}, ALL),
    ({"apiVersion": "batch/v1", "kind": "Job", "spec": {"template": {"spec": POD}}}, ALL),
    ({"apiVersion": "batch/v1", "kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": POD}}}}},
     ALL),
    ({"apiVersion": "v1", "kind": "Pod", "spec": POD}, ALL),
    # A StatefulSet's own claim templates are not dependencies.
    ({"apiVersion": "apps/v1", "kind": "StatefulSet",
      "spec": {"template": {"spec": POD}, "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}},
     ALL - {("PersistentVolumeClaim", "data")}),
    # The default ServiceAccount is every namespace's own.
    ({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {
        "serviceAccountName": "default", "containers": [{"name": "a"}]}}}}, set()),
    ({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "spec": {"tls": [{"secretName": "tls"}]}},
     {("Secret", "tls")}),
])
def test_dependencies_of_workloads(obj: Obj, expected: set[tuple[str, str]]) -> None:
    obj = {**obj, "metadata": {"name": "w", "namespace": "ns"}}
    assert _kinds_names(get_dependencies(obj)) == expected


@pytest.mark.parametrize("obj", [
    {"apiVersion": "v1", "kind": "ConfigMap"}, {"apiVersion": "v1", "kind": "Service", "spec": {}},
    {"apiVersion": "apps/v2", "kind": "Deployment"},
])
def test_kinds_without_dependencies(obj: Obj) -> None:
    assert get_dependencies({**obj, "metadata": {"name": "x", "namespace": "ns"}}) is None


def test_depended_by_labels_are_per_parent_and_valid() -> None:
    a, b = depended_by_label("ns", "web-deployment"), depended_by_label("ns", "api-deployment")
    assert a != b and a.startswith("resourcebinding.karmada.io/depended-by-")
    assert len(a.split("/", 1)[1]) <= 63


def test_snapshots_merge_and_strategies() -> None:
    old = [{"namespace": "n", "name": "a", "clusters": [{"name": "m1"}]}]
    merged = merge_snapshots(old, [{"namespace": "n", "name": "a", "clusters": [{"name": "m2"}]},
                                   {"namespace": "n", "name": "b", "clusters": []}])
    assert merged == [{"namespace": "n", "name": "a", "clusters": [{"name": "m2"}]},
                      {"namespace": "n", "name": "b", "clusters": []}]
    assert effective_strategy([{"spec": {}}, {"spec": {"conflictResolution": "Overwrite"}}]) == ("Overwrite", False)
    assert effective_strategy([{"spec": {"preserveResourcesOnDeletion": True}}, {"spec": {}}]) == ("Abort", True)


# -- over the API server ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def federation(apiserver: RunningServer) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await crds.install(client)
        await client.create(CLUSTERS, {"apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
                                       "metadata": {"name": "member1"}, "spec": {"syncMode": "Push"}})
        stop = asyncio.Event()
        controllers = [Detector(client), BindingController(client), DependenciesDistributor(client)]
        tasks = [asyncio.create_task(c.run(stop)) for c in controllers]
        try:
            yield client
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 20)


async def get_or_none(client: Client, res: Resource, name: str, ns: str) -> Obj | None:
    try:
        return await client.get(res, name, ns)
    except NotFound:
        return None


async def test_dependencies_follow_their_workload(apiserver: RunningServer) -> None:
    ns = "deps"
    async with federation(apiserver) as client:
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        await client.create(CONFIGMAPS, {"metadata": {"name": "conf", "namespace": ns}, "data": {"k": "v"}})
        await client.create(SECRETS, {"metadata": {"name": "creds", "namespace": ns}, "stringData": {"p": "s"}})
        await client.create(PROPAGATION_POLICIES, {
            "apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
            "metadata": {"name": "web", "namespace": ns},
            "spec": {"propagateDeps": True,
                     "resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}],
                     "placement": {"clusterAffinity": {"clusterNames": ["member1"]}}}})
        pod = {"serviceAccountName": "runner",
               "containers": [{"name": "app", "image": "app", "envFrom": [{"secretRef": {"name": "creds"}}]}],
               "volumes": [{"name": "c", "configMap": {"name": "conf"}}]}
        await client.create(DEPLOYMENTS, {"apiVersion": "apps/v1", "kind": "Deployment",
                                          "metadata": {"name": "web", "namespace": ns},
                                          "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                                                   "template": {"metadata": {"labels": {"app": "web"}},
                                                                "spec": pod}}})
        parent = await eventually(lambda: get_or_none(client, RESOURCE_BINDINGS, "web-deployment", ns))
        await client.patch(RESOURCE_BINDINGS, "web-deployment", {"spec": {"clusters": [
            {"name": "member1", "replicas": 1}]}}, ns)

        async def attached(name: str, clusters: list[str]) -> Obj | None:
            rb = await get_or_none(client, RESOURCE_BINDINGS, name, ns)
            if rb is None:
                return None
            required = rb["spec"].get("requiredBy") or []
            return rb if [c["name"] for s in required for c in s.get("clusters") or []] == clusters else None

        conf_rb = await eventually(lambda: attached("conf-configmap", ["member1"]))
        assert conf_rb["spec"]["requiredBy"][0] == {"namespace": ns, "name": "web-deployment",
                                                    "clusters": [{"name": "member1", "replicas": 1}]}
        assert conf_rb["metadata"]["labels"][depended_by_label(ns, "web-deployment")] == \
            parent["metadata"]["labels"]["resourcebinding.karmada.io/permanent-id"]
        assert conf_rb["metadata"]["ownerReferences"][0]["kind"] == "ConfigMap"
        assert "placement" not in conf_rb["spec"]
        await eventually(lambda: attached("creds-secret", ["member1"]))
        parent = await client.get(RESOURCE_BINDINGS, "web-deployment", ns)
        recorded = orjson.loads(parent["metadata"]["annotations"][DEPENDENCIES_ANNOTATION])
        assert {(d["kind"], d["name"]) for d in recorded} == {("ConfigMap", "conf"), ("Secret", "creds"),
                                                             ("ServiceAccount", "runner")}
        assert DISTRIBUTOR_FINALIZER in parent["metadata"]["finalizers"]

        # The binding controller writes the dependency's Work for the parent's cluster.
        async def configmap_work() -> Obj | None:
            items = (await client.list(WORKS, "karmada-es-member1"))["items"]
            return next((w for w in items if w["spec"]["workload"]["manifests"][0]["kind"] == "ConfigMap"), None)

        work = await eventually(configmap_work)
        assert work["spec"]["workload"]["manifests"][0]["data"] == {"k": "v"}

        # A dependency created after its workload is attached when it appears.
        await client.create(SERVICEACCOUNTS, {"metadata": {"name": "runner", "namespace": ns}})
        await eventually(lambda: attached("runner-serviceaccount", ["member1"]))

        # No longer referred to: the Secret's binding drops the parent, and its Work goes.
        dep = await client.get(DEPLOYMENTS, "web", ns)
        dep["spec"]["template"]["spec"]["containers"][0].pop("envFrom")
        await client.replace(DEPLOYMENTS, dep, ns)
        detached = await eventually(lambda: attached("creds-secret", []))
        assert depended_by_label(ns, "web-deployment") not in detached["metadata"]["labels"]

        async def secret_work_gone() -> bool:
            items = (await client.list(WORKS, "karmada-es-member1"))["items"]
            return not any(w["spec"]["workload"]["manifests"][0]["kind"] == "Secret"
                           and not w["metadata"].get("deletionTimestamp") for w in items)

        await eventually(secret_work_gone)

        # propagateDeps turned off: every dependency is let go, and the finalizer too.
        p = await client.get(PROPAGATION_POLICIES, "web", ns)
        p["spec"]["propagateDeps"] = False
        await client.replace(PROPAGATION_POLICIES, p, ns)
        await eventually(lambda: attached("conf-configmap", []))

        async def finalizer_gone() -> bool:
            rb = await client.get(RESOURCE_BINDINGS, "web-deployment", ns)
            return DISTRIBUTOR_FINALIZER not in (rb["metadata"].get("finalizers") or [])

        await eventually(finalizer_gone)
