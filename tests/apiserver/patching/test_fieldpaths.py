"""FieldsV1: the managedFields encoding of field sets, and field paths in messages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from atoll.apiserver.patching import from_fields_v1, path_string, to_fields_v1
from atoll.apiserver.patching.fieldpaths import Path, iterate_sorted, key_element, value_element


def f(*names: str) -> Path:
    return tuple(("f", n) for n in names)


NGINX = key_element({"name": "nginx"})
PORT = key_element({"protocol": "TCP", "containerPort": 80})

ROUND_TRIP: list[tuple[str, set[Path], dict[str, Any]]] = [
    ("leaves", {f("data", "key"), f("metadata", "labels", "test-label")},
     {"f:data": {"f:key": {}}, "f:metadata": {"f:labels": {"f:test-label": {}}}}),
    ("member with children gets a dot", {f("metadata", "labels"), f("metadata", "labels", "app")},
     {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}),
    ("list items by key, keys sorted", {
        (*f("spec", "containers"), NGINX), (*f("spec", "containers"), NGINX, ("f", "image")),
        (*f("spec", "containers"), NGINX, ("f", "ports"), PORT),
        (*f("spec", "containers"), NGINX, ("f", "ports"), PORT, ("f", "containerPort")),
    }, {"f:spec": {"f:containers": {'k:{"name":"nginx"}': {
        ".": {}, "f:image": {},
        "f:ports": {'k:{"containerPort":80,"protocol":"TCP"}': {".": {}, "f:containerPort": {}}}}}}}),
    ("set items by value", {(*f("metadata", "finalizers"), value_element("b")),
                            (*f("metadata", "finalizers"), value_element("a"))},
     {"f:metadata": {"f:finalizers": {'v:"a"': {}, 'v:"b"': {}}}}),
]


@pytest.mark.parametrize(("name", "paths", "fields"), ROUND_TRIP, ids=[c[0] for c in ROUND_TRIP])
def test_fields_v1_round_trip(name: str, paths: set[Path], fields: dict[str, Any]) -> None:
    encoded = to_fields_v1(paths)
    assert encoded == fields
    assert json.dumps(encoded) == json.dumps(fields), "key order must match kube's"
    assert from_fields_v1(fields) == paths


def test_fields_v1_order_is_fields_then_keys_then_values() -> None:
    paths = {f("b"), f("a"), (key_element({"name": "z"}),), (key_element({"name": "a"}),),
             (value_element(2),), (value_element("x"),), (value_element(10),)}
    assert list(to_fields_v1(paths)) == ["f:a", "f:b", 'k:{"name":"a"}', 'k:{"name":"z"}', "v:2", "v:10", 'v:"x"']


def test_from_fields_v1_skips_unknown_element_types_and_rejects_garbage() -> None:
    assert from_fields_v1({"x:whatever": {}, "f:a": {}}) == {f("a")}
    with pytest.raises(ValueError, match="missing colon"):
        from_fields_v1({"nonsense": {}})
    with pytest.raises(ValueError):
        from_fields_v1({"k:{not json": {}})


def test_key_element_json_is_go_style() -> None:
    assert key_element({"name": "a<b>&c"}) == ("k", '{"name":"a\\u003cb\\u003e\\u0026c"}')
    assert value_element(1.0) == value_element(1)


PATH_STRINGS = [
    (f("spec", "replicas"), ".spec.replicas"),
    ((*f("spec", "template", "spec", "containers"), NGINX, ("f", "image")),
     '.spec.template.spec.containers[name="nginx"].image'),
    ((*f("spec", "ports"), PORT), '.spec.ports[containerPort=80,protocol="TCP"]'),
    ((*f("metadata", "finalizers"), value_element("a")), '.metadata.finalizers[="a"]'),
    ((*f("x"), ("i", 3)), ".x[3]"),
]


@pytest.mark.parametrize(("path", "text"), PATH_STRINGS)
def test_path_string(path: Path, text: str) -> None:
    assert path_string(path) == text


def test_iteration_order_members_before_subtrees() -> None:
    paths = {f("spec", "template", "x"), f("spec", "replicas"), f("metadata", "labels", "a"), f("apiVersion")}
    assert [path_string(p) for p in iterate_sorted(paths)] == [
        ".apiVersion", ".metadata.labels.a", ".spec.replicas", ".spec.template.x"]
