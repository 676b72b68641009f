"""ObjectMeta rules and the string formats kube validates, with kube's exact texts."""

from __future__ import annotations

import datetime as dt
import re
from fractions import Fraction
from typing import Any

import pytest

from atoll.api import meta
from atoll.api.errors import invalid

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
             "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
               "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex "
               "used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
QNAME_PART = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
              "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
              "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                   "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                   "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


@pytest.mark.parametrize(("value", "expected"), [
    ("example.com", []),
    ("a", []),
    ("a-b.c-d", []),
    ("Foo", [SUBDOMAIN_MSG]),
    ("-a", [SUBDOMAIN_MSG]),
    ("a_b", [SUBDOMAIN_MSG]),
    ("a" * 253, []),
    ("a" * 254, ["must be no more than 253 characters"]),
])
def test_dns1123_subdomain(value: str, expected: list[str]) -> None:
    assert meta.is_dns1123_subdomain(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("my-name", []),
    ("123-abc", []),
    ("a.b", ["must not contain dots"]),
    ("My", [LABEL_MSG]),
    ("a" * 64, ["must be no more than 63 characters"]),
])
def test_dns1123_label(value: str, expected: list[str]) -> None:
    assert meta.is_dns1123_label(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("my-svc", []),
    ("1svc", [DNS1035_MSG]),
    ("svc-", [DNS1035_MSG]),
])
def test_dns1035_label(value: str, expected: list[str]) -> None:
    assert meta.is_dns1035_label(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("app", []),
    ("example.com/app", []),
    ("app.kubernetes.io/name", []),
    ("a b", [QNAME_PART]),
    ("/app", ["prefix part must be non-empty"]),
    ("example.com/", ["name part must be non-empty", QNAME_PART]),
    ("Example.com/app", ["prefix part " + SUBDOMAIN_MSG]),
    ("a" * 64, ["name part must be no more than 63 characters"]),
    ("a/b/c", ["a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
               "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
               "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix "
               "and '/' (e.g. 'example.com/MyName')"]),
])
def test_qualified_name(value: str, expected: list[str]) -> None:
    assert meta.is_qualified_name(value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("", []),
    ("v1.2_x-y", []),
    ("-x", [LABEL_VALUE_MSG]),
    ("a" * 64, ["must be no more than 63 characters"]),
])
def test_label_value(value: str, expected: list[str]) -> None:
    assert meta.is_valid_label_value(value) == expected


@pytest.mark.parametrize(("name", "expected"), [
    ("ok", []),
    (".", ["may not be '.'"]),
    ("..", ["may not be '..'"]),
    ("a/b%c", ["may not contain '/'", "may not contain '%'"]),
])
def test_path_segment_name(name: str, expected: list[str]) -> None:
    assert meta.validate_path_segment_name(name) == expected


@pytest.mark.parametrize(("port", "expected"), [
    ("http", []),
    ("http-alt", []),
    ("a-very-long-port-name", ["must be no more than 15 characters"]),
    ("80", ["must contain at least one letter (a-z)"]),
    ("a--b", ["must not contain consecutive hyphens"]),
    ("-ab", ["must not begin or end with a hyphen"]),
    ("HTTP", ["must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
              "must contain at least one letter (a-z)"]),
])
def test_port_name(port: str, expected: list[str]) -> None:
    assert meta.is_valid_port_name(port) == expected


@pytest.mark.parametrize(("key", "ok"), [("a.b_C-1", True), ("a b", False), (".", False), ("..x", False)])
def test_config_map_key(key: str, ok: bool) -> None:
    assert (meta.is_config_map_key(key) == []) is ok


def test_generated_names_and_uids() -> None:
    name = meta.generate_name("web-")
    assert re.fullmatch(r"web-[bcdfghjklmnpqrstvwxz2456789]{5}", name)
    long_base = "x" * 80
    assert len(meta.generate_name(long_base)) == 63
    uids = {meta.new_uid() for _ in range(50)}
    assert len(uids) == 50
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", u) for u in uids)


def test_timestamps_round_trip() -> None:
    moment = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.UTC)
    assert meta.now_rfc3339(moment) == "2024-05-06T07:08:09Z"
    assert meta.now_rfc3339_micro(moment) == "2024-05-06T07:08:09.123456Z"
    assert meta.parse_rfc3339("2024-05-06T07:08:09Z") == moment.replace(microsecond=0)
    assert meta.parse_rfc3339("2024-05-06T09:08:09+02:00") == moment.replace(microsecond=0)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta.now_rfc3339())


@pytest.mark.parametrize(("text", "value"), [
    ("100m", Fraction(1, 10)),
    ("1", Fraction(1)),
    ("1.5", Fraction(3, 2)),
    ("1Ki", Fraction(1024)),
    ("2Gi", Fraction(2 * 2**30)),
    ("1e3", Fraction(1000)),
    ("500M", Fraction(500_000_000)),
    (2, Fraction(2)),
])
def test_parse_quantity(text: Any, value: Fraction) -> None:
    assert meta.parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "1Qi", True])
def test_parse_quantity_rejects(text: Any) -> None:
    with pytest.raises(ValueError):
        meta.parse_quantity(text)


@pytest.mark.parametrize(("value", "rendered"), [
    ("x", '"x"'),
    ('a"b\n', '"a\\"b\\n"'),
    (5, "5"),
    (True, "true"),
    (None, "null"),
    ({"b": "2", "a": "1"}, 'map[string]string{"a":"1", "b":"2"}'),
    (["x", "y"], '[]string{"x", "y"}'),
])
def test_go_value_rendering(value: Any, rendered: str) -> None:
    assert meta.go_value(value) == rendered


def test_label_selector_repr_matches_kube() -> None:
    assert meta.go_value(meta.label_selector_repr({"matchLabels": {"app": "x"}})) == (
        'v1.LabelSelector{MatchLabels:map[string]string{"app":"x"}, '
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}")


def _messages(causes: list[meta.Cause]) -> list[tuple[str, str]]:
    return [(c["field"], c["message"]) for c in causes]


@pytest.mark.parametrize(("md", "namespaced", "expected"), [
    ({"name": "ok", "namespace": "default"}, True, []),
    ({"namespace": "default"}, True, [("metadata.name", "Required value: name or generateName is required")]),
    ({"name": "x"}, True, [("metadata.namespace", "Required value")]),
    ({"name": "x", "namespace": "Bad_NS"}, True,
     [("metadata.namespace", 'Invalid value: "Bad_NS": ' + LABEL_MSG)]),
    ({"name": "x", "namespace": "default"}, False, [("metadata.namespace", "Forbidden: not allowed on this type")]),
    ({"name": "x", "namespace": "d", "generation": -1}, True,
     [("metadata.generation", "Invalid value: -1: must be greater than or equal to 0")]),
    ({"name": "x", "namespace": "d", "labels": {"a b": "ok", "k": "-v"}}, True,
     [("metadata.labels", 'Invalid value: "a b": ' + QNAME_PART),
      ("metadata.labels", 'Invalid value: "-v": ' + LABEL_VALUE_MSG)]),
    ({"name": "x", "namespace": "d", "annotations": {"Example.COM/Key": "v"}}, True, []),
    ({"name": "x", "namespace": "d", "annotations": {"a": "x" * (256 * 1024)}}, True,
     [("metadata.annotations", "Too long: must have at most 262144 bytes")]),
    ({"name": "x", "namespace": "d", "finalizers": ["example.com/cleanup", "kubernetes", "foregroundDeletion"]},
     True, []),
    ({"name": "x", "namespace": "d", "finalizers": ["cleanup"]}, True,
     [("metadata.finalizers[0]", 'Invalid value: "cleanup": name is neither a standard finalizer name nor is it '
       "fully qualified")]),
    ({"name": "x", "namespace": "d", "finalizers": ["orphan", "foregroundDeletion"]}, True,
     [("metadata.finalizers", 'Invalid value: []string{"orphan", "foregroundDeletion"}: finalizer orphan and '
       "foregroundDeletion cannot be both set")]),
    ({"name": "x", "namespace": "d", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                           "name": "rs", "uid": "1"}]}, True, []),
    ({"name": "x", "namespace": "d", "ownerReferences": [{"apiVersion": "apps/", "kind": "", "name": "", "uid": ""}]},
     True, [("metadata.ownerReferences.apiVersion", 'Invalid value: "apps/": version must not be empty'),
            ("metadata.ownerReferences.kind", 'Invalid value: "": must not be empty'),
            ("metadata.ownerReferences.name", 'Invalid value: "": must not be empty'),
            ("metadata.ownerReferences.uid", 'Invalid value: "": must not be empty')]),
])
def test_validate_object_meta(md: dict[str, Any], namespaced: bool, expected: list[tuple[str, str]]) -> None:
    assert _messages(meta.validate_object_meta({"metadata": md}, namespaced=namespaced)) == expected


def test_two_controllers_are_rejected() -> None:
    refs = [{"apiVersion": "v1", "kind": "A", "name": "a", "uid": "1", "controller": True},
            {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "2", "controller": True}]
    causes = meta.validate_object_meta({"metadata": {"name": "x", "namespace": "d", "ownerReferences": refs}},
                                       namespaced=True)
    assert len(causes) == 1
    assert causes[0]["message"].endswith('Only one reference can have Controller set to true. Found "true" in '
                                         "references for A/a and B/b")


def test_custom_resources_allow_any_qualified_finalizer() -> None:
    md = {"name": "x", "namespace": "d", "finalizers": ["cleanup"]}
    assert meta.validate_object_meta({"metadata": md}, namespaced=True, kube_finalizers=False) == []


def test_name_function_checks_generate_name_as_prefix() -> None:
    causes = meta.validate_object_meta({"metadata": {"generateName": "web-", "name": "web-abcde"}},
                                       namespaced=False, name_fn=meta.name_is_dns_subdomain)
    assert causes == []
    causes = meta.validate_object_meta({"metadata": {"name": "Web"}}, namespaced=False,
                                       name_fn=meta.name_is_dns_subdomain)
    assert _messages(causes) == [("metadata.name", 'Invalid value: "Web": ' + SUBDOMAIN_MSG)]


OLD = {"metadata": {"name": "x", "namespace": "d", "uid": "u1", "creationTimestamp": "2024-01-01T00:00:00Z",
                    "generation": 3, "resourceVersion": "7"}}


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, []),
    ({"labels": {"a": "b"}}, []),
    ({"name": "y"}, [("metadata.name", 'Invalid value: "y": field is immutable')]),
    ({"namespace": "e"}, [("metadata.namespace", 'Invalid value: "e": field is immutable')]),
    ({"uid": "u2"}, [("metadata.uid", 'Invalid value: "u2": field is immutable')]),
    ({"creationTimestamp": "2025-01-01T00:00:00Z"},
     [("metadata.creationTimestamp", 'Invalid value: "2025-01-01T00:00:00Z": field is immutable')]),
    ({"generation": 2}, [("metadata.generation", "Invalid value: 2: must not be decremented")]),
])
def test_validate_object_meta_update(changes: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    new = {"metadata": {**OLD["metadata"], **changes}}
    assert _messages(meta.validate_object_meta_update(new, OLD)) == expected


def test_no_new_finalizers_while_deleting() -> None:
    old = {"metadata": {**OLD["metadata"], "deletionTimestamp": "2024-01-02T00:00:00Z",
                        "finalizers": ["example.com/a"]}}
    new = {"metadata": {**old["metadata"], "finalizers": ["example.com/a", "example.com/b"]}}
    assert _messages(meta.validate_object_meta_update(new, old)) == [
        ("metadata.finalizers", 'Forbidden: no new finalizers can be added if the object is being deleted, found new '
         'finalizers []string{"example.com/b"}')]


def test_causes_compose_into_kube_message() -> None:
    causes = meta.validate_object_meta({"metadata": {"name": "x", "namespace": "d", "labels": {"k": "-v"}}},
                                       namespaced=True)
    err = invalid("ConfigMap", "x", causes)
    assert err.code == 422
    assert err.message == 'ConfigMap "x" is invalid: metadata.labels: Invalid value: "-v": ' + LABEL_VALUE_MSG
    assert err.details["causes"] == [{"reason": "FieldValueInvalid", "message": 'Invalid value: "-v": '
                                      + LABEL_VALUE_MSG, "field": "metadata.labels"}]


def test_cause_reasons() -> None:
    assert meta.required("a")["reason"] == "FieldValueRequired"
    assert meta.forbidden("a", "x")["reason"] == "FieldValueForbidden"
    assert meta.not_supported("a", "x", ["y"]) == {"reason": "FieldValueNotSupported", "field": "a",
                                                    "message": 'Unsupported value: "x": supported values: "y"'}
    assert meta.duplicate("a", "x")["message"] == 'Duplicate value: "x"'
    assert meta.not_found("a", "x")["message"] == 'Not found: "x"'
    assert meta.too_many("a", 5, 3)["message"] == "Too many: 5: must have at most 3 items"
    path = meta.FieldPath("spec").child("containers").index(0).child("env").key("A")
    assert str(path) == "spec.containers[0].env[A]"
