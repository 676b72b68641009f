"""OpenAPI v3 documents and unknown-field detection."""

from __future__ import annotations

import orjson
import pytest

from atoll.api.builtin import new_registry
from atoll.apiserver.crds import resources_for_crd
from atoll.apiserver.fieldvalidation import duplicate_fields, unknown_fields_for
from atoll.apiserver.openapi import OpenAPIBuilder
from tests.apiserver.test_custom_schema import CRD


def test_index_lists_every_group_version_with_a_content_hash() -> None:
    reg = new_registry()
    builder = OpenAPIBuilder(reg)
    index = builder.index()["paths"]
    assert "api/v1" in index and "apis/apps/v1" in index
    url = index["apis/apps/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/apps/v1?hash=")
    for info in resources_for_crd(CRD):
        reg.add(info)
    assert "apis/example.com/v1" in OpenAPIBuilder(reg).index()["paths"]
    assert builder.index()["paths"]["apis/apps/v1"]["serverRelativeURL"] == url  # unchanged group keeps its hash


def test_group_version_document_shape() -> None:
    doc = orjson.loads(OpenAPIBuilder(new_registry()).group_version_document("apis/apps/v1") or b"{}")
    assert doc["openapi"].startswith("3.")
    item = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert any(p["name"] == "fieldValidation" for p in item["patch"]["parameters"])
    assert item["patch"]["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1",
                                                                "kind": "Deployment"}
    schemas = doc["components"]["schemas"]
    dep = schemas["io.k8s.api.apps.v1.Deployment"]
    assert dep["x-kubernetes-group-version-kind"][0]["kind"] == "Deployment"
    strategy = schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]
    assert strategy["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"}]
    assert schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"
    assert "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale" in doc["paths"]
    assert "io.k8s.api.autoscaling.v1.Scale" in schemas
    raw = orjson.dumps(doc)
    assert b"#/$defs/" not in raw and b'"null"' not in raw


def test_custom_resource_schema() -> None:
    reg = new_registry()
    for info in resources_for_crd(CRD):
        reg.add(info)
    doc = orjson.loads(OpenAPIBuilder(reg).group_version_document("apis/example.com/v1") or b"{}")
    widget = doc["components"]["schemas"]["com.example.v1.Widget"]
    assert set(widget["properties"]) >= {"apiVersion", "kind", "metadata", "spec", "status"}
    assert widget["x-kubernetes-group-version-kind"] == [{"group": "example.com", "version": "v1",
                                                          "kind": "Widget"}]


@pytest.mark.parametrize(("obj", "unknown"), [
    ({"spec": {"replicas": 1}}, []),
    ({"spec": {"replicass": 1}}, ["spec.replicass"]),
    ({"metadata": {"labelz": {}}}, ["metadata.labelz"]),
    ({"spec": {"template": {"spec": {"containers": [{"name": "a", "imagee": "x"}]}}}},
     ["spec.template.spec.containers[0].imagee"]),
    ({"spec": {"template": {"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1"}}}]}}}}, []),
])
def test_unknown_fields_builtin(obj: dict, unknown: list[str]) -> None:
    info = new_registry().get("apps", "v1", "deployments")
    assert info is not None
    assert unknown_fields_for(info, {"apiVersion": "apps/v1", "kind": "Deployment", **obj}) == unknown


def test_unknown_fields_custom_and_duplicates() -> None:
    info = resources_for_crd(CRD)[0]
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
           "spec": {"size": 1, "sise": 2, "extra": {"free": 1}}}
    assert unknown_fields_for(info, obj) == ["spec.sise"]
    assert duplicate_fields(b'{"a":1,"b":{"c":1,"c":2}}') == ["c"]
    assert duplicate_fields(b'{"a":1}') == []
