"""Binding controller: Works per target cluster (names, cleanup, divided replicas, overrides), over a real API server."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from atoll.api.errors import NotFound
from atoll.client import Client, Resource
from atoll.federation import crds
from atoll.federation.binding import (
    BindingController,
    ClusterResourceBindingController,
    build_work,
    directly_purged_clusters,
    expected_clusters,
    job_completions,
    prune,
    revise_replicas,
    target_clusters,
    work_name,
)
from atoll.federation.detector import Detector
from atoll.federation.kinds import (
    CLUSTER_RESOURCE_BINDINGS,
    CLUSTERS,
    OVERRIDE_POLICIES,
    PROPAGATION_POLICIES,
    RESOURCE_BINDINGS,
    WORKS,
)
from tests.conftest import RunningServer
from tests.waiting import eventually

Obj = dict[str, Any]
NAMESPACES = Resource("v1", "namespaces", False, "Namespace")
DEPLOYMENTS = Resource("apps/v1", "deployments", True, "Deployment")
CLUSTER_ROLES = Resource("rbac.authorization.k8s.io/v1", "clusterroles", False, "ClusterRole")


# -- pure ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "name", "namespace", "expected"), [
    ("Deployment", "nginx", "default", "nginx-687f7fb96f"),  # as in Karmada's documentation
    ("Deployment", "Nginx", "default", "nginx-687f7fb96f"),
    ("Role", "system:controller:tom", "default", work_name("Role", "system.controller.tom", "default")),
])
def test_work_names(kind: str, name: str, namespace: str, expected: str) -> None:
    assert work_name(kind, name, namespace) == expected


def test_work_names_differ_by_kind_and_namespace() -> None:
    names = {work_name(k, "web", ns) for k in ("Deployment", "Service", "ConfigMap") for ns in ("", "a", "b")}
    assert len(names) == 9 and all(n.startswith("web-") for n in names)


@pytest.mark.parametrize(("obj", "expected"), [
    ({"kind": "Deployment", "metadata": {"name": "d", "uid": "u", "resourceVersion": "3", "generation": 2,
                                         "creationTimestamp": "t", "managedFields": [], "ownerReferences": [{}],
                                         "finalizers": ["f"], "selfLink": "x",
                                         "annotations": {"deployment.kubernetes.io/revision": "4", "keep": "1"}},
      "spec": {"replicas": 1}, "status": {"replicas": 1}},
     {"kind": "Deployment", "metadata": {"name": "d", "annotations": {"keep": "1"}}, "spec": {"replicas": 1}}),
    ({"kind": "Service", "metadata": {"name": "s"}, "spec": {"clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"],
                                                              "ports": [{"port": 80}]}},
     {"kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
    ({"kind": "Service", "metadata": {"name": "s"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"]}},
     {"kind": "Service", "metadata": {"name": "s"}, "spec": {"clusterIP": "None", "clusterIPs": ["None"]}}),
    ({"kind": "Job", "metadata": {"name": "j"},
      "spec": {"ttlSecondsAfterFinished": 10, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
               "template": {"metadata": {"labels": {"job-name": "j", "controller-uid": "u", "app": "a"}}}}},
     {"kind": "Job", "metadata": {"name": "j"},
      "spec": {"selector": {"matchLabels": {}}, "template": {"metadata": {"labels": {"app": "a"}}}}}),
    ({"kind": "ServiceAccount", "metadata": {"name": "sa"}, "secrets": [{"name": "sa-token-x"}, {"name": "other"}]},
     {"kind": "ServiceAccount", "metadata": {"name": "sa"}, "secrets": [{"name": "other"}]}),
])
def test_prune(obj: Obj, expected: Obj) -> None:
    assert prune(obj) == expected


@pytest.mark.parametrize(("obj", "replicas", "path", "expected"), [
    ({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": 5}}, 2, "replicas", 2),
    ({"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": {"replicas": 5}}, 0, "replicas", 0),
    ({"apiVersion": "apps/v1", "kind": "ReplicaSet", "spec": {"replicas": 5}}, 3, "replicas", 3),
    ({"apiVersion": "batch/v1", "kind": "Job", "spec": {"parallelism": 4, "completions": 8}}, 1, "parallelism", 1),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {}}, 2, "replicas", None),  # only a field it has
    ({"apiVersion": "apps/v1", "kind": "DaemonSet", "spec": {"replicas": 5}}, 2, "replicas", 5),
])
def test_revise_replicas(obj: Obj, replicas: int, path: str, expected: int | None) -> None:
    assert revise_replicas(obj, replicas)["spec"].get(path) == expected


def test_target_and_expected_clusters() -> None:
    spec = {"clusters": [{"name": "a", "replicas": 1}],
            "requiredBy": [{"name": "p", "namespace": "n", "clusters": [{"name": "a"}, {"name": "b"}]}],
            "gracefulEvictionTasks": [{"fromCluster": "c"}, {"fromCluster": "d", "purgeMode": "Directly"}]}
    assert [c["name"] for c in target_clusters(spec)] == ["a", "b"]
    assert expected_clusters(spec) == {"a", "b", "c"}
    assert directly_purged_clusters(spec) == {"d"}


def test_divided_job_completions_follow_parallelism_shares() -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "uid": ""},
           "spec": {"parallelism": 3, "completions": 9}}
    spec = {"replicas": 3, "placement": {"replicaScheduling": {"replicaSchedulingType": "Divided"}}}
    assert job_completions(job, spec, [{"name": "a", "replicas": 2}, {"name": "b", "replicas": 1}]) == {"a": 6, "b": 3}
    assert job_completions(job, {**spec, "placement": {}}, [{"name": "a", "replicas": 3}]) == {}


def _binding(**spec: Any) -> Obj:
    return {"apiVersion": "work.karmada.io/v1alpha2", "kind": "ResourceBinding",
            "metadata": {"name": "nginx-deployment", "namespace": "default", "uid": "b-uid",
                         "labels": {"resourcebinding.karmada.io/permanent-id": "rb-id"}},
            "spec": {"resource": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "nginx",
                                  "namespace": "default"}, "replicas": 3, **spec}}


def _template() -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "nginx", "namespace": "default", "uid": "t-uid", "resourceVersion": "7",
                         "generation": 2, "labels": {"app": "nginx", "propagationpolicy.karmada.io/permanent-id": "p"},
                         "annotations": {"propagationpolicy.karmada.io/name": "pp"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}},
            "status": {"replicas": 3}}


def test_build_work_for_one_cluster() -> None:
    cluster = {"metadata": {"name": "member1", "labels": {}}, "spec": {}}
    op = {"metadata": {"name": "image", "namespace": "default"},
          "spec": {"overrideRules": [{"overriders": {"imageOverrider": [
              {"component": "Registry", "operator": "replace", "value": "registry.example"}]}}]}}
    work = build_work(_binding(conflictResolution="Overwrite", suspension={"dispatchingOnClusters": {
        "clusterNames": ["member1"]}}), _template(), {"name": "member1", "replicas": 2}, cluster=cluster,
        override_policies=[op], cluster_override_policies=[])
    md = work["metadata"]
    assert md["name"] == "nginx-687f7fb96f" and md["namespace"] == "karmada-es-member1"
    assert md["labels"] == {"resourcebinding.karmada.io/permanent-id": "rb-id"}
    assert md["finalizers"] == ["karmada.io/execution-controller"]
    assert md["annotations"]["resourcebinding.karmada.io/name"] == "nginx-deployment"
    assert md["annotations"]["work.karmada.io/conflict-resolution"] == "overwrite"
    assert orjson.loads(md["annotations"]["policy.karmada.io/applied-overrides"])[0]["policyName"] == "image"
    assert work["spec"]["suspendDispatching"] is True and work["spec"]["preserveResourcesOnDeletion"] is False
    manifest = work["spec"]["workload"]["manifests"][0]
    assert manifest["spec"]["replicas"] == 2
    assert manifest["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example/nginx"
    assert "status" not in manifest
    mmd = manifest["metadata"]
    assert not {"uid", "resourceVersion", "generation"} & set(mmd)
    assert mmd["labels"]["resourcebinding.karmada.io/permanent-id"] == "rb-id"
    assert mmd["labels"]["karmada.io/managed"] == "true"
    ann = mmd["annotations"]
    assert ann["resourcetemplate.karmada.io/generation"] == "2" and ann["resourcetemplate.karmada.io/uid"] == "t-uid"
    assert ann["work.karmada.io/name"] == "nginx-687f7fb96f" and ann["work.karmada.io/namespace"] == "karmada-es-member1"
    assert ann["resourcetemplate.karmada.io/managed-labels"] == ",".join(sorted(mmd["labels"]))
    assert "resourcetemplate.karmada.io/managed-annotations" in ann["resourcetemplate.karmada.io/managed-annotations"]


def test_build_work_duplicated_still_uses_the_scheduled_replicas() -> None:
    """Karmada revises replicas to the scheduling result whatever the strategy (quota and queue checks)."""
    work = build_work(_binding(), _template(), {"name": "m", "replicas": 3}, cluster={"metadata": {"name": "m"}},
                      override_policies=[], cluster_override_policies=[])
    assert work["spec"]["workload"]["manifests"][0]["spec"]["replicas"] == 3
    assert "policy.karmada.io/applied-overrides" not in work["metadata"]["annotations"]
    assert work["metadata"]["annotations"]["work.karmada.io/conflict-resolution"] == "abort"


# -- over the API server ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def federation(apiserver: RunningServer) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await crds.install(client)
        for name, labels in (("member1", {"location": "eu"}), ("member2", {"location": "us"})):
            with contextlib.suppress(Exception):
                await client.create(CLUSTERS, {"apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
                                               "metadata": {"name": name, "labels": labels},
                                               "spec": {"syncMode": "Push", "apiEndpoint": "https://127.0.0.1:1"}})
        stop = asyncio.Event()
        controllers = [Detector(client), BindingController(client), ClusterResourceBindingController(client)]
        tasks = [asyncio.create_task(c.run(stop)) for c in controllers]
        try:
            yield client
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 20)


def nginx(namespace: str, replicas: int = 3) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "nginx", "namespace": namespace, "labels": {"app": "nginx"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "nginx"}},
                     "template": {"metadata": {"labels": {"app": "nginx"}},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25",
                                                           "resources": {"requests": {"cpu": "250m",
                                                                                      "memory": "64Mi"}}}]}}}}


def divided_policy(namespace: str) -> Obj:
    return {"apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
            "metadata": {"name": "nginx-propagation", "namespace": namespace},
            "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "nginx"}],
                     "placement": {"clusterAffinity": {"clusterNames": ["member1", "member2"]},
                                   "replicaScheduling": {"replicaSchedulingType": "Divided",
                                                         "replicaDivisionPreference": "Weighted"}}}}


async def work_in(client: Client, cluster: str, name: str = "nginx", namespace: str = "") -> Obj | None:
    """The Work for template ``name`` (of ``namespace``, when given) in one cluster's execution space."""
    items = (await client.list(WORKS, f"karmada-es-{cluster}"))["items"]
    return next((w for w in items if w["metadata"]["name"].startswith(f"{name}-") and (
        not namespace or manifest_of(w)["metadata"].get("namespace") == namespace)), None)


def manifest_of(work: Obj) -> Obj:
    manifest: Obj = work["spec"]["workload"]["manifests"][0]
    return manifest


async def test_scheduled_binding_becomes_works_with_divided_replicas_and_overrides(apiserver: RunningServer) -> None:
    ns = "bind-divided"
    async with federation(apiserver) as client:
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        await client.create(OVERRIDE_POLICIES, {
            "apiVersion": "policy.karmada.io/v1alpha1", "kind": "OverridePolicy",
            "metadata": {"name": "us-registry", "namespace": ns},
            "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "nginx"}],
                     "overrideRules": [{"targetCluster": {"labelSelector": {"matchLabels": {"location": "us"}}},
                                        "overriders": {"imageOverrider": [{"component": "Registry",
                                                                           "operator": "replace",
                                                                           "value": "us.registry.example"}]}}]}})
        await client.create(PROPAGATION_POLICIES, divided_policy(ns))
        deployment = await client.create(DEPLOYMENTS, nginx(ns))

        async def binding() -> Obj | None:
            try:
                rb = await client.get(RESOURCE_BINDINGS, "nginx-deployment", ns)
            except NotFound:
                return None
            return rb if rb["spec"].get("replicas") == 3 else None

        rb = await eventually(binding)
        assert rb["spec"]["replicaRequirements"]["resourceRequest"] == {"cpu": "250m", "memory": "64Mi"}
        assert rb["metadata"]["ownerReferences"][0]["uid"] == deployment["metadata"]["uid"]
        # Nothing is written before the scheduler's result.
        assert await work_in(client, "member1", namespace=ns) is None
        # The scheduler's part, done by hand: 2 + 1.
        await client.patch(RESOURCE_BINDINGS, "nginx-deployment", {"spec": {"clusters": [
            {"name": "member1", "replicas": 2}, {"name": "member2", "replicas": 1}]}}, ns)
        w1 = await eventually(lambda: work_in(client, "member1", namespace=ns))
        w2 = await eventually(lambda: work_in(client, "member2", namespace=ns))
        assert w1["metadata"]["name"] == w2["metadata"]["name"] == work_name("Deployment", "nginx", ns)
        m1, m2 = manifest_of(w1), manifest_of(w2)
        assert (m1["spec"]["replicas"], m2["spec"]["replicas"]) == (2, 1)
        assert m1["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"
        assert m2["spec"]["template"]["spec"]["containers"][0]["image"] == "us.registry.example/nginx:1.25"
        assert "policy.karmada.io/applied-overrides" in w2["metadata"]["annotations"]
        assert "policy.karmada.io/applied-overrides" not in w1["metadata"]["annotations"]
        assert m1["metadata"]["labels"]["propagationpolicy.karmada.io/permanent-id"]
        assert w1["metadata"]["labels"]["resourcebinding.karmada.io/permanent-id"] == \
            rb["metadata"]["labels"]["resourcebinding.karmada.io/permanent-id"]
        assert "uid" not in m1["metadata"] and "status" not in m1
        kubectl = apiserver.kubectl("get", "works", "-n", "karmada-es-member1", "-o", "name")
        assert w1["metadata"]["name"] in kubectl.stdout

        # The template scales: the detector updates the binding; a new result re-divides.
        await client.patch(DEPLOYMENTS, "nginx", {"spec": {"replicas": 4}}, ns)
        await eventually(lambda: _replicas_of_binding(client, ns, 4))
        await client.patch(RESOURCE_BINDINGS, "nginx-deployment", {"spec": {"clusters": [
            {"name": "member1", "replicas": 2}, {"name": "member2", "replicas": 2}]}}, ns)

        async def replicas_in(cluster: str, n: int) -> bool:
            w = await work_in(client, cluster, namespace=ns)
            return w is not None and manifest_of(w)["spec"]["replicas"] == n

        await eventually(lambda: replicas_in("member2", 2))

        # An override policy change reaches the Works it selects.
        op = await client.get(OVERRIDE_POLICIES, "us-registry", ns)
        op["spec"]["overrideRules"][0]["overriders"]["imageOverrider"][0]["value"] = "mirror.example"
        await client.replace(OVERRIDE_POLICIES, op, ns)

        async def mirrored() -> bool:
            w = await work_in(client, "member2", namespace=ns)
            return w is not None and manifest_of(w)["spec"]["template"]["spec"]["containers"][0]["image"] == \
                "mirror.example/nginx:1.25"

        await eventually(mirrored)

        # A cluster dropped from the result loses its Work.
        await client.patch(RESOURCE_BINDINGS, "nginx-deployment", {"spec": {"clusters": [
            {"name": "member1", "replicas": 4}]}}, ns)

        async def member2_gone() -> bool:
            w = await work_in(client, "member2", namespace=ns)
            return w is None or bool(w["metadata"].get("deletionTimestamp"))

        await eventually(member2_gone)
        await eventually(lambda: replicas_in("member1", 4))

        # A Work edited behind our back is put back.
        w1 = await work_in(client, "member1", namespace=ns)
        assert w1 is not None
        tampered = copy.deepcopy(w1)
        manifest_of(tampered)["spec"]["replicas"] = 99
        await client.replace(WORKS, tampered, "karmada-es-member1")
        await eventually(lambda: replicas_in("member1", 4))

        # The template deleted: the binding goes (GC), its finalizer lets the Works go first.
        await client.delete(DEPLOYMENTS, "nginx", ns)

        async def binding_gone() -> bool:
            try:
                await client.get(RESOURCE_BINDINGS, "nginx-deployment", ns)
            except NotFound:
                return True
            return False

        await eventually(binding_gone, timeout=30)
        w1 = await work_in(client, "member1", namespace=ns)
        assert w1 is None or w1["metadata"].get("deletionTimestamp")


async def _replicas_of_binding(client: Client, ns: str, n: int) -> bool:
    rb = await client.get(RESOURCE_BINDINGS, "nginx-deployment", ns)
    return bool(rb["spec"].get("replicas") == n)


async def test_cluster_scoped_template_gets_a_cluster_resource_binding_and_works(apiserver: RunningServer) -> None:
    async with federation(apiserver) as client:
        await client.create(Resource("policy.karmada.io/v1alpha1", "clusterpropagationpolicies", False), {
            "apiVersion": "policy.karmada.io/v1alpha1", "kind": "ClusterPropagationPolicy",
            "metadata": {"name": "roles"},
            "spec": {"resourceSelectors": [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                                            "name": "reader"}],
                     "placement": {"clusterAffinity": {"clusterNames": ["member1", "member2"]}}}})
        await client.create(CLUSTER_ROLES, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                                            "metadata": {"name": "reader"},
                                            "rules": [{"apiGroups": [""], "resources": ["pods"],
                                                       "verbs": ["get"]}]})

        async def crb() -> Obj | None:
            try:
                return await client.get(CLUSTER_RESOURCE_BINDINGS, "reader-clusterrole")
            except NotFound:
                return None

        binding = await eventually(crb)
        assert binding["metadata"]["labels"]["clusterpropagationpolicy.karmada.io/permanent-id"]
        assert binding["metadata"]["finalizers"] == ["karmada.io/cluster-resource-binding-controller"]
        assert "replicas" not in binding["spec"]
        await client.patch(CLUSTER_RESOURCE_BINDINGS, "reader-clusterrole",
                           {"spec": {"clusters": [{"name": "member1"}, {"name": "member2"}]}})
        w = await eventually(lambda: work_in(client, "member2", "reader"))
        assert w["metadata"]["name"] == work_name("ClusterRole", "reader", "")
        assert w["metadata"]["annotations"]["clusterresourcebinding.karmada.io/name"] == "reader-clusterrole"
        assert manifest_of(w)["rules"][0]["verbs"] == ["get"]


async def test_karmada_quickstart_applied_with_kubectl(apiserver: RunningServer) -> None:
    """Karmada's own sample, unchanged, through the real kubectl: a binding, then a Work per member."""
    ns = "quickstart"
    sample = Path(__file__).parent / "samples" / "quickstart-nginx.yaml"
    async with federation(apiserver) as client:
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        apiserver.kubectl("apply", "-n", ns, "-f", str(sample))
        rb = await eventually(lambda: _binding_if_ready(client, ns))
        assert rb["spec"]["placement"]["replicaScheduling"]["replicaSchedulingType"] == "Divided"
        got = apiserver.kubectl("get", "resourcebindings.work.karmada.io", "-n", ns, "-o", "name")
        assert "nginx-deployment" in got.stdout
        await client.patch(RESOURCE_BINDINGS, "nginx-deployment", {"spec": {"clusters": [
            {"name": "member1", "replicas": 1}, {"name": "member2", "replicas": 1}]}}, ns)
        for member in ("member1", "member2"):
            w = await eventually(lambda m=member: work_in(client, m, namespace=ns))  # type: ignore[misc]
            assert manifest_of(w)["spec"]["replicas"] == 1
            assert manifest_of(w)["metadata"]["namespace"] == ns


async def _binding_if_ready(client: Client, ns: str) -> Obj | None:
    try:
        rb = await client.get(RESOURCE_BINDINGS, "nginx-deployment", ns)
    except NotFound:
        return None
    return rb if rb["spec"].get("replicas") == 2 else None
