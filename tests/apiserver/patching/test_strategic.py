"""Strategic merge patch: the cases of the Kubernetes docs, kubectl's apply patches and the directives."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from atoll.api.errors import APIError, BadRequest, Invalid, UnsupportedMediaType
from atoll.apiserver.patching import SchemaResolver, builtin_resolver, custom_resolver, strategic_merge_patch

DEPLOYMENT = builtin_resolver("apps", "v1", "Deployment")

# A test type shaped like apimachinery's own strategic-merge-patch fixtures.
TEST_TYPE = SchemaResolver({
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "value": {"type": "string"},
        "mergingList": {"type": "array", "x-kubernetes-patch-strategy": "merge",
                        "x-kubernetes-patch-merge-key": "name",
                        "items": {"type": "object", "properties": {
                            "name": {"type": "string"}, "value": {"type": "string"},
                            "other": {"type": "string"},
                            "mergingIntList": {"type": "array", "x-kubernetes-patch-strategy": "merge",
                                               "items": {"type": "integer"}}}}},
        "nonMergingList": {"type": "array", "items": {"type": "object"}},
        "mergingIntList": {"type": "array", "x-kubernetes-patch-strategy": "merge", "items": {"type": "integer"}},
        "nonMergingIntList": {"type": "array", "items": {"type": "integer"}},
        "simpleMap": {"type": "object", "additionalProperties": {"type": "string"}},
        "replacingMap": {"type": "object", "x-kubernetes-patch-strategy": "replace",
                         "additionalProperties": {"type": "string"}},
        "retainKeysMap": {"type": "object", "x-kubernetes-patch-strategy": "retainKeys",
                          "properties": {"name": {"type": "string"}, "value": {"type": "string"},
                                         "other": {"type": "string"}}},
    },
}, group="test", version="v1", kind="Thing")


def y(text: str) -> Any:
    return yaml.safe_load(text)


PATCH_DEMO = y("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: patch-demo}
spec:
  replicas: 2
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers:
      - {name: patch-demo-ctr, image: nginx}
      tolerations:
      - {effect: NoSchedule, key: dedicated, value: test-team}
""")

# kubectl apply (client side) of https://k8s.io/examples/application/update_deployment.yaml after
# simple_deployment.yaml and `kubectl scale --replicas=2`: a three-way patch that drops
# minReadySeconds and updates the image.
DECLARATIVE_LIVE = y("""
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  annotations: {kubectl.kubernetes.io/last-applied-configuration: "{...old...}"}
spec:
  minReadySeconds: 5
  replicas: 2
  selector: {matchLabels: {app: nginx}}
  strategy: {rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}, type: RollingUpdate}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers:
      - name: nginx
        image: nginx:1.14.2
        ports: [{containerPort: 80, protocol: TCP}]
        env: [{name: A, value: a}, {name: B, value: b}]
      - {name: sidecar, image: busybox}
      volumes:
      - {name: data, emptyDir: {}}
""")

DOC_CASES: list[tuple[str, Any, Any, dict[str, Any]]] = [
    # kubernetes.io/docs/tasks/manage-kubernetes-objects/update-api-object-kubectl-patch
    ("docs: containers merge by name", PATCH_DEMO,
     {"spec": {"template": {"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}}}},
     {"spec.template.spec.containers": [{"name": "patch-demo-ctr-2", "image": "redis"},
                                         {"name": "patch-demo-ctr", "image": "nginx"}]}),
    ("docs: tolerations are replaced", PATCH_DEMO,
     {"spec": {"template": {"spec": {"tolerations": [{"effect": "NoSchedule", "key": "disktype",
                                                       "value": "ssd"}]}}}},
     {"spec.template.spec.tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}],
      "spec.template.spec.containers": [{"name": "patch-demo-ctr", "image": "nginx"}]}),
    ("docs: retainKeys clears rollingUpdate", DECLARATIVE_LIVE,
     {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
     {"spec.strategy": {"type": "Recreate"}}),
    ("docs: without retainKeys the strategy merges", DECLARATIVE_LIVE,
     {"spec": {"strategy": {"type": "Recreate"}}},
     {"spec.strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "Recreate"}}),
    ("kubectl apply: null deletes, setElementOrder keeps the containers", DECLARATIVE_LIVE,
     {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...new...}"}},
      "spec": {"minReadySeconds": None, "template": {"spec": {
          "$setElementOrder/containers": [{"name": "nginx"}, {"name": "sidecar"}],
          "containers": [{"image": "nginx:1.16.1", "name": "nginx"}]}}}},
     {"spec.minReadySeconds": KeyError,
      "spec.replicas": 2,
      "metadata.annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...new...}"},
      "spec.template.spec.containers": [
          {"name": "nginx", "image": "nginx:1.16.1", "ports": [{"containerPort": 80, "protocol": "TCP"}],
           "env": [{"name": "A", "value": "a"}, {"name": "B", "value": "b"}]},
          {"name": "sidecar", "image": "busybox"}]}),
    ("kubectl apply: remove an env var and reorder containers", DECLARATIVE_LIVE,
     {"spec": {"template": {"spec": {
         "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "nginx"}],
         "containers": [{"name": "nginx", "$setElementOrder/env": [{"name": "A"}],
                         "env": [{"$patch": "delete", "name": "B"}]}]}}}},
     {"spec.template.spec.containers": [
         {"name": "sidecar", "image": "busybox"},
         {"name": "nginx", "image": "nginx:1.14.2", "ports": [{"containerPort": 80, "protocol": "TCP"}],
          "env": [{"name": "A", "value": "a"}]}]}),
    ("kubectl apply: delete a container", DECLARATIVE_LIVE,
     {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "nginx"}],
                                     "containers": [{"$patch": "delete", "name": "sidecar"}]}}}},
     {"spec.template.spec.containers.names": ["nginx"]}),
    ("volumes (merge,retainKeys): switch a volume source", DECLARATIVE_LIVE,
     {"spec": {"template": {"spec": {"volumes": [
         {"name": "data", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/srv"}}]}}}},
     {"spec.template.spec.volumes": [{"name": "data", "hostPath": {"path": "/srv"}}]}),
    ("labels map merges, null deletes", DECLARATIVE_LIVE,
     {"spec": {"template": {"metadata": {"labels": {"app": None, "tier": "web"}}}}},
     {"spec.template.metadata.labels": {"tier": "web"}}),
    ("finalizers: add, delete from primitive list, order", y("""
apiVersion: apps/v1
kind: Deployment
metadata: {name: x, finalizers: [a, b, c]}
"""),
     {"metadata": {"$setElementOrder/finalizers": ["d", "b", "c"], "$deleteFromPrimitiveList/finalizers": ["a"],
                   "finalizers": ["d"]}},
     {"metadata.finalizers": ["d", "b", "c"]}),
    ("containers replaced with $patch: replace", PATCH_DEMO,
     {"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "x"}, {"$patch": "replace"}]}}}},
     {"spec.template.spec.containers": [{"name": "only", "image": "x"}]}),
    ("template spec replaced with $patch: replace", PATCH_DEMO,
     {"spec": {"template": {"spec": {"$patch": "replace", "containers": [{"name": "n", "image": "i"}]}}}},
     {"spec.template.spec": {"containers": [{"name": "n", "image": "i"}]}}),
    ("map deleted with $patch: delete", PATCH_DEMO,
     {"spec": {"template": {"metadata": {"$patch": "delete"}}}},
     {"spec.template.metadata": {}}),
    ("new list items lose their directives", PATCH_DEMO,
     {"spec": {"template": {"spec": {"volumes": [{"name": "v", "emptyDir": {}},
                                                 {"$patch": "delete", "name": "gone"}]}}}},
     {"spec.template.spec.volumes": [{"name": "v", "emptyDir": {}}]}),
    ("null patch is a no-op", PATCH_DEMO, None, {"spec.replicas": 2}),
]


def _get(obj: Any, dotted: str) -> Any:
    parts = dotted.split(".")
    if parts[-1] == "names":
        return [c["name"] for c in _get(obj, ".".join(parts[:-1]))]
    for part in parts:
        obj = obj[part]
    return obj


@pytest.mark.parametrize(("name", "original", "patch", "expected"), DOC_CASES, ids=[c[0] for c in DOC_CASES])
def test_strategic_merge_patch_on_deployments(name: str, original: Any, patch: Any,
                                              expected: dict[str, Any]) -> None:
    before = copy.deepcopy(original)
    result = strategic_merge_patch(original, patch, DEPLOYMENT)
    for path, value in expected.items():
        if value is KeyError:
            with pytest.raises(KeyError):
                _get(result, path)
        else:
            assert _get(result, path) == value, path
    assert original == before, "the input object must not change"


# Semantics pinned by k8s.io/apimachinery's strategicpatch tests.
TYPE_CASES: list[tuple[str, str, str, str]] = [
    ("setElementOrder lists items the list does not have", """
mergingList: [{name: "1"}, {name: "3"}]
""", """
$setElementOrder/mergingList: [{name: "3"}, {name: "2"}, {name: "1"}]
mergingList: [{name: "3", value: "3"}, {name: "1", value: "1"}]
""", """
mergingList: [{name: "3", value: "3"}, {name: "1", value: "1"}]
"""),
    ("setElementOrder of ints only reorders", """
mergingIntList: [1, 3]
""", """
$setElementOrder/mergingIntList: [3, 2, 1]
""", """
mergingIntList: [3, 1]
"""),
    ("merge lists of maps keeps server-only fields and order", """
mergingList: [{name: "1", other: a}, {name: "2", value: "2", other: b}]
""", """
$setElementOrder/mergingList: [{name: "4"}, {name: "1"}, {name: "2"}, {name: "3"}]
mergingList: [{name: "4", value: "4"}, {name: "3", value: "3"}]
""", """
mergingList: [{name: "4", value: "4"}, {name: "1", other: a}, {name: "2", value: "2", other: b},
              {name: "3", value: "3"}]
"""),
    ("server-only items keep their place", """
mergingList: [{name: "1"}, {name: "2"}, {name: "3"}]
""", """
mergingList: [{name: "3", value: x}, {name: "4"}]
""", """
mergingList: [{name: "1"}, {name: "2"}, {name: "3", value: x}, {name: "4"}]
"""),
    ("delete from primitive list removes every copy", """
mergingIntList: [1, 2, 3, 3, 4]
""", """
$setElementOrder/mergingIntList: [1, 2]
$deleteFromPrimitiveList/mergingIntList: [3]
""", """
mergingIntList: [1, 2, 4]
"""),
    ("primitive merge deduplicates", """
mergingIntList: [1, 2]
""", """
mergingIntList: [2, 3]
""", """
mergingIntList: [1, 2, 3]
"""),
    ("non-merging lists are replaced", """
nonMergingIntList: [1, 2]
nonMergingList: [{name: a}]
""", """
nonMergingIntList: [3]
nonMergingList: [{name: b}]
""", """
nonMergingIntList: [3]
nonMergingList: [{name: b}]
"""),
    ("nested patch merge with empty list", """
name: hi
""", """
mergingList: [{name: hello}, {$patch: delete, name: doesntexist}]
""", """
name: hi
mergingList: [{name: hello}]
"""),
    ("delete a map item by merge key", """
mergingList: [{name: a}, {name: b}]
""", """
mergingList: [{$patch: delete, name: a}]
""", """
mergingList: [{name: b}]
"""),
    ("replace strategy map is replaced", """
replacingMap: {a: "1", b: "2"}
simpleMap: {a: "1", b: "2"}
""", """
replacingMap: {c: "3"}
simpleMap: {c: "3"}
""", """
replacingMap: {c: "3"}
simpleMap: {a: "1", b: "2", c: "3"}
"""),
    ("retainKeys with null keeps the listed keys only", """
retainKeysMap: {name: n, value: v, other: o}
""", """
retainKeysMap: {$retainKeys: [name, value], value: w}
""", """
retainKeysMap: {name: n, value: w}
"""),
    ("nested primitive list inside a merged item", """
mergingList: [{name: a, mergingIntList: [1, 2]}]
""", """
mergingList: [{name: a, $deleteFromPrimitiveList/mergingIntList: [1], mergingIntList: [3]}]
""", """
mergingList: [{name: a, mergingIntList: [3, 2]}]
"""),
    ("a new map drops nulls and directive keys", """
name: x
""", """
simpleMap: {a: "1", b: null}
retainKeysMap: {$retainKeys: [name], name: n}
""", """
name: x
simpleMap: {a: "1"}
retainKeysMap: {name: n}
"""),
]


@pytest.mark.parametrize(("name", "original", "patch", "expected"), TYPE_CASES, ids=[c[0] for c in TYPE_CASES])
def test_strategic_merge_patch_semantics(name: str, original: str, patch: str, expected: str) -> None:
    assert strategic_merge_patch(y(original), y(patch), TEST_TYPE) == y(expected)


ERROR_CASES: list[tuple[str, str, str, type[APIError], int, str]] = [
    ("order does not match setElementOrder", """
mergingList: [{name: "1"}, {name: "3"}, {name: "2"}]
""", """
$setElementOrder/mergingList: [{name: "1"}, {name: "2"}, {name: "3"}]
mergingList: [{name: "3", value: "3"}, {name: "1", value: "1"}]
""", BadRequest, 400, "doesn't match $setElementOrder list"),
    ("missing merge key", """
mergingList: [{name: a}]
""", """
mergingList: [{value: x}]
""", BadRequest, 400, "does not contain declared merge key: name"),
    ("unknown $patch", """
simpleMap: {a: "1"}
""", """
simpleMap: {$patch: frobnicate}
""", BadRequest, 400, "unknown patch type: frobnicate"),
    ("$patch: merge in a list", """
mergingList: [{name: a}]
""", """
mergingList: [{$patch: merge, name: a}]
""", BadRequest, 400, "merging lists cannot yet be specified in the patch"),
    ("retainKeys not a list", """
retainKeysMap: {name: n}
""", """
retainKeysMap: {$retainKeys: name}
""", BadRequest, 400, "invalid patch format of retainKeys"),
    ("patch key outside retainKeys", """
retainKeysMap: {name: n}
""", """
retainKeysMap: {$retainKeys: [name], value: v}
""", BadRequest, 400, "invalid patch format of retainKeys"),
    ("malformed deleteFromPrimitiveList", """
mergingIntList: [1]
""", """
$deleteFromPrimitiveListmergingIntList: [1]
""", BadRequest, 400, "invalid patch format of primitive list"),
    ("malformed setElementOrder", """
mergingIntList: [1]
""", """
$setElementOrdermergingIntList: [1]
""", BadRequest, 400, "invalid patch format of setElementOrder list"),
    ("list of lists", """
mergingIntList: [[1]]
""", """
mergingIntList: [[2]]
""", Invalid, 422, "the server rejected our request due to an error in our request"),
    ("mixed element types", """
mergingIntList: [1]
""", """
mergingIntList: [[2]]
""", BadRequest, 400, "list element types are not identical"),
    ("patch is not an object", """
name: x
""", """
[1, 2]
""", BadRequest, 400, "cannot unmarshal array"),
]


@pytest.mark.parametrize(("name", "original", "patch", "error", "code", "message"), ERROR_CASES,
                         ids=[c[0] for c in ERROR_CASES])
def test_strategic_merge_patch_errors(name: str, original: str, patch: str, error: type[APIError], code: int,
                                      message: str) -> None:
    with pytest.raises(error) as info:
        strategic_merge_patch(y(original), y(patch), TEST_TYPE)
    assert info.value.code == code
    assert message in info.value.message


def test_custom_resources_reject_strategic_merge_patch_with_415() -> None:
    resolver = custom_resolver({"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                               group="example.com", version="v1", kind="Widget")
    with pytest.raises(UnsupportedMediaType) as info:
        strategic_merge_patch({"apiVersion": "example.com/v1", "kind": "Widget"}, {"spec": {}}, resolver)
    assert info.value.code == 415
    assert info.value.message == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml")


def test_without_resolver_the_object_kind_decides() -> None:
    # A Scale (autoscaling/v1) has no merge lists; the kind is read from the object itself.
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web"},
             "spec": {"replicas": 1}, "status": {"replicas": 1, "selector": "app=web"}}
    assert strategic_merge_patch(scale, b'{"spec":{"replicas":4}}', None)["spec"] == {"replicas": 4}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "a", "image": "x"}]}}
    out = strategic_merge_patch(pod, {"spec": {"containers": [{"name": "b", "image": "y"}]}}, None)
    assert [c["name"] for c in out["spec"]["containers"]] == ["b", "a"]
