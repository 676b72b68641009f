"""The managedFields shortcuts give exactly what the plain computations give."""

from __future__ import annotations

from typing import Any

import pytest

from atoll.apiserver.patching import fieldpaths, structured
from atoll.apiserver.patching.fieldpaths import from_fields_v1, to_fields_v1
from atoll.apiserver.patching.structured import compare, same_json
from atoll.apiserver.patching.typeinfo import builtin_resolver

FIELDS: list[dict[str, Any]] = [
    {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}},
    {"f:spec": {"f:containers": {'k:{"name":"c"}': {".": {}, "f:image": {}, "f:name": {}}}}},
    {"f:status": {"f:conditions": {'k:{"type":"Ready"}': {".": {}, "f:status": {}}}, "f:phase": {}}},
    {},
]


@pytest.mark.parametrize("fields", FIELDS)
def test_fields_v1_round_trip_is_memoised_as_fresh_copies(fields: dict[str, Any]) -> None:
    first = from_fields_v1(fields)
    assert first == fieldpaths._from_fields_v1(fields)
    first.add((("f", "mutated"),))
    assert from_fields_v1(fields) == fieldpaths._from_fields_v1(fields), "a caller's change leaked into the memo"
    encoded = to_fields_v1(fieldpaths._from_fields_v1(fields))
    assert encoded == fields
    encoded["f:extra"] = {}
    assert to_fields_v1(fieldpaths._from_fields_v1(fields)) == fields


def test_malformed_fields_still_raise() -> None:
    with pytest.raises(ValueError):
        from_fields_v1({"f:spec": []})
    with pytest.raises(ValueError):
        from_fields_v1({"f:spec": []})


@pytest.mark.parametrize(("lhs", "rhs", "same"), [
    ({"a": 1}, {"a": 1}, True),
    ({"a": True}, {"a": 1}, False),  # Python's == says equal; JSON does not
    ({"a": 1}, {"a": 1.0}, False),  # different bytes: not a shortcut (the walk decides)
    ({"a": 1, "b": 2}, {"b": 2, "a": 1}, False),
    ([1, 2], [1, 2], True),
    ({"a": {1: 2}}, {"a": {1: 2}}, False),  # not JSON: never a shortcut
    ("x", "x", True),
    (1, 1.0, False),
])
def test_same_json(lhs: Any, rhs: Any, same: bool) -> None:
    assert same_json(lhs, rhs) is same


def _pod(**status: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}]}],
                     "nodeName": "n"},
            "status": status}


@pytest.mark.parametrize(("lhs", "rhs"), [
    (_pod(phase="Pending"), _pod(phase="Running")),
    (_pod(phase="Pending"), _pod(phase="Pending")),
    (_pod(phase="Pending", hostIP="1.2.3.4"), _pod(phase="Pending")),
    ({**_pod(), "spec": {"containers": [{"name": "c", "image": "nginx", "stdin": True}]}},
     {**_pod(), "spec": {"containers": [{"name": "c", "image": "nginx", "stdin": 1}]}}),
    ({**_pod(), "spec": {"containers": [{"name": "c", "image": "nginx"}], "priority": 1}},
     {**_pod(), "spec": {"containers": [{"name": "c", "image": "nginx"}], "priority": 1.0}}),
])
def test_compare_with_and_without_the_shortcut(lhs: dict[str, Any], rhs: dict[str, Any],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    root = builtin_resolver("", "v1", "Pod").root
    fast = compare(root, lhs, rhs)
    monkeypatch.setattr(structured, "_SAME_DEPTH", 0)
    slow = compare(root, lhs, rhs)
    assert (fast.added, fast.modified, fast.removed) == (slow.added, slow.modified, slow.removed)
