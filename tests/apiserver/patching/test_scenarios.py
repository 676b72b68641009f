"""Multi-manager scenarios from structured-merge-diff's own test suite, replayed through apply/update.

Each scenario is a sequence of Apply/Update operations on one object; afterwards the
object and every manager's owned fields must match what structured-merge-diff computes
(nulls, which Atoll drops from stored objects, aside).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from atoll.api.errors import Conflict
from atoll.apiserver.patching import SchemaResolver, apply, update_managed_fields

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "set": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "assoc": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                  "items": {"type": "object", "properties": {"name": {"type": "string"},
                                                             "value": {"type": "integer"}}}},
        "mapOfLists": {"type": "object", "additionalProperties": {
            "type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}},
        "mapOfMaps": {"type": "object", "additionalProperties": {
            "type": "object", "additionalProperties": {"type": "string"}}},
        "struct": {"type": "object", "properties": {"name": {"type": "string"}, "value": {"type": "integer"}}},
        "atomic": {"type": "array", "items": {"type": "string"}},
    },
}
RESOLVER = SchemaResolver(SCHEMA, group="", version="v1", kind="Thing")
HEADER = {"apiVersion": "v1", "kind": "Thing", "metadata": {"name": "t"}}

# (name, [(operation, manager, object yaml, expected conflict paths or None)], final yaml, {manager: fieldsV1})
SCENARIOS: list[tuple[str, list[tuple[str, str, str, list[str] | None]], str, dict[str, Any]]] = [
    ("set: apply twice", [
        ("Apply", "default", "set: [a, c]", None),
        ("Apply", "default", "set: [a, b, c, d]", None),
    ], "set: [a, b, c, d]",
        {"default": {"f:set": {'v:"a"': {}, 'v:"b"': {}, 'v:"c"': {}, 'v:"d"': {}}}}),
    ("set: apply, update, apply without overlap keeps the updater's items in place", [
        ("Apply", "default", "set: [a, c]", None),
        ("Update", "controller", "set: [a, b, c, d]", None),
        ("Apply", "default", "set: [a, aprime, c, cprime]", None),
    ], "set: [a, b, aprime, c, d, cprime]",
        {"default": {"f:set": {'v:"a"': {}, 'v:"aprime"': {}, 'v:"c"': {}, 'v:"cprime"': {}}},
         "controller": {"f:set": {'v:"b"': {}, 'v:"d"': {}}}}),
    ("set: apply, update, apply with overlap", [
        ("Apply", "default", "set: [a, c]", None),
        ("Update", "controller", "set: [a, b, c, d]", None),
        ("Apply", "default", "set: [a, b, c]", None),
    ], "set: [a, b, c, d]",
        {"default": {"f:set": {'v:"a"': {}, 'v:"b"': {}, 'v:"c"': {}}},
         "controller": {"f:set": {'v:"b"': {}, 'v:"d"': {}}}}),
    ("appliers: removing one item keeps the other applier's", [
        ("Apply", "apply-one", "assoc: [{name: a}, {name: b}]", None),
        ("Apply", "apply-two", "assoc: [{name: c}]", None),
        ("Apply", "apply-one", "assoc: [{name: a}]", None),
    ], "assoc: [{name: a}, {name: c}]",
        {"apply-one": {"f:assoc": {'k:{"name":"a"}': {".": {}, "f:name": {}}}},
         "apply-two": {"f:assoc": {'k:{"name":"c"}': {".": {}, "f:name": {}}}}}),
    ("appliers: same value, no conflict", [
        ("Apply", "apply-one", "assoc: [{name: a, value: 0}]", None),
        ("Apply", "apply-two", "assoc: [{name: a, value: 0}]", None),
    ], "assoc: [{name: a, value: 0}]",
        {"apply-one": {"f:assoc": {'k:{"name":"a"}': {".": {}, "f:name": {}, "f:value": {}}}},
         "apply-two": {"f:assoc": {'k:{"name":"a"}': {".": {}, "f:name": {}, "f:value": {}}}}}),
    ("appliers: changed value conflicts", [
        ("Apply", "apply-one", "assoc: [{name: a, value: 0}]", None),
        ("Apply", "apply-two", "assoc: [{name: a, value: 1}]", ['.assoc[name="a"].value']),
    ], "assoc: [{name: a, value: 0}]",
        {"apply-one": {"f:assoc": {'k:{"name":"a"}': {".": {}, "f:name": {}, "f:value": {}}}}}),
    ("appliers: remove one, keep one shared", [
        ("Apply", "apply-one", "assoc: [{name: a}, {name: b}, {name: c}]", None),
        ("Apply", "apply-two", "assoc: [{name: c}, {name: d}]", None),
        ("Apply", "apply-one", "assoc: [{name: a}]", None),
    ], "assoc: [{name: a}, {name: c}, {name: d}]",
        {"apply-one": {"f:assoc": {'k:{"name":"a"}': {".": {}, "f:name": {}}}},
         "apply-two": {"f:assoc": {'k:{"name":"c"}': {".": {}, "f:name": {}},
                                   'k:{"name":"d"}': {".": {}, "f:name": {}}}}}),
    ("keys: obsolete applied item is removed", [
        ("Apply", "default", "assoc: [{name: a, value: 1}]", None),
        ("Apply", "default", "assoc: [{name: b, value: 2}]", None),
    ], "assoc: [{name: b, value: 2}]",
        {"default": {"f:assoc": {'k:{"name":"b"}': {".": {}, "f:name": {}, "f:value": {}}}}}),
    ("nested: map of lists, change key and value", [
        ("Apply", "default", "mapOfLists: {a: [b, c]}", None),
        ("Apply", "default", "mapOfLists: {b: [a, c]}", None),
    ], "mapOfLists: {b: [a, c]}",
        {"default": {"f:mapOfLists": {"f:b": {".": {}, 'v:"a"': {}, 'v:"c"': {}}}}}),
    ("nested: map of maps, change value", [
        ("Apply", "default", "mapOfMaps: {a: {b: x, c: y}}", None),
        ("Apply", "default", "mapOfMaps: {a: {a: x, c: z}}", None),
    ], "mapOfMaps: {a: {a: x, c: z}}",
        {"default": {"f:mapOfMaps": {"f:a": {".": {}, "f:a": {}, "f:c": {}}}}}),
    ("nested: struct, apply removes all", [
        ("Apply", "default", "struct: {name: a, value: 1}", None),
        ("Apply", "default", "{}", None),
    ], "{}", {}),
    ("nested: struct, null keeps ownership of the struct", [
        ("Apply", "default", "struct: {name: a}", None),
        ("Apply", "default", "struct: null", None),
    ], "{}", {"default": {"f:struct": {}}}),
    ("nested: struct, apply/update/apply removes only the applied field", [
        ("Apply", "default", "struct: {name: a}", None),
        ("Update", "controller", "struct: {name: a, value: 1}", None),
        ("Apply", "default", "{}", None),
    ], "struct: {value: 1}", {"controller": {"f:struct": {"f:value": {}}}}),
    ("nested: struct, null after update keeps the updater's field", [
        ("Apply", "default", "struct: {name: a}", None),
        ("Update", "controller", "struct: {name: a, value: 1}", None),
        ("Apply", "default", "struct: null", None),
    ], "struct: {value: 1}", {"default": {"f:struct": {}}, "controller": {"f:struct": {"f:value": {}}}}),
    ("nested: struct, the updater took the field over", [
        ("Apply", "default", "struct: {name: a}", None),
        ("Update", "controller", "struct: {name: b, value: 1}", None),
        ("Apply", "default", "struct: null", None),
    ], "struct: {name: b, value: 1}",
        {"default": {"f:struct": {}}, "controller": {"f:struct": {"f:name": {}, "f:value": {}}}}),
    ("atomic list is owned whole and replaced", [
        ("Apply", "one", "atomic: [a, b]", None),
        ("Update", "two", "atomic: [a, b, c]", None),
        ("Apply", "one", "atomic: [x]", ['.atomic']),
    ], "atomic: [a, b, c]", {"two": {"f:atomic": {}}}),
]


def _with_header(text: str) -> dict[str, Any]:
    body = yaml.safe_load(text) or {}
    return {**HEADER, **body}


@pytest.mark.parametrize(("name", "ops", "final", "managed"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_structured_merge_diff_scenarios(name: str, ops: list[tuple[str, str, str, list[str] | None]],
                                         final: str, managed: dict[str, Any]) -> None:
    live: dict[str, Any] | None = None
    for i, (operation, manager, text, conflicts) in enumerate(ops):
        now = f"2024-01-01T00:00:{i:02d}Z"
        if operation == "Apply":
            if conflicts is not None:
                with pytest.raises(Conflict) as info:
                    apply(live, _with_header(text), manager=manager, force=False, resolver=RESOLVER, now=now)
                assert [c["field"] for c in info.value.details["causes"]] == conflicts
                continue
            live = apply(live, _with_header(text), manager=manager, force=False, resolver=RESOLVER, now=now)
        else:
            new = _with_header(text)
            if live is not None:
                new["metadata"] = live["metadata"]
            live = update_managed_fields(live, new, manager=manager, resolver=RESOLVER, now=now)
        assert live is not None
        live["metadata"].setdefault("uid", "1")
    assert live is not None
    body = {k: v for k, v in live.items() if k not in HEADER}
    assert body == (yaml.safe_load(final) or {})
    got = {e["manager"]: e["fieldsV1"] for e in live["metadata"].get("managedFields") or []}
    assert got == managed
