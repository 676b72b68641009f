"""Override policies: each overrider, cluster targeting and the order policies apply in (Karmada's semantics)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from atoll.federation.overrides import (
    APPLIED_CLUSTER_OVERRIDES,
    APPLIED_OVERRIDES,
    Image,
    OverrideError,
    apply_overriders,
    apply_overrides,
    cluster_matches,
    override_image,
    selector_priority,
)

Obj = dict[str, Any]
SAMPLES = Path(__file__).parent / "samples"
DIGEST = "sha256:50d858e0985ecc7f60418aaf0cc5ab587f42c2570a884095a9e8ccacd0f6545c"


def deployment(image: str = "myapp:1.0.0", *, name: str = "nginx", namespace: str = "test",
               labels: dict[str, str] | None = None, command: list[str] | None = None) -> Obj:
    container: Obj = {"name": "myapp", "image": image}
    if command is not None:
        container["command"] = command
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": "nginx"}},
            "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "nginx"}},
                                                 "spec": {"containers": [container],
                                                          "initContainers": [{"name": "init", "image": "busybox"}]}}}}


def cluster(name: str, *, labels: dict[str, str] | None = None, provider: str = "", region: str = "",
            zones: list[str] | None = None) -> Obj:
    spec: Obj = {}
    if provider:
        spec["provider"] = provider
    if region:
        spec["region"] = region
    if zones:
        spec["zones"] = zones
    return {"apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
            "metadata": {"name": name, "labels": labels or {}}, "spec": spec}


def policy(name: str, overriders: Obj, *, namespace: str = "test", selectors: list[Obj] | None = None,
           target: Obj | None = None) -> Obj:
    rule: Obj = {"overriders": overriders}
    if target is not None:
        rule["targetCluster"] = target
    md: Obj = {"name": name}
    if namespace:
        md["namespace"] = namespace
    spec: Obj = {"overrideRules": [rule]}
    if selectors is not None:
        spec["resourceSelectors"] = selectors
    return {"apiVersion": "policy.karmada.io/v1alpha1", "kind": "OverridePolicy" if namespace else
            "ClusterOverridePolicy", "metadata": md, "spec": spec}


@pytest.mark.parametrize(("image", "overrider", "expected"), [
    # Karmada's user guide: add a registry, replace the repository, remove the tag.
    ("myapp:1.0.0", {"component": "Registry", "operator": "add", "value": "test-repo"}, "test-repo/myapp:1.0.0"),
    ("myapp:1.0.0", {"component": "Repository", "operator": "replace", "value": "myapp2"}, "myapp2:1.0.0"),
    ("myapp:1.0.0", {"component": "Tag", "operator": "remove"}, "myapp"),
    # Karmada's imageoverride tests.
    ("fictional.registry.example:10443/karmada/karmada-controller-manager:v1.0.0",
     {"component": "Registry", "operator": "replace", "value": "registry.k8s.io"},
     "registry.k8s.io/karmada/karmada-controller-manager:v1.0.0"),
    ("fictional.registry.example/imagename:v1", {"component": "Registry", "operator": "add", "value": "-us"},
     "fictional.registry.example-us/imagename:v1"),
    ("fictional.registry.example/imagename:v1", {"component": "Registry", "operator": "remove"}, "imagename:v1"),
    ("imagename:v1", {"component": "Repository", "operator": "add", "value": "-arm64"}, "imagename-arm64:v1"),
    ("localhost/imagename:v1", {"component": "Repository", "operator": "remove"}, "localhost/:v1"),
    ("imagename:v1", {"component": "Tag", "operator": "replace", "value": "v2"}, "imagename:v2"),
    ("imagename:v1", {"component": "Tag", "operator": "add", "value": "-beta"}, "imagename:v1-beta"),
    (f"imagename@{DIGEST}", {"component": "Tag", "operator": "replace", "value": "v2"}, "imagename:v2"),
    ("imagename:v1", {"component": "Tag", "operator": "replace", "value": DIGEST}, f"imagename@{DIGEST}"),
    (f"imagename:v1@{DIGEST}", {"component": "Tag", "operator": "remove"}, "imagename"),
    ("nginx", {"component": "Tag", "operator": "add", "value": "1.25"}, "nginx:1.25"),
    ("a/b/c:1", {"component": "Registry", "operator": "add", "value": "r.example"}, "r.example/a/b/c:1"),
])
def test_image_components(image: str, overrider: Obj, expected: str) -> None:
    assert override_image(image, overrider) == expected


@pytest.mark.parametrize("image", ["UPPER:1", "a:b:c", "", "x@sha256:short"])
def test_invalid_images_refuse(image: str) -> None:
    with pytest.raises(OverrideError):
        Image.parse(image)


def test_image_overrider_changes_containers_not_init_containers() -> None:
    out = apply_overriders(deployment(), {"imageOverrider": [{"component": "Registry", "operator": "add",
                                                              "value": "test-repo"}]})
    spec = out["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == "test-repo/myapp:1.0.0"
    assert spec["initContainers"][0]["image"] == "busybox"


def test_image_overrider_with_predicate_changes_only_that_path() -> None:
    obj = deployment()
    obj["spec"]["template"]["spec"]["containers"].append({"name": "side", "image": "side:1"})
    out = apply_overriders(obj, {"imageOverrider": [{
        "predicate": {"path": "/spec/template/spec/containers/1/image"},
        "component": "Registry", "operator": "add", "value": "test-repo"}]})
    images = [c["image"] for c in out["spec"]["template"]["spec"]["containers"]]
    assert images == ["myapp:1.0.0", "test-repo/side:1"]
    with pytest.raises(OverrideError):
        apply_overriders(obj, {"imageOverrider": [{"predicate": {"path": "/spec/nothing/image"},
                                                   "component": "Tag", "operator": "remove"}]})


def test_image_overrider_leaves_other_kinds_alone() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}}
    assert apply_overriders(cm, {"imageOverrider": [{"component": "Tag", "operator": "remove"}]}) == cm


@pytest.mark.parametrize(("target", "command", "overrider", "expected"), [
    ("command", ["myapp", "--parameter1=foo", "--parameter2=bar"],
     {"containerName": "myapp", "operator": "add", "value": ["--cluster=member1"]},
     ["myapp", "--parameter1=foo", "--parameter2=bar", "--cluster=member1"]),
    ("command", ["myapp", "--parameter1=foo", "--parameter2=bar"],
     {"containerName": "myapp", "operator": "remove", "value": ["--parameter1=foo"]},
     ["myapp", "--parameter2=bar"]),
    ("command", None, {"containerName": "myapp", "operator": "add", "value": ["run"]}, ["run"]),
    ("args", None, {"containerName": "myapp", "operator": "add", "value": ["-v"]}, ["-v"]),
    ("command", ["x"], {"containerName": "other", "operator": "add", "value": ["y"]}, ["x"]),
])
def test_command_and_args_overriders(target: str, command: list[str] | None, overrider: Obj,
                                     expected: list[str]) -> None:
    obj = deployment()
    if command is not None:
        obj["spec"]["template"]["spec"]["containers"][0][target] = command
    key = "commandOverrider" if target == "command" else "argsOverrider"
    out = apply_overriders(obj, {key: [overrider]})
    assert out["spec"]["template"]["spec"]["containers"][0][target] == expected


@pytest.mark.parametrize(("labels", "overrider", "expected"), [
    ({"app": "nginx"}, {"operator": "add", "value": {"cluster": "member1"}}, {"app": "nginx", "cluster": "member1"}),
    ({"app": "nginx"}, {"operator": "replace", "value": {"app": "web", "absent": "x"}}, {"app": "web"}),
    ({"app": "nginx", "x": "y"}, {"operator": "remove", "value": {"x": ""}}, {"app": "nginx"}),
    ({"app": "nginx"}, {"operator": "add", "value": {"example.io/tier": "front"}},
     {"app": "nginx", "example.io/tier": "front"}),
])
def test_labels_overrider(labels: dict[str, str], overrider: Obj, expected: dict[str, str]) -> None:
    out = apply_overriders(deployment(labels=labels), {"labelsOverrider": [overrider]})
    assert out["metadata"]["labels"] == expected


def test_annotations_overrider_creates_the_map() -> None:
    out = apply_overriders(deployment(), {"annotationsOverrider": [{"operator": "add", "value": {"a/b": "c"}}]})
    assert out["metadata"]["annotations"] == {"a/b": "c"}


def test_field_overrider_yaml_and_json_documents() -> None:
    """The user guide's example: a YAML document inside a ConfigMap, patched in place."""
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "example-config", "namespace": "test"},
          "data": {"db-config.yaml": "database:\n  host: localhost\n  port: 3306\n",
                   "app.json": '{"log":{"level":"info"},"name":"app"}'}}
    out = apply_overriders(cm, {"fieldOverrider": [
        {"fieldPath": "/data/db-config.yaml",
         "yaml": [{"subPath": "/database/host", "operator": "replace", "value": "remote-db.example.com"},
                  {"subPath": "/database/port", "operator": "replace", "value": 3307}]},
        {"fieldPath": "/data/app.json", "json": [{"subPath": "/log/level", "operator": "replace", "value": "debug"},
                                                 {"subPath": "/name", "operator": "remove"}]}]})
    assert yaml.safe_load(out["data"]["db-config.yaml"]) == {"database": {"host": "remote-db.example.com",
                                                                          "port": 3307}}
    assert out["data"]["db-config.yaml"] == "database:\n  host: remote-db.example.com\n  port: 3307\n"
    assert orjson.loads(out["data"]["app.json"]) == {"log": {"level": "debug"}}
    with pytest.raises(OverrideError):
        apply_overriders(cm, {"fieldOverrider": [{"fieldPath": "/metadata", "json": [
            {"subPath": "/x", "operator": "add", "value": 1}]}]})


def test_plaintext_is_a_json_patch_and_runs_last() -> None:
    out = apply_overriders(deployment(), {
        "plaintext": [{"path": "/spec/replicas", "operator": "replace", "value": 5},
                      {"path": "/metadata/labels/app", "operator": "remove"}],
        "labelsOverrider": [{"operator": "add", "value": {"app": "web"}}]})
    assert out["spec"]["replicas"] == 5 and "app" not in out["metadata"]["labels"]
    with pytest.raises(OverrideError):
        apply_overriders(deployment(), {"plaintext": [{"path": "/spec/nothing/x", "operator": "replace",
                                                       "value": 1}]})


@pytest.mark.parametrize(("affinity", "expected"), [
    ({}, {"member1", "member2", "member3"}),
    ({"clusterNames": ["member1"]}, {"member1"}),
    ({"exclude": ["member1"]}, {"member2", "member3"}),
    ({"labelSelector": {"matchLabels": {"cluster": "member1"}}}, {"member1"}),
    ({"fieldSelector": {"matchExpressions": [{"key": "region", "operator": "In", "values": ["cn-north-1"]}]}},
     {"member2"}),
    ({"fieldSelector": {"matchExpressions": [{"key": "provider", "operator": "NotIn", "values": ["aws"]}]}},
     {"member1", "member3"}),
    ({"fieldSelector": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["us"]}]}}, {"member3"}),
    ({"fieldSelector": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}}, {"member2", "member3"}),
    ({"clusterNames": ["member1", "member2"], "exclude": ["member2"]}, {"member1"}),
    ({"labelSelector": {"matchLabels": {"cluster": "member1"}}, "clusterNames": ["member2"]}, set()),
])
def test_cluster_matching(affinity: Obj, expected: set[str]) -> None:
    clusters = [cluster("member1", labels={"cluster": "member1"}, provider="gcp"),
                cluster("member2", provider="aws", region="cn-north-1", zones=["cn-north-1a"]),
                cluster("member3", provider="azure", zones=["eu", "us"])]
    assert {c["metadata"]["name"] for c in clusters if cluster_matches(c, affinity)} == expected


@pytest.mark.parametrize(("selector", "expected"), [
    ({"apiVersion": "apps/v1", "kind": "Deployment"}, 1),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "labelSelector": {"matchLabels": {"app": "nginx"}}}, 2),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "labelSelector": {"matchLabels": {"app": "other"}}}, 0),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "name": "nginx"}, 3),
    # A name decides alone: the label selector is then ignored.
    ({"apiVersion": "apps/v1", "kind": "Deployment", "name": "nginx",
      "labelSelector": {"matchLabels": {"app": "other"}}}, 3),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "name": "other"}, 0),
    ({"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "elsewhere"}, 0),
    ({"apiVersion": "apps/v1", "kind": "StatefulSet"}, 0),
    ({"apiVersion": "v1", "kind": "Deployment"}, 0),
])
def test_selector_priority(selector: Obj, expected: int) -> None:
    assert selector_priority(deployment(), selector) == expected


def test_order_cluster_policies_first_then_by_specificity_then_name() -> None:
    """Later policies win: match-all before label selector before name, names ascending within a level."""
    dep = {"apiVersion": "apps/v1", "kind": "Deployment"}
    by_name = policy("a-by-name", {"labelsOverrider": [{"operator": "add", "value": {"who": "a-by-name"}}]},
                     selectors=[{**dep, "name": "nginx"}])
    by_label = policy("z-by-label", {"labelsOverrider": [{"operator": "add", "value": {"who": "z-by-label"}}]},
                      selectors=[{**dep, "labelSelector": {"matchLabels": {"app": "nginx"}}}])
    all_b = policy("b-all", {"labelsOverrider": [{"operator": "add", "value": {"who": "b-all", "b": "1"}}]})
    all_a = policy("a-all", {"labelsOverrider": [{"operator": "add", "value": {"who": "a-all", "a": "1"}}]},
                   selectors=[dep])
    cop = policy("zz-cluster", {"labelsOverrider": [{"operator": "add", "value": {"who": "cluster", "c": "1"}}]},
                 namespace="")
    other_ns = policy("other", {"labelsOverrider": [{"operator": "add", "value": {"who": "other"}}]},
                      namespace="elsewhere")
    result = apply_overrides(deployment(), cluster("member1"), cluster_policies=[cop],
                             policies=[by_name, by_label, all_b, all_a, other_ns])
    labels = result.manifest["metadata"]["labels"]
    assert labels["who"] == "a-by-name" and labels["a"] == labels["b"] == labels["c"] == "1"
    assert [i.policy_name for i in result.overrides] == ["a-all", "b-all", "z-by-label", "a-by-name"]
    assert [i.policy_name for i in result.cluster_overrides] == ["zz-cluster"]
    annotations = result.annotations()
    applied = orjson.loads(annotations[APPLIED_OVERRIDES])
    assert [a["policyName"] for a in applied] == ["a-all", "a-by-name", "b-all", "z-by-label"]
    assert applied[0]["overriders"] == {"labelsOverrider": [{"operator": "add", "value": {"who": "a-all", "a": "1"}}]}
    assert orjson.loads(annotations[APPLIED_CLUSTER_OVERRIDES])[0]["policyName"] == "zz-cluster"


def test_rules_target_clusters_and_the_input_is_not_changed() -> None:
    p = policy("per-cluster", {}, target=None)
    p["spec"]["overrideRules"] = [
        {"targetCluster": {"clusterNames": ["member1"]},
         "overriders": {"imageOverrider": [{"component": "Registry", "operator": "replace", "value": "eu.example"}]}},
        {"targetCluster": {"clusterNames": ["member2"]},
         "overriders": {"imageOverrider": [{"component": "Registry", "operator": "replace", "value": "us.example"}]}},
    ]
    original = deployment()
    kept = copy.deepcopy(original)
    images = {}
    for name in ("member1", "member2", "member3"):
        result = apply_overrides(original, cluster(name), policies=[p])
        images[name] = result.manifest["spec"]["template"]["spec"]["containers"][0]["image"]
        if name == "member3":
            assert result.annotations() == {}
    assert images == {"member1": "eu.example/myapp:1.0.0", "member2": "us.example/myapp:1.0.0",
                      "member3": "myapp:1.0.0"}
    assert original == kept


def test_deprecated_target_cluster_and_overriders_pair() -> None:
    p = {"apiVersion": "policy.karmada.io/v1alpha1", "kind": "OverridePolicy",
         "metadata": {"name": "old", "namespace": "test"},
         "spec": {"targetCluster": {"clusterNames": ["member1"]},
                  "overriders": {"plaintext": [{"path": "/spec/replicas", "operator": "replace", "value": 9}]}}}
    assert apply_overrides(deployment(), cluster("member1"), policies=[p]).manifest["spec"]["replicas"] == 9
    assert apply_overrides(deployment(), cluster("member2"), policies=[p]).manifest["spec"]["replicas"] == 2


def test_a_cluster_scoped_manifest_ignores_namespaced_policies() -> None:
    cr = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "r"}}
    p = policy("any", {"labelsOverrider": [{"operator": "add", "value": {"x": "y"}}]})
    assert apply_overrides(cr, cluster("member1"), policies=[p]).manifest == cr


def test_the_user_guide_samples_apply() -> None:
    """Every OverridePolicy of Karmada's user guide applies cleanly to the kind of object it was written for."""
    docs = [d for d in yaml.safe_load_all((SAMPLES / "overridepolicies-docs.yaml").read_text()) if d]
    assert len(docs) > 10
    target = cluster("member1", labels={"cluster": "member1"}, provider="aws", region="cn-north-1", zones=["us"])
    dep = deployment()
    dep["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "k", "value": "v"}]
    dep["metadata"]["labels"].update({"foo": "bar", "baz": "baz"})
    dep["metadata"]["annotations"] = {"foo": "bar", "baz": "baz"}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "example", "namespace": "test"},
          "data": {"config.yaml": "app:\n  database:\n    port: 5432\n", "example": "1"}}
    for doc in docs:
        doc["metadata"]["namespace"] = "test"
        outcomes = []
        for obj in (dep, cm):
            try:
                outcomes.append(apply_overrides(obj, target, policies=[doc]).manifest)
            except OverrideError:
                continue
        assert outcomes, doc["metadata"]["name"]
    field = next(d for d in docs if d["metadata"]["name"] == "example-field-yaml")
    out = apply_overrides(cm, target, policies=[field]).manifest
    assert yaml.safe_load(out["data"]["config.yaml"]) == {"app": {"database": {"port": "3306"}}}
