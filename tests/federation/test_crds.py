"""Karmada's API as CRDs: the definitions, their schemas, and serving them through a real API server.

The pure part checks the definitions and drives the API server's own structural-schema
machinery (``CustomSchema``: pruning, defaulting, validation) table-driven; the
integration part installs the CRDs into a real ``atoll apiserver`` and uses the real
kubectl on Karmada's documented samples.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from atoll.api.errors import Invalid, Timeout
from atoll.api.meta import is_qualified_name
from atoll.apiserver.crds import CustomSchema, resources_for_crd, validate_crd
from atoll.client import Client, Resource
from atoll.federation import kinds
from atoll.federation.crds import CRDS, DEFINITIONS, SPEC_HASH_ANNOTATION, Definition, install, manifests
from tests.conftest import RunningServer, require_kubectl, start_apiserver, stop_process

Obj = dict[str, Any]
SAMPLES = Path(__file__).parent / "samples"
NSS = Resource("v1", "namespaces", False, "Namespace")
DEPLOYMENTS = Resource("apps/v1", "deployments", True, "Deployment")
BY_KIND = {r.kind: r for r in kinds.ALL} | {"Deployment": DEPLOYMENTS}


def schema_of(kind: str) -> CustomSchema:
    crd = next(m for m in manifests() if m["spec"]["names"]["kind"] == kind)
    return CustomSchema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def admitted(kind: str, obj: Obj) -> tuple[Obj, list[str], list[dict[str, str]]]:
    """What the API server does to a custom object on write: prune, default, validate."""
    schema, out = schema_of(kind), copy.deepcopy(obj)
    pruned = schema.prune(out)
    schema.apply_defaults(out)
    return out, pruned, schema.validate(out)


def pp(**placement: Any) -> Obj:
    return {"apiVersion": kinds.POLICY_V1ALPHA1, "kind": "PropagationPolicy", "metadata": {"name": "p"},
            "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment"}],
                     "placement": placement}}


def contains(stored: Any, written: Any, path: str = "") -> list[str]:
    """Where ``written`` is not found in ``stored`` (defaults may add fields; nothing may go missing)."""
    if isinstance(written, dict):
        if not isinstance(stored, dict):
            return [path or "."]
        return [p for k, v in written.items()
                for p in (contains(stored[k], v, f"{path}.{k}") if k in stored else [f"{path}.{k}"])]
    if isinstance(written, list):
        if not isinstance(stored, list) or len(stored) != len(written):
            return [path or "."]
        return [p for i, (s, w) in enumerate(zip(stored, written, strict=True))
                for p in contains(s, w, f"{path}[{i}]")]
    return [] if stored == written else [path or "."]


# -- the definitions ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "kind", "version", "scope", "short", "status", "columns"), [
    ("clusters.cluster.karmada.io", "Cluster", "v1alpha1", "Cluster", [], True,
     ["VERSION", "MODE", "READY", "AGE", "ZONES", "REGION", "PROVIDER", "API-ENDPOINT", "PROXY-URL"]),
    ("propagationpolicies.policy.karmada.io", "PropagationPolicy", "v1alpha1", "Namespaced", ["pp"], False,
     ["CONFLICT-RESOLUTION", "PRIORITY", "AGE"]),
    ("clusterpropagationpolicies.policy.karmada.io", "ClusterPropagationPolicy", "v1alpha1", "Cluster", ["cpp"],
     False, ["CONFLICT-RESOLUTION", "PRIORITY", "AGE"]),
    ("overridepolicies.policy.karmada.io", "OverridePolicy", "v1alpha1", "Namespaced", ["op"], False, []),
    ("clusteroverridepolicies.policy.karmada.io", "ClusterOverridePolicy", "v1alpha1", "Cluster", ["cop"], False,
     []),
    ("resourcebindings.work.karmada.io", "ResourceBinding", "v1alpha2", "Namespaced", ["rb"], True,
     ["SCHEDULED", "FULLYAPPLIED", "AGE"]),
    ("clusterresourcebindings.work.karmada.io", "ClusterResourceBinding", "v1alpha2", "Cluster", ["crb"], True,
     ["SCHEDULED", "FULLYAPPLIED", "AGE"]),
    ("works.work.karmada.io", "Work", "v1alpha1", "Namespaced", ["wk"], True, ["WORKLOAD-KIND", "APPLIED", "AGE"]),
])
def test_definition_names_and_columns(name: str, kind: str, version: str, scope: str, short: list[str],
                                      status: bool, columns: list[str]) -> None:
    crd = next(m for m in manifests() if m["metadata"]["name"] == name)
    spec = crd["spec"]
    assert validate_crd(crd) == []
    assert (spec["names"]["kind"], spec["scope"], spec["names"].get("shortNames", [])) == (kind, scope, short)
    assert spec["names"].get("categories", []) == ([] if kind == "Cluster" else ["karmada-io"])
    [v] = spec["versions"]
    assert (v["name"], v["served"], v["storage"]) == (version, True, True)
    assert ("status" in v.get("subresources", {})) is status
    assert [c["name"] for c in v.get("additionalPrinterColumns", [])] == columns
    [info] = resources_for_crd(crd)
    resource = next(r for r in kinds.ALL if r.kind == kind)
    assert (f"{info.group}/{info.version}", info.plural, info.namespaced) == (resource.api_version,
                                                                             resource.plural, resource.namespaced)


def test_every_kind_has_one_definition() -> None:
    assert sorted(d.resource.kind for d in DEFINITIONS) == sorted(r.kind for r in kinds.ALL)


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Obj]]:
    if isinstance(node, dict):
        yield path, node
        for k, v in (node.get("properties") or {}).items():
            yield from _walk(v, f"{path}.{k}")
        if isinstance(node.get("items"), dict):
            yield from _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from _walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("crd", manifests(), ids=lambda c: c["spec"]["names"]["kind"])
def test_schemas_are_structural(crd: Obj) -> None:
    """Every node has a type, except int-or-string and the RawExtension/JSON values that preserve fields."""
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        if node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields"):
            continue
        assert node.get("type") in ("object", "array", "string", "integer", "boolean"), path
        for req in node.get("required", []):
            assert req in node.get("properties", {}), f"{path}.{req}"
    preserving = sorted(p for p, n in _walk(schema) if n.get("x-kubernetes-preserve-unknown-fields"))
    expected = {
        "Cluster": [], "PropagationPolicy": [], "ClusterPropagationPolicy": [],
        "OverridePolicy": [f".spec.{w}.{o}" for w in ("overrideRules[].overriders", "overriders")
                           for o in ("fieldOverrider[].json[].value", "fieldOverrider[].yaml[].value",
                                     "plaintext[].value")],
        "ResourceBinding": [".status.aggregatedStatus[].status"],
        "ClusterResourceBinding": [".status.aggregatedStatus[].status"],
        "Work": [".spec.workload.manifests[]", ".status.manifestStatuses[].status"],
    }
    expected["ClusterOverridePolicy"] = expected["OverridePolicy"]
    assert preserving == sorted(expected[crd["spec"]["names"]["kind"]])


@pytest.mark.parametrize(("kind", "obj", "path", "expected"), [
    # Karmada's +kubebuilder:default markers.
    ("PropagationPolicy", pp(), ".spec.priority", 0),
    ("PropagationPolicy", pp(), ".spec.preemption", "Never"),
    ("PropagationPolicy", pp(), ".spec.conflictResolution", "Abort"),
    ("PropagationPolicy", pp(), ".spec.schedulerName", "default-scheduler"),
    ("PropagationPolicy", pp(replicaScheduling={}), ".spec.placement.replicaScheduling.replicaSchedulingType",
     "Divided"),
    ("ClusterPropagationPolicy", pp(), ".spec.conflictResolution", "Abort"),
    ("PropagationPolicy", {**pp(), "spec": {**pp()["spec"], "failover": {"application": {
        "decisionConditions": {}}, "cluster": {}}}}, ".spec.failover.application.decisionConditions"
     ".tolerationSeconds", 300),
    ("PropagationPolicy", {**pp(), "spec": {**pp()["spec"], "failover": {"application": {
        "decisionConditions": {}}}}}, ".spec.failover.application.purgeMode", "Gracefully"),
    ("PropagationPolicy", {**pp(), "spec": {**pp()["spec"], "failover": {"cluster": {}}}},
     ".spec.failover.cluster.purgeMode", "Gracefully"),
    ("ResourceBinding", {"spec": {"resource": {"apiVersion": "v1", "kind": "ConfigMap", "name": "c"}}},
     ".spec.conflictResolution", "Abort"),
    ("ResourceBinding", {"spec": {"resource": {"apiVersion": "v1", "kind": "ConfigMap", "name": "c"},
                                  "schedulePriority": {}}}, ".spec.schedulePriority.priority", 0),
])
def test_defaults(kind: str, obj: Obj, path: str, expected: Any) -> None:
    out, pruned, causes = admitted(kind, obj)
    assert (pruned, causes) == ([], [])
    value: Any = out
    for part in path.strip(".").split("."):
        value = value[part]
    assert value == expected


@pytest.mark.parametrize(("kind", "obj", "field", "reason"), [
    ("PropagationPolicy", pp(replicaScheduling={"replicaSchedulingType": "Foo"}),
     "spec.placement.replicaScheduling.replicaSchedulingType", "FieldValueNotSupported"),
    ("PropagationPolicy", pp(replicaScheduling={"replicaDivisionPreference": "Even"}),
     "spec.placement.replicaScheduling.replicaDivisionPreference", "FieldValueNotSupported"),
    ("PropagationPolicy", pp(replicaScheduling={"weightPreference": {"dynamicWeight": "Cost"}}),
     "spec.placement.replicaScheduling.weightPreference.dynamicWeight", "FieldValueNotSupported"),
    ("PropagationPolicy", pp(replicaScheduling={"weightPreference": {"staticWeightList": [
        {"targetCluster": {"clusterNames": ["m1"]}, "weight": 0}]}}),
     "spec.placement.replicaScheduling.weightPreference.staticWeightList[0].weight", "FieldValueInvalid"),
    ("PropagationPolicy", pp(replicaScheduling={"weightPreference": {"staticWeightList": [{"weight": 1}]}}),
     "spec.placement.replicaScheduling.weightPreference.staticWeightList[0].targetCluster",
     "FieldValueRequired"),
    ("PropagationPolicy", pp(spreadConstraints=[{"spreadByField": "rack"}]),
     "spec.placement.spreadConstraints[0].spreadByField", "FieldValueNotSupported"),
    ("PropagationPolicy", pp(clusterAffinities=[{"affinityName": ""}]),
     "spec.placement.clusterAffinities[0].affinityName", "FieldValueInvalid"),
    ("PropagationPolicy", pp(clusterAffinities=[{"clusterNames": ["m1"]}]),
     "spec.placement.clusterAffinities[0].affinityName", "FieldValueRequired"),
    ("PropagationPolicy", {"metadata": {"name": "p"}, "spec": {"resourceSelectors": []}},
     "spec.resourceSelectors", "FieldValueInvalid"),
    ("PropagationPolicy", {"metadata": {"name": "p"}, "spec": {}}, "spec.resourceSelectors", "FieldValueRequired"),
    ("PropagationPolicy", {"metadata": {"name": "p"}}, "spec", "FieldValueRequired"),
    ("PropagationPolicy", {"spec": {"resourceSelectors": [{"kind": "Deployment"}]}},
     "spec.resourceSelectors[0].apiVersion", "FieldValueRequired"),
    ("PropagationPolicy", {"spec": {**pp()["spec"], "preemption": "Sometimes"}}, "spec.preemption",
     "FieldValueNotSupported"),
    ("PropagationPolicy", {"spec": {**pp()["spec"], "priority": "high"}}, "spec.priority",
     "FieldValueTypeInvalid"),
    ("ClusterPropagationPolicy", {"spec": {**pp()["spec"], "conflictResolution": "Merge"}},
     "spec.conflictResolution", "FieldValueNotSupported"),
    ("OverridePolicy", {"spec": {"overrideRules": [{"overriders": {"imageOverrider": [
        {"component": "Digest", "operator": "add"}]}}]}},
     "spec.overrideRules[0].overriders.imageOverrider[0].component", "FieldValueNotSupported"),
    ("OverridePolicy", {"spec": {"overrideRules": [{"overriders": {"commandOverrider": [
        {"containerName": "c", "operator": "replace"}]}}]}},
     "spec.overrideRules[0].overriders.commandOverrider[0].operator", "FieldValueNotSupported"),
    ("OverridePolicy", {"spec": {"overrideRules": [{"targetCluster": {}}]}}, "spec.overrideRules[0].overriders",
     "FieldValueRequired"),
    ("ClusterOverridePolicy", {"spec": {"overriders": {"plaintext": [{"path": "/spec"}]}}},
     "spec.overriders.plaintext[0].operator", "FieldValueRequired"),
    ("Cluster", {"spec": {"syncMode": "Sync"}}, "spec.syncMode", "FieldValueNotSupported"),
    ("Cluster", {"spec": {}}, "spec.syncMode", "FieldValueRequired"),
    ("Cluster", {"spec": {"syncMode": "Push", "taints": [{"key": "k"}]}}, "spec.taints[0].effect",
     "FieldValueRequired"),
    ("Cluster", {"spec": {"syncMode": "Push"}, "status": {"conditions": [
        {"type": "Ready", "status": "Yes", "reason": "ClusterReady", "message": "",
         "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}, "status.conditions[0].status", "FieldValueNotSupported"),
    ("Cluster", {"spec": {"syncMode": "Push"}, "status": {"conditions": [
        {"type": "Ready", "status": "True", "reason": "not camel", "message": "",
         "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}, "status.conditions[0].reason", "FieldValueInvalid"),
    ("ResourceBinding", {"spec": {"resource": {"apiVersion": "v1", "kind": "ConfigMap"}}}, "spec.resource.name",
     "FieldValueRequired"),
    ("ResourceBinding", {"spec": {"resource": {"apiVersion": "v1", "kind": "ConfigMap", "name": "c"},
                                  "gracefulEvictionTasks": [{"fromCluster": "m1", "producer": "p",
                                                             "reason": "bad reason"}]}},
     "spec.gracefulEvictionTasks[0].reason", "FieldValueInvalid"),
    ("ClusterResourceBinding", {"spec": {"resource": {"apiVersion": "v1", "kind": "Namespace", "name": "n"},
                                         "clusters": [{"replicas": 1}]}}, "spec.clusters[0].name",
     "FieldValueRequired"),
    ("Work", {"spec": {}, "status": {"manifestStatuses": [{"identifier": {
        "ordinal": 0, "version": "v1", "kind": "ConfigMap", "resource": "configmaps", "name": "c"},
        "health": "Fine"}]}}, "status.manifestStatuses[0].health", "FieldValueNotSupported"),
])
def test_rejections(kind: str, obj: Obj, field: str, reason: str) -> None:
    _, _, causes = admitted(kind, obj)
    assert (field, reason) in [(c["field"], c["reason"]) for c in causes], causes


@pytest.mark.parametrize(("kind", "obj", "kept", "pruned"), [
    # RawExtension and JSON values are kept whole, whatever they hold.
    ("Work", {"spec": {"workload": {"manifests": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"},
         "anything": {"nested": [1, 2]}}]}}}, ".spec.workload.manifests", []),
    ("Work", {"spec": {}, "status": {"manifestStatuses": [{"identifier": {
        "ordinal": 0, "version": "v1", "kind": "ConfigMap", "resource": "configmaps", "name": "c"},
        "status": {"readyReplicas": 2, "conditions": [{"type": "Available"}]}}]}},
     ".status.manifestStatuses", []),
    ("OverridePolicy", {"spec": {"overrideRules": [{"overriders": {"plaintext": [
        {"path": "/spec/template/spec/containers/0/env/-", "operator": "add", "value": {"name": "a"}},
        {"path": "/spec/replicas", "operator": "replace", "value": 3},
        {"path": "/metadata/labels/x", "operator": "replace", "value": "y"},
        {"path": "/spec/x", "operator": "add", "value": [1, "two"]}]}}]}}, ".spec.overrideRules", []),
    ("ResourceBinding", {"spec": {"resource": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d"},
                                  "replicaRequirements": {"resourceRequest": {"cpu": "250m", "memory": 64}}},
                         "status": {"aggregatedStatus": [{"clusterName": "m1", "applied": True,
                                                          "status": {"replicas": 2, "readyReplicas": 2}}]}},
     ".status.aggregatedStatus", []),
    # Unknown fields elsewhere are pruned, as kube's structural pruning does.
    ("PropagationPolicy", {"spec": {**pp()["spec"], "placment": {}}, "extra": 1}, ".spec.resourceSelectors",
     ["extra", "spec.placment"]),
    ("Cluster", {"spec": {"syncMode": "Pull", "kubeconfig": "x"}}, ".spec.syncMode", ["spec.kubeconfig"]),
])
def test_pruning(kind: str, obj: Obj, kept: str, pruned: list[str]) -> None:
    out, dropped, causes = admitted(kind, obj)
    assert causes == []
    assert sorted(dropped) == pruned
    original: Any = obj
    stored: Any = out
    for part in kept.strip(".").split("."):
        original, stored = original[part], stored[part]
    assert stored == original


@pytest.mark.parametrize(("namespace", "cluster", "reserved"), [
    ("karmada-es-member1", "member1", True),
    ("karmada-es-", None, True),
    ("karmada-system", None, True),
    ("karmada-cluster", None, True),
    ("default", None, False),
    ("karmada-esx", None, False),
])
def test_reserved_namespaces(namespace: str, cluster: str | None, reserved: bool) -> None:
    assert kinds.cluster_of_execution_namespace(namespace) == cluster
    assert kinds.is_reserved_namespace(namespace) is reserved
    if cluster:
        assert kinds.execution_namespace(cluster) == namespace


@pytest.mark.parametrize("key", sorted(v for k, v in vars(kinds).items()
                                     if k.endswith(("_LABEL", "_ANNOTATION")) or k.startswith("TAINT_")))
def test_well_known_keys_are_qualified_names(key: str) -> None:
    assert "karmada.io/" in key and is_qualified_name(key) == []


# -- through a real API server ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def federation(apiserver: RunningServer) -> RunningServer:
    """The module's API server with Karmada's CRDs installed (twice: the second must be a no-op)."""

    async def go() -> None:
        async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
            started = time.monotonic()
            await install(client)
            first = time.monotonic() - started
            before = {m["metadata"]["name"]: (await client.get(CRDS, m["metadata"]["name"]))["metadata"]
                      ["resourceVersion"] for m in manifests()}
            started = time.monotonic()
            await install(client)
            again = time.monotonic() - started
            after = {name: (await client.get(CRDS, name))["metadata"]["resourceVersion"] for name in before}
            assert after == before, "a second install rewrote unchanged CRDs"
            print(f"install: {first:.2f}s, again: {again:.2f}s")
            for res in kinds.ALL:
                assert (await client.list(res))["items"] == []

    asyncio.run(go())
    return apiserver


async def test_install_repairs_a_changed_definition(federation: RunningServer) -> None:
    name = "works.work.karmada.io"
    async with Client.from_kubeconfig(federation.kubeconfig) as client:
        await client.create(NSS, {"metadata": {"name": "karmada-es-repair"}})
        work = {"apiVersion": kinds.WORK_V1ALPHA1, "kind": "Work",
                "metadata": {"name": "w", "namespace": "karmada-es-repair"},
                "spec": {"workload": {"manifests": [{"apiVersion": "v1", "kind": "ConfigMap",
                                                     "metadata": {"name": "c"}}]}}}
        await client.create(kinds.WORKS, work)
        crd = await client.get(CRDS, name)
        crd["spec"]["names"]["shortNames"] = ["w"]
        crd["metadata"]["annotations"][SPEC_HASH_ANNOTATION] = "stale"
        await client.replace(CRDS, crd)
        await install(client)
        repaired = await client.get(CRDS, name)
        assert repaired["spec"]["names"]["shortNames"] == ["wk"]
        assert repaired["metadata"]["annotations"][SPEC_HASH_ANNOTATION] != "stale"
        # The objects already stored survive the update.
        assert (await client.get(kinds.WORKS, "w", "karmada-es-repair"))["spec"] == work["spec"]


async def test_install_times_out_on_a_name_conflict(federation: RunningServer) -> None:
    """A CRD that cannot be Established (another CRD of its group has its kind) is named in the Timeout."""
    blocker = Definition(Resource("cluster.karmada.io/v1alpha1", "gadgets", False, "Widget"), "gadget",
                         lambda: {"type": "object"}, categories=())
    widgets = Definition(Resource("cluster.karmada.io/v1alpha1", "widgets", False, "Widget"), "widget",
                         lambda: {"type": "object"}, categories=())
    async with Client.from_kubeconfig(federation.kubeconfig) as client:
        await install(client, definitions=[blocker], timeout=10)
        try:
            started = time.monotonic()
            with pytest.raises(Timeout, match=r"not served in time: widgets\.cluster\.karmada\.io$"):
                await install(client, definitions=[blocker, widgets], timeout=1)
            assert time.monotonic() - started < 3
            conditions = (await client.get(CRDS, widgets.name))["status"]["conditions"]
            assert {c["type"]: c["status"] for c in conditions} == {"NamesAccepted": "False", "Established": "False"}
        finally:
            for d in (widgets, blocker):
                await client.delete(CRDS, d.name)


def _documents(path: Path) -> list[Obj]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.yaml")))
def test_sample_applies_and_reads_back_unchanged(federation: RunningServer, sample: str) -> None:
    """``kubectl apply`` (server-side field validation Strict) accepts each sample, and nothing is pruned."""
    require_kubectl()
    docs = _documents(SAMPLES / sample)
    for ns in sorted({d["metadata"].get("namespace", "default") for d in docs} - {"default"}):
        federation.kubectl("create", "namespace", ns, check=False)
    out = federation.kubectl("apply", "-f", str(SAMPLES / sample))
    assert "Warning" not in out.stderr, out.stderr
    # Applying again changes nothing: what the server stored (defaults included) round-trips.
    again = federation.kubectl("apply", "-f", str(SAMPLES / sample)).stdout.splitlines()
    assert len(again) == len(docs) and all(line.endswith(" unchanged") for line in again), again

    async def read_back() -> None:
        async with Client.from_kubeconfig(federation.kubeconfig) as client:
            for doc in docs:
                res = BY_KIND[doc["kind"]]
                ns = doc["metadata"].get("namespace", "default") if res.namespaced else None
                stored = await client.get(res, doc["metadata"]["name"], ns)
                assert contains(stored["spec"], doc["spec"]) == [], doc["metadata"]["name"]

    asyncio.run(read_back())


def test_kubectl_get_shows_karmadas_columns(federation: RunningServer) -> None:
    require_kubectl()
    federation.kubectl("apply", "-f", str(SAMPLES / "cluster-member1.yaml"), "-f",
                       str(SAMPLES / "quickstart-nginx.yaml"), "-f", str(SAMPLES / "overridepolicy-nginx.yaml"))
    status = {"status": {"kubernetesVersion": "v1.32.0", "conditions": [
        {"type": "Ready", "status": "True", "reason": "ClusterReady", "message": "cluster is healthy and ready "
         "to accept workloads", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
    federation.kubectl("patch", "cluster", "member1", "--subresource=status", "--type=merge", "-p",
                       yaml.safe_dump(status))
    out = federation.kubectl("get", "pp,op,cluster").stdout
    lines = [line.split() for line in out.splitlines() if line.strip()]
    assert ["NAME", "CONFLICT-RESOLUTION", "PRIORITY", "AGE"] in lines
    assert ["NAME", "AGE"] in lines
    assert ["NAME", "VERSION", "MODE", "READY", "AGE"] in lines
    rows = {row[0]: row for row in lines}
    assert rows["propagationpolicy.policy.karmada.io/nginx-propagation"][1:3] == ["Abort", "0"]
    assert "overridepolicy.policy.karmada.io/nginx-op" in rows
    assert rows["cluster.cluster.karmada.io/member1"][1:4] == ["v1.32.0", "Push", "True"]
    wide = federation.kubectl("get", "clusters", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "VERSION", "MODE", "READY", "AGE", "ZONES", "REGION", "PROVIDER",
                               "API-ENDPOINT", "PROXY-URL"]
    assert wide[1].split()[5:9] == ["us-east-1a", "us-east-1", "aws", "https://127.0.0.1:6443"]
    # The karmada-io category and the short names resolve through discovery.
    listed = federation.kubectl("get", "karmada-io", "-A", "-o", "name").stdout.split()
    assert "propagationpolicy.policy.karmada.io/nginx-propagation" in listed
    assert not any(n.startswith("cluster.cluster.karmada.io/") for n in listed)
    assert federation.kubectl("get", "cpp,cop,rb,crb,wk", "-A").returncode == 0


def test_status_is_a_subresource(federation: RunningServer) -> None:
    """Writes to the main resource leave Cluster.status alone; /status leaves the spec alone."""

    async def go() -> None:
        async with Client.from_kubeconfig(federation.kubeconfig) as client:
            cluster = {"apiVersion": kinds.CLUSTER_V1ALPHA1, "kind": "Cluster", "metadata": {"name": "sub"},
                       "spec": {"syncMode": "Push", "apiEndpoint": "https://127.0.0.2:6443"},
                       "status": {"kubernetesVersion": "ignored"}}
            created = await client.create(kinds.CLUSTERS, cluster)
            assert "kubernetesVersion" not in (created.get("status") or {})
            patched = await client.patch_status(kinds.CLUSTERS, "sub", {
                "spec": {"syncMode": "Pull"}, "status": {"nodeSummary": {"totalNum": 3, "readyNum": 2},
                                                         "resourceSummary": {"allocatable": {"cpu": "12",
                                                                                             "pods": 330}}}})
            assert patched["spec"]["syncMode"] == "Push"
            assert patched["status"]["nodeSummary"] == {"totalNum": 3, "readyNum": 2}
            assert patched["status"]["resourceSummary"]["allocatable"] == {"cpu": "12", "pods": 330}

    asyncio.run(go())


def test_kubectl_explain_replica_scheduling(federation: RunningServer) -> None:
    require_kubectl()
    out = federation.kubectl("explain", "propagationpolicy.spec.placement.replicaScheduling").stdout
    assert "GROUP:      policy.karmada.io" in out and "KIND:       PropagationPolicy" in out
    for field in ("replicaDivisionPreference", "replicaSchedulingType", "weightPreference"):
        assert field in out
    assert '"Duplicated"' in out and '"Divided"' in out and '"Aggregated"' in out and '"Weighted"' in out
    deeper = federation.kubectl("explain", "pp.spec.placement.replicaScheduling.weightPreference.staticWeightList",
                                "--recursive").stdout
    for field in ("targetCluster", "clusterNames", "exclude", "fieldSelector", "labelSelector", "weight"):
        assert field in deeper


def test_invalid_enum_rejected_with_422(federation: RunningServer) -> None:
    require_kubectl()
    bad = pp(replicaScheduling={"replicaSchedulingType": "Foo"})
    bad["metadata"] = {"name": "bad", "namespace": "default"}
    out = federation.kubectl("apply", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert out.returncode != 0
    assert ('spec.placement.replicaScheduling.replicaSchedulingType: Unsupported value: "Foo": supported values: '
            '"Duplicated", "Divided"') in out.stderr, out.stderr

    async def go() -> None:
        async with Client.from_kubeconfig(federation.kubeconfig) as client:
            with pytest.raises(Invalid) as caught:
                await client.create(kinds.PROPAGATION_POLICIES, bad)
            assert caught.value.code == 422
            assert caught.value.details["causes"] == [{
                "reason": "FieldValueNotSupported", "field": "spec.placement.replicaScheduling.replicaSchedulingType",
                "message": 'Unsupported value: "Foo": supported values: "Duplicated", "Divided"'}]

    asyncio.run(go())


def test_strict_field_validation_rejects_unknown_fields(federation: RunningServer) -> None:
    require_kubectl()
    typo = pp()
    typo["metadata"] = {"name": "typo", "namespace": "default"}
    typo["spec"]["placement"] = {"clusterAfinity": {"clusterNames": ["member1"]}}
    out = federation.kubectl("apply", "-f", "-", input=yaml.safe_dump(typo), check=False)
    assert out.returncode != 0 and "clusterAfinity" in out.stderr, out.stderr


def test_server_side_apply_of_a_sample(federation: RunningServer) -> None:
    """``kubectl apply --server-side`` tracks field ownership through the CRD schemas (list items included)."""
    require_kubectl()
    federation.kubectl("create", "namespace", "ssa")
    sample = str(SAMPLES / "quickstart-nginx.yaml")
    federation.kubectl("apply", "--server-side", "-n", "ssa", "-f", sample)
    policy = yaml.safe_load(federation.kubectl("get", "pp", "nginx-propagation", "-n", "ssa", "-o", "yaml",
                                               "--show-managed-fields").stdout)
    managers = {m["manager"]: m for m in policy["metadata"]["managedFields"]}
    assert managers["kubectl"]["operation"] == "Apply"
    assert "f:replicaScheduling" in str(managers["kubectl"]["fieldsV1"])
    # Another manager changing an applied field conflicts, as with any kube object.
    edited = _documents(SAMPLES / "quickstart-nginx.yaml")[1]
    edited["spec"]["placement"]["replicaScheduling"]["replicaSchedulingType"] = "Duplicated"
    out = federation.kubectl("apply", "--server-side", "--field-manager", "someone", "-n", "ssa", "-f", "-",
                             input=yaml.safe_dump(edited), check=False)
    assert out.returncode != 0 and "conflict" in out.stderr.lower(), out.stderr


def test_binding_and_work_columns(federation: RunningServer) -> None:
    require_kubectl()

    def condition(ctype: str, status: str = "True") -> Obj:
        return {"type": ctype, "status": status, "reason": "Success", "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z"}

    async def go() -> None:
        async with Client.from_kubeconfig(federation.kubeconfig) as client:
            await client.create(NSS, {"metadata": {"name": "karmada-es-member1"}})
            await client.create(NSS, {"metadata": {"name": "cols"}})
            rb = {"apiVersion": kinds.WORK_V1ALPHA2, "kind": "ResourceBinding",
                  "metadata": {"name": "nginx-deployment", "namespace": "cols"},
                  "spec": {"resource": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "nginx",
                                        "namespace": "cols"}, "replicas": 2,
                           "clusters": [{"name": "member1", "replicas": 1}, {"name": "member2", "replicas": 1}]}}
            await client.create(kinds.RESOURCE_BINDINGS, rb)
            await client.patch_status(kinds.RESOURCE_BINDINGS, "nginx-deployment", {"status": {"conditions": [
                condition("Scheduled"), condition("FullyApplied", "False")]}}, "cols")
            work = {"apiVersion": kinds.WORK_V1ALPHA1, "kind": "Work",
                    "metadata": {"name": "nginx-687f7fb96f", "namespace": "karmada-es-member1"},
                    "spec": {"workload": {"manifests": [
                        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nginx"}},
                        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nginx"}}]}}}
            await client.create(kinds.WORKS, work)
            await client.patch_status(kinds.WORKS, work["metadata"]["name"], {"status": {"conditions": [
                condition("Applied")]}}, "karmada-es-member1")

    asyncio.run(go())
    rb = federation.kubectl("get", "rb", "-n", "cols").stdout.splitlines()
    assert rb[0].split() == ["NAME", "SCHEDULED", "FULLYAPPLIED", "AGE"]
    assert rb[1].split()[:3] == ["nginx-deployment", "True", "False"]
    wk = federation.kubectl("get", "wk", "-n", "karmada-es-member1").stdout.splitlines()
    assert wk[0].split() == ["NAME", "WORKLOAD-KIND", "APPLIED", "AGE"]
    assert wk[1].split()[:3] == ["nginx-687f7fb96f", "Deployment,Service", "True"]


def test_install_again_after_a_restart(tmp_path: Path) -> None:
    """The CRDs and their objects persist; installing at the next start writes nothing."""
    state = tmp_path / "state"
    state.mkdir()
    cluster = _documents(SAMPLES / "cluster-member1.yaml")[0]

    async def first() -> dict[str, str]:
        async with Client.from_kubeconfig(server.kubeconfig) as client:
            await install(client)
            await client.create(kinds.CLUSTERS, cluster)
            return {m["metadata"]["name"]: (await client.get(CRDS, m["metadata"]["name"]))["metadata"]
                    ["resourceVersion"] for m in manifests()}

    async def second(before: dict[str, str]) -> None:
        async with Client.from_kubeconfig(server.kubeconfig) as client:
            await install(client, timeout=10)
            after = {name: (await client.get(CRDS, name))["metadata"]["resourceVersion"] for name in before}
            assert after == before
            assert (await client.get(kinds.CLUSTERS, "member1"))["spec"] == cluster["spec"]

    server = start_apiserver(state)
    try:
        before = asyncio.run(first())
    finally:
        stop_process(server.process)
    server = start_apiserver(state)
    try:
        asyncio.run(second(before))
    finally:
        stop_process(server.process)
