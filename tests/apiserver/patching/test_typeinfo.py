"""The type resolver: what patching learns about a field from the schemas."""

from __future__ import annotations

from typing import Any

import pytest

from atoll.api.resources import ResourceInfo
from atoll.apiserver.patching import UNTYPED, builtin_resolver, custom_resolver, resolver_for

CRD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "args": {"type": "array", "items": {"type": "string"}},
                "ports": {
                    "type": "array",
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["port", "protocol"],
                    "items": {"type": "object", "properties": {
                        "port": {"type": "integer"},
                        "protocol": {"type": "string", "default": "TCP"},
                    }},
                },
                "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
                "selector": {"type": "object", "x-kubernetes-map-type": "atomic",
                             "additionalProperties": {"type": "string"}},
                "settings": {"type": "object", "additionalProperties": {"type": "string"}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "count": {"x-kubernetes-int-or-string": True},
            },
        },
    },
}

# (group, version, kind, path) -> (shape, list_type, list_map_keys, map_type, patch_strategies, merge_key)
BUILTIN_CASES: list[tuple[tuple[str, str, str], tuple[str | int, ...], tuple[Any, ...]]] = [
    (("apps", "v1", "Deployment"), ("spec", "template", "spec", "containers"),
     ("list", "map", ("name",), "granular", ("merge",), "name")),
    (("apps", "v1", "Deployment"), ("spec", "template", "spec", "containers", 0, "ports"),
     ("list", "map", ("containerPort", "protocol"), "granular", ("merge",), "containerPort")),
    (("apps", "v1", "Deployment"), ("spec", "template", "spec", "containers", 0, "args"),
     ("list", "atomic", (), "granular", (), None)),
    (("apps", "v1", "Deployment"), ("spec", "template", "spec", "containers", 0, "env"),
     ("list", "map", ("name",), "granular", ("merge",), "name")),
    (("apps", "v1", "Deployment"), ("spec", "template", "spec", "tolerations"),
     ("list", "atomic", (), "granular", (), None)),
    (("apps", "v1", "Deployment"), ("spec", "template", "spec", "volumes"),
     ("list", "map", ("name",), "granular", ("merge", "retainKeys"), "name")),
    (("apps", "v1", "Deployment"), ("spec", "template", "spec", "nodeSelector"),
     ("map", "atomic", (), "atomic", (), None)),
    (("apps", "v1", "Deployment"), ("spec", "selector"), ("map", "atomic", (), "atomic", (), None)),
    (("apps", "v1", "Deployment"), ("spec", "strategy"), ("map", "atomic", (), "granular", ("retainKeys",), None)),
    (("apps", "v1", "Deployment"), ("spec", "replicas"), ("scalar", "atomic", (), "granular", (), None)),
    (("apps", "v1", "Deployment"), ("metadata", "labels"), ("map", "atomic", (), "granular", (), None)),
    (("apps", "v1", "Deployment"), ("metadata", "finalizers"), ("list", "set", (), "granular", ("merge",), None)),
    (("apps", "v1", "Deployment"), ("metadata", "ownerReferences"),
     ("list", "map", ("uid",), "granular", ("merge",), "uid")),
    (("", "v1", "Node"), ("spec", "podCIDRs"), ("list", "set", (), "granular", ("merge",), None)),
    (("policy", "v1", "PodDisruptionBudget"), ("spec", "selector"),
     ("map", "atomic", (), "atomic", ("replace",), None)),
    (("", "v1", "Service"), ("spec", "ports"),
     ("list", "map", ("port", "protocol"), "granular", ("merge",), "port")),
    (("apps", "v1", "Deployment"), ("spec", "template", "spec", "containers", 0, "resources", "limits", "cpu"),
     ("any", "atomic", (), "granular", (), None)),
]


@pytest.mark.parametrize(("gvk", "path", "expected"), BUILTIN_CASES,
                         ids=[f"{c[0][2]}:{'.'.join(map(str, c[1]))}" for c in BUILTIN_CASES])
def test_builtin_fields(gvk: tuple[str, str, str], path: tuple[str | int, ...], expected: tuple[Any, ...]) -> None:
    node = builtin_resolver(*gvk).lookup(path)
    assert node is not None
    got = (node.shape, node.list_type, node.list_map_keys, node.map_type, node.patch_strategies,
           node.patch_merge_key)
    assert got == expected


CRD_CASES: list[tuple[tuple[str | int, ...], tuple[Any, ...] | None]] = [
    (("spec", "args"), ("list", "atomic", (), "granular")),
    (("spec", "ports"), ("list", "map", ("port", "protocol"), "granular")),
    (("spec", "tags"), ("list", "set", (), "granular")),
    (("spec", "selector"), ("map", "atomic", (), "atomic")),
    (("spec", "settings"), ("map", "atomic", (), "granular")),
    (("spec", "settings", "anything"), ("scalar", "atomic", (), "granular")),
    (("spec", "extra", "deep"), ("any", "atomic", (), "granular")),
    (("spec", "count"), ("any", "atomic", (), "granular")),
    (("metadata", "labels"), ("map", "atomic", (), "granular")),
    (("metadata", "finalizers"), ("list", "set", (), "granular")),
    (("spec", "undeclared"), None),
]


@pytest.mark.parametrize(("path", "expected"), CRD_CASES, ids=[".".join(map(str, c[0])) for c in CRD_CASES])
def test_custom_resource_fields(path: tuple[str | int, ...], expected: tuple[Any, ...] | None) -> None:
    resolver = custom_resolver(CRD_SCHEMA, group="example.com", version="v1", kind="Widget")
    node = resolver.lookup(path)
    if expected is None:
        assert node is None
        return
    assert node is not None
    assert (node.shape, node.list_type, node.list_map_keys, node.map_type) == expected
    if path[0] == "spec":
        assert node.patch_strategies == ()


def test_custom_resources_carry_no_patch_strategy_and_are_marked_custom() -> None:
    info = ResourceInfo(group="example.com", version="v1", kind="Widget", plural="widgets", singular="widget",
                        namespaced=True, schema=CRD_SCHEMA, custom=True)
    resolver = resolver_for(info)
    assert resolver.custom
    assert resolver.root.declares("metadata") and resolver.root.declares("apiVersion")


def test_builtin_resolver_for_resource_info_and_unknown_kinds() -> None:
    info = ResourceInfo(group="apps", version="v1", kind="Deployment", plural="deployments",
                        singular="deployment", namespaced=True)
    resolver = resolver_for(info)
    assert not resolver.custom
    assert resolver.root.defname == "io.k8s.api.apps.v1.Deployment"
    unknown = builtin_resolver("policy.karmada.io", "v1alpha1", "PropagationPolicy")
    assert unknown.root.shape == "any"
    assert unknown.lookup(("spec", "anything", "at", "all")) is not None
    assert UNTYPED.list_type == "atomic"


KEY_DEFAULT_CASES = [
    (("apps", "v1", "Deployment"), ("spec", "template", "spec", "containers", 0, "ports", 0), "protocol", "TCP"),
    (("", "v1", "Service"), ("spec", "ports", 0), "protocol", "TCP"),
    (("apps", "v1", "Deployment"), ("spec", "template", "spec", "containers", 0), "name", None),
]


@pytest.mark.parametrize(("gvk", "path", "key", "default"), KEY_DEFAULT_CASES)
def test_list_map_key_defaults(gvk: tuple[str, str, str], path: tuple[str | int, ...], key: str,
                               default: Any) -> None:
    node = builtin_resolver(*gvk).lookup(path)
    assert node is not None
    assert node.key_default(key) == default


def test_schemaless_custom_resources_still_know_object_meta() -> None:
    resolver = custom_resolver(None, group="example.com", version="v1", kind="Blob")
    finalizers = resolver.lookup(("metadata", "finalizers"))
    assert finalizers is not None and finalizers.list_type == "set"
    anything = resolver.lookup(("spec", "items"))
    assert anything is not None and anything.shape == "any" and anything.list_type == "atomic"


def test_crd_key_default_comes_from_the_schema() -> None:
    resolver = custom_resolver(CRD_SCHEMA, group="example.com", version="v1", kind="Widget")
    node = resolver.lookup(("spec", "ports", 0))
    assert node is not None and node.key_default("protocol") == "TCP"
