"""CRD validation, serving, and custom object pruning/defaulting/validation."""

from __future__ import annotations

import copy

import pytest

from atoll.apiserver.crds import CustomSchema, resources_for_crd, validate_crd

CRD = {
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
             "versions": [
                 {"name": "v1", "served": True, "storage": True,
                  "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas",
                                                           "statusReplicasPath": ".status.replicas"}},
                  "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
                  "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                      "spec": {"type": "object", "required": ["size"], "properties": {
                          "size": {"type": "integer", "minimum": 1, "maximum": 10},
                          "color": {"type": "string", "enum": ["red", "blue"], "default": "blue"},
                          "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                          "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                          "port": {"x-kubernetes-int-or-string": True},
                          "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 5}}},
                      "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}}}}},
                 {"name": "v1beta1", "served": False, "storage": False,
                  "schema": {"openAPIV3Schema": {"type": "object"}}}]}}


def test_valid_crd_serves_its_served_versions() -> None:
    assert validate_crd(CRD) == []
    infos = resources_for_crd(CRD)
    assert [(i.version, i.kind, i.plural, i.singular, i.namespaced) for i in infos] == [
        ("v1", "Widget", "widgets", "widget", True)]
    info = infos[0]
    assert info.subresources == ("status", "scale") and info.short_names == ("wd",) and info.custom
    assert info.scale is not None and info.scale.spec_replicas == ".spec.replicas"
    assert info.printer_columns[0].json_path == ".spec.size"


@pytest.mark.parametrize(("change", "field"), [
    (lambda c: c["metadata"].update(name="wrong.example.com"), "metadata.name"),
    (lambda c: c["spec"].update(group="nodot"), "spec.group"),
    (lambda c: c["spec"].update(scope="Galaxy"), "spec.scope"),
    (lambda c: c["spec"]["versions"][1].update(storage=True), "spec.versions"),
    (lambda c: c["spec"]["versions"][0].pop("schema"), "spec.versions[0].schema.openAPIV3Schema"),
])
def test_invalid_crds(change, field: str) -> None:  # type: ignore[no-untyped-def]
    crd = copy.deepcopy(CRD)
    change(crd)
    assert field in [c["field"] for c in validate_crd(crd)]


SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[index]


@pytest.mark.parametrize(("spec", "fields"), [
    ({"size": 3}, []),
    ({"size": 0}, ["spec.size"]),
    ({"size": 11}, ["spec.size"]),
    ({"size": "3"}, ["spec.size"]),
    ({}, ["spec.size"]),
    ({"size": 1, "color": "green"}, ["spec.color"]),
    ({"size": 1, "tags": ["a", "a"]}, ["spec.tags[1]"]),
    ({"size": 1, "port": 80}, []),
    ({"size": 1, "port": "http"}, []),
    ({"size": 1, "port": 1.5}, ["spec.port"]),
    ({"size": 1, "name": "ABC"}, ["spec.name"]),
    ({"size": 1, "name": "abcdefg"}, ["spec.name"]),
])
def test_validation(spec: dict, fields: list[str]) -> None:
    causes = CustomSchema(SCHEMA).validate({"apiVersion": "example.com/v1", "kind": "Widget",
                                           "metadata": {"name": "w"}, "spec": spec})
    assert [c["field"] for c in causes] == fields


def test_prune_and_defaults() -> None:
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "labels": {"a": "b"}},
           "spec": {"size": 2, "bogus": 1, "extra": {"anything": {"goes": True}}}, "junk": True}
    schema = CustomSchema(SCHEMA)
    assert sorted(schema.prune(obj)) == ["junk", "spec.bogus"]
    schema.apply_defaults(obj)
    assert obj["spec"] == {"size": 2, "color": "blue", "extra": {"anything": {"goes": True}}}
    assert obj["metadata"] == {"name": "w", "labels": {"a": "b"}}
