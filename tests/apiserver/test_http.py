"""The API server over real HTTPS: status codes, content negotiation, watch streams, metrics."""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
import yaml

from tests.conftest import RunningServer


@pytest.fixture
async def http(apiserver: RunningServer) -> AsyncIterator[aiohttp.ClientSession]:
    cfg = yaml.safe_load(apiserver.kubeconfig.read_text())
    cluster, user = cfg["clusters"][0]["cluster"], cfg["users"][0]["user"]
    ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    cert, key = apiserver.state_dir / "test.crt", apiserver.state_dir / "test.key"
    cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key.write_bytes(base64.b64decode(user["client-key-data"]))
    ctx.load_cert_chain(str(cert), str(key))
    async with aiohttp.ClientSession(base_url=apiserver.url, connector=aiohttp.TCPConnector(ssl=ctx)) as session:
        yield session


async def status_of(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    body = await resp.json(content_type=None)
    assert body["kind"] == "Status", body
    return dict(body)


async def test_anonymous_is_refused_but_health_is_public(apiserver: RunningServer) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as anon:
        async with anon.get(f"{apiserver.url}/api/v1/namespaces") as r:
            assert r.status == 401 and (await status_of(r))["reason"] == "Unauthorized"
        async with anon.get(f"{apiserver.url}/readyz") as r:
            assert r.status == 200 and await r.text() == "ok"
        async with anon.get(f"{apiserver.url}/version") as r:
            assert (await r.json())["minor"] == "32"


@pytest.mark.parametrize(("method", "path", "body", "headers", "code", "reason"), [
    ("GET", "/api/v1/nosuchthings", None, {}, 404, "NotFound"),
    ("GET", "/api/v1/namespaces/default/configmaps/missing", None, {}, 404, "NotFound"),
    ("POST", "/api/v1/namespaces/default/configmaps", b"{not json", {"Content-Type": "application/json"}, 400,
     "BadRequest"),
    ("POST", "/api/v1/namespaces/default/configmaps", b"x" * (3 * 1024 * 1024 + 10),
     {"Content-Type": "application/json"}, 413, "RequestEntityTooLarge"),
    ("POST", "/api/v1/namespaces/default/configmaps", b"{}", {"Content-Type": "text/csv"}, 415,
     "UnsupportedMediaType"),
    ("PATCH", "/api/v1/namespaces/default/configmaps/x", b"{}", {"Content-Type": "application/json"}, 415,
     "UnsupportedMediaType"),
    ("POST", "/api/v1/namespaces/nowhere/configmaps", b'{"metadata":{"name":"a"}}',
     {"Content-Type": "application/json"}, 404, "NotFound"),
    ("POST", "/api/v1/namespaces/default/configmaps", b'{"metadata":{"name":"UPPER"}}',
     {"Content-Type": "application/json"}, 422, "Invalid"),
    ("PUT", "/api/v1/namespaces/default/configmaps", b"{}", {"Content-Type": "application/json"}, 405,
     "MethodNotAllowed"),
    ("GET", "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20(", None, {}, 400, "BadRequest"),
])
async def test_errors_are_statuses(http: aiohttp.ClientSession, method: str, path: str, body: bytes | None,
                                   headers: dict[str, str], code: int, reason: str) -> None:
    async with http.request(method, path, data=body, headers=headers) as r:
        status = await status_of(r)
        assert (r.status, status["code"], status["reason"]) == (code, code, reason), status
    async with http.get("/api/v1/namespaces/default/configmaps") as r:
        names = [i["metadata"]["name"] for i in (await r.json())["items"]]
        assert "a" not in names and "UPPER" not in names  # a failed write changed nothing


async def test_strict_field_validation_and_warnings(http: aiohttp.ClientSession) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fv"}, "data": {"a": "b"}, "dta": {}}
    async with http.post("/api/v1/namespaces/default/configmaps?fieldValidation=Strict", json=cm) as r:
        assert r.status == 400 and 'unknown field "dta"' in (await status_of(r))["message"]
    async with http.post("/api/v1/namespaces/default/configmaps?fieldValidation=Warn", json=cm) as r:
        assert r.status == 201 and 'unknown field \\"dta\\"' in r.headers.get("Warning", "").replace('"dta"',
                                                                                                 '\\"dta\\"')
        assert "dta" not in await r.json()


async def test_discovery_both_forms(http: aiohttp.ClientSession) -> None:
    agg = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    async with http.get("/apis", headers={"Accept": agg}) as r:
        assert r.headers["Content-Type"].startswith("application/json;g=apidiscovery.k8s.io;v=v2")
        doc = await r.json(content_type=None)
        apps = next(i for i in doc["items"] if i["metadata"]["name"] == "apps")
        deps = next(x for x in apps["versions"][0]["resources"] if x["resource"] == "deployments")
        assert {s["subresource"] for s in deps["subresources"]} >= {"scale", "status"}
    async with http.get("/apis") as r:
        assert (await r.json())["kind"] == "APIGroupList"
    async with http.get("/api/v1") as r:
        names = {x["name"] for x in (await r.json())["resources"]}
        assert {"pods", "pods/log", "pods/eviction", "namespaces/finalize"} <= names


async def test_table_and_partial_metadata(http: aiohttp.ClientSession) -> None:
    await http.post("/api/v1/namespaces/default/configmaps", json={"metadata": {"name": "tbl"}, "data": {"a": "b"}})
    table_accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    async with http.get("/api/v1/namespaces/default/configmaps/tbl", headers={"Accept": table_accept}) as r:
        table = await r.json()
        assert table["kind"] == "Table" and table["rows"][0]["cells"][:2] == ["tbl", 1]
    meta_accept = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
    async with http.get("/api/v1/namespaces/default/configmaps", headers={"Accept": meta_accept}) as r:
        doc = await r.json()
        assert doc["kind"] == "PartialObjectMetadataList" and "data" not in doc["items"][0]


async def read_events(resp: aiohttp.ClientResponse, n: int) -> list[dict[str, Any]]:
    out = []
    async for line in resp.content:
        out.append(orjson.loads(line))
        if len(out) >= n:
            break
    return out


async def test_watch_stream_bookmarks_and_gone(http: aiohttp.ClientSession) -> None:
    await http.post("/api/v1/namespaces", json={"metadata": {"name": "watching"}})
    async with http.get("/api/v1/namespaces/watching/configmaps") as r:
        rv = (await r.json())["metadata"]["resourceVersion"]
    params = {"watch": "1", "resourceVersion": rv, "timeoutSeconds": "10", "allowWatchBookmarks": "true"}
    async with http.get("/api/v1/namespaces/watching/configmaps", params=params) as w:
        assert w.status == 200
        await http.post("/api/v1/namespaces/watching/configmaps", json={"metadata": {"name": "w1"}})
        await http.delete("/api/v1/namespaces/watching/configmaps/w1")
        events = await read_events(w, 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "w1"), ("DELETED", "w1")]
    initial = {"watch": "1", "sendInitialEvents": "true", "resourceVersionMatch": "NotOlderThan",
               "allowWatchBookmarks": "true", "timeoutSeconds": "5"}
    await http.post("/api/v1/namespaces/watching/configmaps", json={"metadata": {"name": "w2"}})
    async with http.get("/api/v1/namespaces/watching/configmaps", params=initial) as w:
        events = await read_events(w, 2)
    assert events[0]["type"] == "ADDED" and events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


async def test_metrics(http: aiohttp.ClientSession) -> None:
    await http.get("/api/v1/namespaces")
    async with http.get("/metrics") as r:
        text = await r.text()
    assert 'apiserver_request_total{code="200",group="",resource="namespaces",verb="LIST"}' in text
    assert "apiserver_request_duration_seconds_bucket" in text and "etcd_current_revision" in text


async def test_scale_subresource_and_eviction(http: aiohttp.ClientSession) -> None:
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "s"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "s"}},
                    "template": {"metadata": {"labels": {"app": "s"}},
                                 "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    await http.post("/apis/apps/v1/namespaces/default/deployments", json=dep)
    async with http.patch("/apis/apps/v1/namespaces/default/deployments/s/scale", data=json.dumps(
            {"spec": {"replicas": 4}}), headers={"Content-Type": "application/merge-patch+json"}) as r:
        assert r.status == 200 and (await r.json())["spec"]["replicas"] == 4
    async with http.get("/apis/apps/v1/namespaces/default/deployments/s") as r:
        body = await r.json()
        assert body["spec"]["replicas"] == 4 and body["metadata"]["generation"] == 2
    pod = {"metadata": {"name": "ev", "labels": {"app": "pdb"}},
           "spec": {"containers": [{"name": "c", "image": "i"}]}}
    await http.post("/api/v1/namespaces/default/pods", json=pod)
    await http.post("/api/v1/namespaces/default/pods/ev/binding",
                    json={"metadata": {"name": "ev"}, "target": {"kind": "Node", "name": "n1"}})
    await http.patch("/api/v1/namespaces/default/pods/ev/status", data=json.dumps({"status": {"phase": "Running"}}),
                     headers={"Content-Type": "application/merge-patch+json"})
    await http.post("/apis/policy/v1/namespaces/default/poddisruptionbudgets", json={
        "metadata": {"name": "pdb"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "pdb"}}}})
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "ev"}}
    async with http.post("/api/v1/namespaces/default/pods/ev/eviction", json=eviction) as r:
        assert r.status == 429 and (await status_of(r))["reason"] == "TooManyRequests"
    async with http.get("/api/v1/namespaces/default/pods/ev") as r:
        assert (await r.json())["spec"]["nodeName"] == "n1"
