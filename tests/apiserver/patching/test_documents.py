"""JSON Patch (RFC 6902) and JSON Merge Patch (RFC 7386), with kube-apiserver's status codes."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from atoll.api.errors import APIError, BadRequest, Invalid, RequestEntityTooLarge
from atoll.apiserver.patching import json_patch, merge_patch

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "nginx"}]}}},
}

JSON_PATCH_CASES: list[tuple[str, list[dict[str, Any]], dict[str, Any]]] = [
    ("replace scalar", [{"op": "replace", "path": "/spec/replicas", "value": 5}], {"spec.replicas": 5}),
    ("add label", [{"op": "add", "path": "/metadata/labels/tier", "value": "front"}],
     {"metadata.labels": {"app": "web", "tier": "front"}}),
    ("remove label", [{"op": "remove", "path": "/metadata/labels/app"}], {"metadata.labels": {}}),
    ("append container", [{"op": "add", "path": "/spec/template/spec/containers/-",
                           "value": {"name": "b", "image": "redis"}}],
     {"spec.template.spec.containers": [{"name": "a", "image": "nginx"}, {"name": "b", "image": "redis"}]}),
    ("test then replace", [{"op": "test", "path": "/spec/replicas", "value": 2},
                           {"op": "replace", "path": "/spec/replicas", "value": 3}], {"spec.replicas": 3}),
    ("escaped key", [{"op": "add", "path": "/metadata/labels/example.com~1team", "value": "x"}],
     {"metadata.labels": {"app": "web", "example.com/team": "x"}}),
    ("move", [{"op": "move", "from": "/metadata/labels/app", "path": "/metadata/labels/name"}],
     {"metadata.labels": {"name": "web"}}),
    ("copy", [{"op": "copy", "from": "/metadata/name", "path": "/metadata/labels/name"}],
     {"metadata.labels": {"app": "web", "name": "web"}}),
]


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj[part]
    return obj


@pytest.mark.parametrize(("name", "patch", "expected"), JSON_PATCH_CASES, ids=[c[0] for c in JSON_PATCH_CASES])
@pytest.mark.parametrize("as_bytes", [False, True], ids=["parsed", "bytes"])
def test_json_patch_applies(name: str, patch: list[dict[str, Any]], expected: dict[str, Any],
                            as_bytes: bool) -> None:
    original = copy.deepcopy(DEPLOYMENT)
    result = json_patch(original, orjson.dumps(patch) if as_bytes else patch)
    for path, value in expected.items():
        assert _get(result, path) == value
    assert original == DEPLOYMENT, "the input object must not change"


JSON_PATCH_ERRORS: list[tuple[str, Any, type[APIError], int, str]] = [
    ("failed test", [{"op": "test", "path": "/spec/replicas", "value": 3}], Invalid, 422,
     "the server rejected our request due to an error in our request"),
    ("test true against 1", [{"op": "test", "path": "/spec/replicas", "value": True}], Invalid, 422,
     "the server rejected our request due to an error in our request"),
    ("remove missing", [{"op": "remove", "path": "/metadata/annotations"}], Invalid, 422,
     "the server rejected our request due to an error in our request"),
    ("replace missing", [{"op": "replace", "path": "/spec/paused", "value": True}], Invalid, 422,
     "the server rejected our request due to an error in our request"),
    ("add below missing parent", [{"op": "add", "path": "/metadata/annotations/a", "value": "b"}], Invalid, 422,
     "the server rejected our request due to an error in our request"),
    ("unknown op", [{"op": "frobnicate", "path": "/spec"}], Invalid, 422,
     "the server rejected our request due to an error in our request"),
    ("missing path", [{"op": "add", "value": 1}], Invalid, 422,
     "the server rejected our request due to an error in our request"),
    ("not an array", {"op": "add", "path": "/a", "value": 1}, BadRequest, 400,
     "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
    ("array of strings", ["add"], BadRequest, 400,
     "json: cannot unmarshal string into Go value of type jsonpatch.Operation"),
    ("not JSON", b"[{", BadRequest, 400, "error decoding patch"),
    ("root replaced by a list", [{"op": "replace", "path": "", "value": [1]}], Invalid, 422,
     "cannot unmarshal array"),
]


@pytest.mark.parametrize(("name", "patch", "error", "code", "message"), JSON_PATCH_ERRORS,
                         ids=[c[0] for c in JSON_PATCH_ERRORS])
def test_json_patch_errors(name: str, patch: Any, error: type[APIError], code: int, message: str) -> None:
    with pytest.raises(error) as info:
        json_patch(copy.deepcopy(DEPLOYMENT), patch)
    assert info.value.code == code
    assert message in info.value.message


def test_json_patch_operation_limit() -> None:
    ops = [{"op": "test", "path": "/kind", "value": "Deployment"}] * 10001
    with pytest.raises(RequestEntityTooLarge) as info:
        json_patch(copy.deepcopy(DEPLOYMENT), ops)
    assert info.value.message == "The allowed maximum operations in a JSON patch is 10000, got 10001"
    assert json_patch(copy.deepcopy(DEPLOYMENT), ops[:10000]) == DEPLOYMENT


# RFC 7386 appendix A, the cases whose target and result are objects.
RFC7386_CASES: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ({"a": "b"}, {}, {"a": "b"}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7386_CASES)
def test_merge_patch_rfc7386(target: dict[str, Any], patch: dict[str, Any], expected: dict[str, Any]) -> None:
    before = copy.deepcopy(target)
    assert merge_patch(target, patch) == expected
    assert merge_patch(target, orjson.dumps(patch)) == expected
    assert target == before


def test_merge_patch_replaces_lists_of_a_deployment() -> None:
    # kubectl patch --type merge: the containers list is replaced, not merged.
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "hello-app:2.0"}]}}}}
    result = merge_patch(copy.deepcopy(DEPLOYMENT), patch)
    assert result["spec"]["template"]["spec"]["containers"] == [{"name": "c", "image": "hello-app:2.0"}]
    assert result["spec"]["replicas"] == 2


MERGE_PATCH_ERRORS: list[tuple[str, Any, type[APIError], int, str]] = [
    ("null", b"null", BadRequest, 400, "Invalid JSON Patch"),
    ("array", [1], Invalid, 422, "cannot unmarshal array"),
    ("string", b'"x"', Invalid, 422, "cannot unmarshal string"),
    ("not JSON", b"{", BadRequest, 400, "error decoding patch"),
]


@pytest.mark.parametrize(("name", "patch", "error", "code", "message"), MERGE_PATCH_ERRORS,
                         ids=[c[0] for c in MERGE_PATCH_ERRORS])
def test_merge_patch_errors(name: str, patch: Any, error: type[APIError], code: int, message: str) -> None:
    with pytest.raises(error) as info:
        merge_patch(copy.deepcopy(DEPLOYMENT), patch)
    assert info.value.code == code
    assert message in info.value.message
