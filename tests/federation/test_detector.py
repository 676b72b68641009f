"""Resource detector: policy matching and priority, binding construction, claims, unclaims and preemption."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from fractions import Fraction
from typing import Any

import pytest

from atoll.api.errors import NotFound
from atoll.client import Client, Resource
from atoll.federation import crds
from atoll.federation.detector import (
    CPP_ID_LABEL,
    CPP_NAME_ANNOTATION,
    PP_ID_LABEL,
    PP_NAME_ANNOTATION,
    PP_NAMESPACE_ANNOTATION,
    Detector,
    best_policy,
    binding_name,
    build_binding,
    format_quantity,
    get_replicas,
    merge_binding,
    skipped_namespace,
    spec_changed,
)
from atoll.federation.kinds import (
    CLUSTER_PROPAGATION_POLICIES,
    OVERRIDE_POLICIES,
    PROPAGATION_POLICIES,
    RESOURCE_BINDINGS,
)
from tests.conftest import RunningServer
from tests.waiting import eventually

Obj = dict[str, Any]
NAMESPACES = Resource("v1", "namespaces", False, "Namespace")
DEPLOYMENTS = Resource("apps/v1", "deployments", True, "Deployment")
ROLES = Resource("rbac.authorization.k8s.io/v1", "roles", True, "Role")
EVENTS = Resource("v1", "events", True, "Event")
DEP = {"apiVersion": "apps/v1", "kind": "Deployment"}


def pp(name: str, *selectors: Obj, namespace: str = "default", priority: int | None = None,
       deleting: bool = False, **spec: Any) -> Obj:
    md: Obj = {"name": name, "namespace": namespace, "labels": {PP_ID_LABEL: f"id-{name}"}}
    if deleting:
        md["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    body: Obj = {"resourceSelectors": list(selectors), "placement": {"clusterAffinity": {"clusterNames": ["m1"]}},
                 **spec}
    if priority is not None:
        body["priority"] = priority
    return {"apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy", "metadata": md, "spec": body}


def deployment(name: str = "web", namespace: str = "default", labels: dict[str, str] | None = None,
               replicas: int = 2, pod: Obj | None = None) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", "resourceVersion": "5",
                         "labels": labels if labels is not None else {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": pod or {"containers": [{"name": "c", "image": "nginx"}]}}}}


# -- pure -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("policies", "expected"), [
    ([pp("b", DEP), pp("a", DEP)], "a"),                                                   # names break ties
    ([pp("all", DEP), pp("label", {**DEP, "labelSelector": {"matchLabels": {"app": "web"}}})], "label"),
    ([pp("label", {**DEP, "labelSelector": {"matchLabels": {"app": "web"}}}), pp("z-name", {**DEP, "name": "web"})],
     "z-name"),                                                                            # name beats label
    ([pp("z-name", {**DEP, "name": "web"}), pp("all", DEP, priority=1)], "all"),           # explicit beats implicit
    ([pp("neg", {**DEP, "name": "web"}, priority=-1), pp("zero", DEP)], "zero"),
    ([pp("gone", {**DEP, "name": "web"}, deleting=True), pp("all", DEP)], "all"),          # deleting never matches
    ([pp("other", {**DEP, "name": "other"}), pp("svc", {"apiVersion": "v1", "kind": "Service"})], None),
    ([pp("elsewhere", {**DEP, "namespace": "prod"})], None),
    ([pp("own-ns", DEP, namespace="default")], "own-ns"),
    # A PropagationPolicy's selectors default to its own namespace.
    ([pp("other-ns", DEP, namespace="prod")], None),
    ([pp("label-miss", {**DEP, "labelSelector": {"matchExpressions": [
        {"key": "app", "operator": "NotIn", "values": ["web"]}]}})], None),
])
def test_policy_matching_and_priority(policies: list[Obj], expected: str | None) -> None:
    chosen = best_policy(deployment(), policies)
    assert (chosen["metadata"]["name"] if chosen else None) == expected


@pytest.mark.parametrize(("kind", "name", "expected"), [
    ("Deployment", "nginx", "nginx-deployment"),
    ("ClusterRole", "system:aggregate-to-admin", "system.aggregate-to-admin-clusterrole"),
    ("ConfigMap", "Conf", "conf-configmap"),
])
def test_binding_names(kind: str, name: str, expected: str) -> None:
    assert binding_name(kind, name) == expected


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("cpu", Fraction(1, 4), "250m"), ("cpu", Fraction(2), "2"), ("cpu", Fraction(3, 2), "1500m"),
    ("cpu", Fraction(1, 3000), "1m"), ("memory", Fraction(64 * 2**20), "64Mi"), ("memory", Fraction(10**9), "1000000000"),
    ("memory", Fraction(512), "512"), ("memory", Fraction(3 * 2**30), "3Gi"), ("nvidia.com/gpu", Fraction(2), "2"),
    ("ephemeral-storage", Fraction(2**31), "2Gi"), ("pods", Fraction(3000), "3k"),
])
def test_quantities(name: str, value: Fraction, expected: str) -> None:
    assert format_quantity(name, value) == expected


@pytest.mark.parametrize(("template", "expected"), [
    (deployment(replicas=3, pod={"containers": [
        {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
        {"name": "b", "resources": {"limits": {"cpu": "200m", "memory": "1Gi"}, "requests": {"memory": "128Mi"}}}]}),
     (3, {"resourceRequest": {"cpu": "300m", "memory": "192Mi"}})),
    # An init container asking for more than all containers together sets the request; overhead adds.
    (deployment(replicas=1, pod={"containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}],
                                 "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1"}}}],
                                 "overhead": {"cpu": "50m"}}),
     (1, {"resourceRequest": {"cpu": "1050m"}})),
    (deployment(replicas=0), (0, None)),
    (deployment(replicas=2, pod={"containers": [{"name": "a"}], "nodeSelector": {"disk": "ssd"},
                                 "tolerations": [{"key": "k", "operator": "Exists"}],
                                 "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                                     "nodeSelectorTerms": [{"matchExpressions": [
                                         {"key": "zone", "operator": "In", "values": ["a"]}]}]}}}}),
     (2, {"nodeClaim": {"hardNodeAffinity": {"nodeSelectorTerms": [{"matchExpressions": [
         {"key": "zone", "operator": "In", "values": ["a"]}]}]},
         "nodeSelector": {"disk": "ssd"}, "tolerations": [{"key": "k", "operator": "Exists"}]}})),
    ({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
      "spec": {"parallelism": 5, "completions": 3, "template": {"spec": {"containers": [{"name": "a"}]}}}}, (3, None)),
    ({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
      "spec": {"parallelism": 2, "template": {"spec": {"containers": [{"name": "a"}]}}}}, (2, None)),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
      "spec": {"containers": [{"name": "a", "resources": {"requests": {"memory": "1Gi"}}}]}},
     (1, {"resourceRequest": {"memory": "1Gi"}})),
    ({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
      "spec": {"replicas": 4, "template": {"spec": {"containers": [{"name": "a"}]}}}}, (4, None)),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}, None),
    ({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"}, "spec": {}}, None),
])
def test_replicas_and_requirements(template: Obj, expected: tuple[int, Obj | None] | None) -> None:
    assert get_replicas(template) == expected


def test_build_binding_copies_the_policy_and_the_template() -> None:
    policy = pp("p", DEP, propagateDeps=True, failover={"application": {"decisionConditions": {}}},
                conflictResolution="Overwrite", preserveResourcesOnDeletion=True, schedulerName="other",
                suspension={"dispatching": True})
    rb = build_binding(deployment(replicas=3, pod={"containers": [{"name": "a", "resources": {
        "requests": {"cpu": "1"}}}]}), policy, cluster_policy=False)
    md, spec = rb["metadata"], rb["spec"]
    assert (rb["kind"], md["name"], md["namespace"]) == ("ResourceBinding", "web-deployment", "default")
    assert md["labels"] == {PP_ID_LABEL: "id-p"}
    assert md["annotations"] == {PP_NAMESPACE_ANNOTATION: "default", PP_NAME_ANNOTATION: "p"}
    assert md["finalizers"] == ["karmada.io/binding-controller"]
    assert md["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                      "uid": "uid-web", "controller": True, "blockOwnerDeletion": True}]
    assert spec["resource"] == {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "default",
                                "name": "web", "uid": "uid-web", "resourceVersion": "5"}
    assert spec["replicas"] == 3 and spec["replicaRequirements"] == {"resourceRequest": {"cpu": "1"}}
    assert spec["placement"] == {"clusterAffinity": {"clusterNames": ["m1"]}}
    assert spec["propagateDeps"] is True and spec["conflictResolution"] == "Overwrite"
    assert spec["preserveResourcesOnDeletion"] is True and spec["schedulerName"] == "other"
    assert spec["suspension"] == {"dispatching": True} and "failover" in spec
    # Defaults as the CRDs have them.
    plain = build_binding(deployment(), pp("p", DEP), cluster_policy=False)["spec"]
    assert plain["schedulerName"] == "default-scheduler" and plain["conflictResolution"] == "Abort"
    assert "propagateDeps" not in plain and "suspension" not in plain


def test_build_cluster_resource_binding() -> None:
    cpp = {"metadata": {"name": "cp", "labels": {CPP_ID_LABEL: "cid"}}, "spec": {"placement": {}}}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r", "uid": "u"}}
    crb = build_binding(role, cpp, cluster_policy=True)
    assert crb["kind"] == "ClusterResourceBinding" and "namespace" not in crb["metadata"]
    assert crb["metadata"]["finalizers"] == ["karmada.io/cluster-resource-binding-controller"]
    assert crb["metadata"]["annotations"] == {CPP_NAME_ANNOTATION: "cp"}
    assert "replicas" not in crb["spec"] and "namespace" not in crb["spec"]["resource"]


def test_merge_keeps_the_scheduling_result_and_others_fields() -> None:
    existing = build_binding(deployment(replicas=2), pp("p", DEP), cluster_policy=False)
    existing["metadata"]["labels"]["resourcebinding.karmada.io/permanent-id"] = "rb"
    existing["metadata"]["labels"][CPP_ID_LABEL] = "old-cpp"
    existing["metadata"]["finalizers"].append("other")
    existing["spec"]["clusters"] = [{"name": "m1", "replicas": 2}]
    existing["spec"]["suspension"] = {"scheduling": True}
    existing["spec"]["propagateDeps"] = True
    desired = build_binding(deployment(replicas=5), pp("p", DEP, suspension={"dispatching": True}),
                            cluster_policy=False)
    merged = merge_binding(existing, desired, cluster_policy=False)
    assert merged["spec"]["clusters"] == [{"name": "m1", "replicas": 2}]
    assert merged["spec"]["replicas"] == 5 and "propagateDeps" not in merged["spec"]
    assert merged["spec"]["suspension"] == {"dispatching": True, "scheduling": True}
    assert merged["metadata"]["labels"]["resourcebinding.karmada.io/permanent-id"] == "rb"
    assert CPP_ID_LABEL not in merged["metadata"]["labels"]
    assert merged["metadata"]["finalizers"] == ["karmada.io/binding-controller", "other"]


@pytest.mark.parametrize(("namespace", "skipped"), [
    ("default", False), ("kube-system", True), ("kube-public", True), ("karmada-system", True),
    ("karmada-cluster", True), ("karmada-es-member1", True), ("kubeflow", False), ("", False),
])
def test_skipped_namespaces(namespace: str, skipped: bool) -> None:
    assert skipped_namespace(namespace) is skipped


def test_status_only_changes_are_ignored() -> None:
    old = deployment()
    new = {**old, "status": {"replicas": 2}, "metadata": {**old["metadata"], "resourceVersion": "9"}}
    assert not spec_changed(old, new)
    assert spec_changed(old, {**old, "metadata": {**old["metadata"], "labels": {"x": "y"}}})


# -- over the API server ----------------------------------------------------------------------


@contextlib.asynccontextmanager
async def detector(apiserver: RunningServer) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await crds.install(client)
        stop = asyncio.Event()
        task = asyncio.create_task(Detector(client).run(stop))
        try:
            yield client
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)


def policy(name: str, namespace: str, *selectors: Obj, priority: int | None = None, **spec: Any) -> Obj:
    body: Obj = {"resourceSelectors": list(selectors),
                 "placement": {"clusterAffinity": {"clusterNames": ["member1"]}}, **spec}
    if priority is not None:
        body["priority"] = priority
    md: Obj = {"name": name}
    if namespace:
        md["namespace"] = namespace
    return {"apiVersion": "policy.karmada.io/v1alpha1",
            "kind": "PropagationPolicy" if namespace else "ClusterPropagationPolicy", "metadata": md, "spec": body}


async def claimed_by(client: Client, ns: str, name: str) -> str | None:
    md = (await client.get(DEPLOYMENTS, name, ns))["metadata"]
    annotations = md.get("annotations") or {}
    if annotations.get(PP_NAME_ANNOTATION):
        return f"pp:{annotations[PP_NAME_ANNOTATION]}"
    if annotations.get(CPP_NAME_ANNOTATION):
        return f"cpp:{annotations[CPP_NAME_ANNOTATION]}"
    return None


async def binding_of(client: Client, ns: str, name: str) -> Obj | None:
    try:
        return await client.get(RESOURCE_BINDINGS, f"{name}-deployment", ns)
    except NotFound:
        return None


async def test_claims_priorities_and_bindings(apiserver: RunningServer) -> None:
    ns = "detect"
    async with detector(apiserver) as client:
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        await client.create(PROPAGATION_POLICIES, policy("all", ns, DEP))
        await client.create(PROPAGATION_POLICIES, policy("by-label", ns, {**DEP, "labelSelector": {
            "matchLabels": {"tier": "front"}}}))
        await client.create(PROPAGATION_POLICIES, policy("by-name", ns, {**DEP, "name": "named"}))
        await client.create(PROPAGATION_POLICIES, policy("urgent", ns, {**DEP, "name": "urgent"}, priority=10))
        await client.create(PROPAGATION_POLICIES, policy("urgent-low", ns, {**DEP, "name": "urgent"}))
        for name, labels in (("plain", {}), ("front", {"tier": "front"}), ("named", {"tier": "front"}),
                             ("urgent", {})):
            await client.create(DEPLOYMENTS, {**deployment(name, ns, labels), "metadata": {
                "name": name, "namespace": ns, "labels": labels}})
        expected = {"plain": "pp:all", "front": "pp:by-label", "named": "pp:by-name", "urgent": "pp:urgent"}
        for name, who in expected.items():
            await eventually(lambda n=name, w=who: _is(claimed_by(client, ns, n), w))  # type: ignore[misc]
        rb = await eventually(lambda: binding_of(client, ns, "named"))
        policy_obj = await client.get(PROPAGATION_POLICIES, "by-name", ns)
        pid = policy_obj["metadata"]["labels"][PP_ID_LABEL]
        assert policy_obj["metadata"]["finalizers"] == ["karmada.io/propagation-policy-controller"]
        assert rb["metadata"]["labels"][PP_ID_LABEL] == pid
        assert rb["metadata"]["labels"]["resourcebinding.karmada.io/permanent-id"]
        template = await client.get(DEPLOYMENTS, "named", ns)
        assert template["metadata"]["labels"][PP_ID_LABEL] == pid
        assert template["metadata"]["annotations"][PP_NAMESPACE_ANNOTATION] == ns
        assert rb["spec"]["resource"]["resourceVersion"] == template["metadata"]["resourceVersion"]

        async def applied_event() -> bool:
            items = (await client.list(EVENTS, ns))["items"]
            return any(e["reason"] == "ApplyPolicySucceed" and e["involvedObject"]["name"] == "named" for e in items)

        await eventually(applied_event)

        # A placement change reaches the binding; a new, better policy does not take a claimed template.
        p = await client.get(PROPAGATION_POLICIES, "by-name", ns)
        p["spec"]["placement"] = {"clusterAffinity": {"clusterNames": ["member2"]}}
        await client.replace(PROPAGATION_POLICIES, p, ns)

        async def placed_on_member2() -> bool:
            b = await binding_of(client, ns, "named")
            return b is not None and b["spec"]["placement"]["clusterAffinity"]["clusterNames"] == ["member2"]

        await eventually(placed_on_member2)
        await client.create(PROPAGATION_POLICIES, policy("better", ns, {**DEP, "name": "plain"}, priority=5))
        await asyncio.sleep(0.5)
        assert await claimed_by(client, ns, "plain") == "pp:all"

        # Preemption: a higher priority with preemption Always takes it.
        await client.create(PROPAGATION_POLICIES, policy("preempter", ns, {**DEP, "name": "plain"}, priority=7,
                                                         preemption="Always"))
        await eventually(lambda: _is(claimed_by(client, ns, "plain"), "pp:preempter"))

        async def binding_follows() -> bool:
            b = await binding_of(client, ns, "plain")
            return b is not None and (b["metadata"].get("annotations") or {}).get(PP_NAME_ANNOTATION) == "preempter"

        await eventually(binding_follows)

        # A selector change unclaims what the policy no longer selects; another policy then takes it.
        p = await client.get(PROPAGATION_POLICIES, "by-label", ns)
        p["spec"]["resourceSelectors"] = [{**DEP, "name": "nothing"}]
        await client.replace(PROPAGATION_POLICIES, p, ns)
        await eventually(lambda: _is(claimed_by(client, ns, "front"), "pp:all"))


async def test_deleted_policy_unclaims_and_keeps_the_binding(apiserver: RunningServer) -> None:
    ns = "unclaim"
    async with detector(apiserver) as client:
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        await client.create(PROPAGATION_POLICIES, policy("mine", ns, {**DEP, "name": "web"}))
        await client.create(DEPLOYMENTS, deployment("web", ns) | {"metadata": {"name": "web", "namespace": ns}})
        await eventually(lambda: _is(claimed_by(client, ns, "web"), "pp:mine"))
        rb = await eventually(lambda: binding_of(client, ns, "web"))
        await client.patch(RESOURCE_BINDINGS, rb["metadata"]["name"], {"spec": {"clusters": [{"name": "member1"}]}},
                           ns)
        await client.delete(PROPAGATION_POLICIES, "mine", ns)

        async def policy_gone() -> bool:
            try:
                await client.get(PROPAGATION_POLICIES, "mine", ns)
            except NotFound:
                return True
            return False

        await eventually(policy_gone)
        assert await claimed_by(client, ns, "web") is None
        template = await client.get(DEPLOYMENTS, "web", ns)
        assert PP_ID_LABEL not in (template["metadata"].get("labels") or {})
        rb = await binding_of(client, ns, "web")
        assert rb is not None, "Karmada keeps the binding (and so the workload in the members)"
        assert PP_ID_LABEL not in rb["metadata"]["labels"] and PP_NAME_ANNOTATION not in (
            rb["metadata"].get("annotations") or {})
        assert rb["spec"]["clusters"] == [{"name": "member1"}]

        # A ClusterPropagationPolicy now matching picks the template up.
        await client.create(CLUSTER_PROPAGATION_POLICIES, policy("everything", "", {**DEP, "namespace": ns}))
        await eventually(lambda: _is(claimed_by(client, ns, "web"), "cpp:everything"))

        async def cpp_binding() -> bool:
            b = await binding_of(client, ns, "web")
            return b is not None and CPP_ID_LABEL in b["metadata"]["labels"]

        await eventually(cpp_binding)
        # A namespaced policy created later does not take it, but one with preemption does.
        await client.create(PROPAGATION_POLICIES, policy("late", ns, {**DEP, "name": "web"}))
        await asyncio.sleep(0.5)
        assert await claimed_by(client, ns, "web") == "cpp:everything"
        await client.create(PROPAGATION_POLICIES, policy("takeover", ns, {**DEP, "name": "web"}, priority=-5,
                                                         preemption="Always"))
        await eventually(lambda: _is(claimed_by(client, ns, "web"), "pp:takeover"))
        rb_final = await eventually(lambda: _binding_claimed_by(client, ns, "web", "takeover"))
        assert CPP_ID_LABEL not in rb_final["metadata"]["labels"]
        await client.delete(CLUSTER_PROPAGATION_POLICIES, "everything")


async def _binding_claimed_by(client: Client, ns: str, name: str, policy_name: str) -> Obj | None:
    b = await binding_of(client, ns, name)
    if b is not None and (b["metadata"].get("annotations") or {}).get(PP_NAME_ANNOTATION) == policy_name:
        return b
    return None


async def test_kinds_named_by_a_policy_are_watched(apiserver: RunningServer) -> None:
    ns = "dynamic"
    async with detector(apiserver) as client:
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        await client.create(ROLES, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                                    "metadata": {"name": "reader", "namespace": ns},
                                    "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
        await client.create(PROPAGATION_POLICIES, policy("roles", ns, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role"}))

        async def role_binding() -> Obj | None:
            try:
                return await client.get(RESOURCE_BINDINGS, "reader-role", ns)
            except NotFound:
                return None

        rb = await eventually(role_binding)
        assert rb["spec"]["resource"]["kind"] == "Role" and "replicas" not in rb["spec"]
        # kube-* and Karmada's namespaces are never propagated.
        await client.create(ROLES, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                                    "metadata": {"name": "sys", "namespace": "kube-system"}, "rules": []})
        await client.create(CLUSTER_PROPAGATION_POLICIES, policy("all-roles", "", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role"}))
        await asyncio.sleep(0.5)
        with pytest.raises(NotFound):
            await client.get(RESOURCE_BINDINGS, "sys-role", "kube-system")


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def test_dependent_overrides_are_waited_for(apiserver: RunningServer) -> None:
    ns = "waits"
    async with detector(apiserver) as client:
        await client.create(NAMESPACES, {"metadata": {"name": ns}})
        await client.create(PROPAGATION_POLICIES, policy("needs-op", ns, {**DEP, "name": "web"},
                                                         dependentOverrides=["registry"]))
        await client.create(DEPLOYMENTS, deployment("web", ns) | {"metadata": {"name": "web", "namespace": ns}})
        await asyncio.sleep(0.5)
        assert await claimed_by(client, ns, "web") is None
        assert await binding_of(client, ns, "web") is None
        await client.create(OVERRIDE_POLICIES, {"apiVersion": "policy.karmada.io/v1alpha1", "kind": "OverridePolicy",
                                                "metadata": {"name": "registry", "namespace": ns},
                                                "spec": {"overrideRules": []}})
        await eventually(lambda: _is(claimed_by(client, ns, "web"), "pp:needs-op"), timeout=10)
        await eventually(lambda: binding_of(client, ns, "web"))
