"""The client's wire behaviour against a scripted server: requests, errors, discovery, watch streams."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp import web

from atoll.api import errors
from atoll.client import Client, Resource, SyncClient, WatchEvent
from tests.client.conftest import FakeAPI, error_event, event, reply, status_body

CMS = Resource("v1", "configmaps")
DEPLOYS = Resource("apps/v1", "deployments", kind="Deployment")
NODES = Resource("v1", "nodes", namespaced=False)


@pytest.fixture
async def client(fake: FakeAPI) -> AsyncIterator[Client]:
    async with Client(server=fake.url, token="sekret", timeout=5) as c:
        yield c


# -- errors --------------------------------------------------------------------------------

ERROR_CASES: list[tuple[str, int, bytes, type[errors.APIError], str]] = [
    ("not-found", 404, orjson.dumps(status_body(404, "NotFound", 'configmaps "x" not found',
                                                details={"name": "x", "kind": "configmaps"})),
     errors.NotFound, 'configmaps "x" not found'),
    ("already-exists", 409, orjson.dumps(status_body(409, "AlreadyExists", "exists")), errors.AlreadyExists,
     "exists"),
    ("conflict", 409, orjson.dumps(status_body(409, "Conflict", "modified")), errors.Conflict, "modified"),
    ("expired", 410, orjson.dumps(status_body(410, "Expired", "too old")), errors.Gone, "too old"),
    ("invalid", 422, orjson.dumps(status_body(422, "Invalid", "bad", details={"causes": [{"field": "x"}]})),
     errors.Invalid, "bad"),
    ("unauthorized", 401, orjson.dumps(status_body(401, "Unauthorized")), errors.Unauthorized, "Unauthorized"),
    ("forbidden", 403, orjson.dumps(status_body(403, "Forbidden", "no")), errors.Forbidden, "no"),
    ("too-many", 429, orjson.dumps(status_body(429, "TooManyRequests", "slow down")), errors.TooManyRequests,
     "slow down"),
    ("internal", 500, orjson.dumps(status_body(500, "InternalError", "boom")), errors.InternalError, "boom"),
    ("plain-text-503", 503, b"upstream connect error", errors.ServiceUnavailable, "upstream connect error"),
    ("empty-404", 404, b"", errors.NotFound, "HTTP 404"),
    ("not-a-status-400", 400, b'{"error": "nope"}', errors.BadRequest, "HTTP 400"),
    ("unknown-code-502", 502, b"<html>bad gateway</html>", errors.APIError, "<html>bad gateway</html>"),
]


@pytest.mark.parametrize(("status", "body", "cls", "message"), [c[1:] for c in ERROR_CASES],
                         ids=[c[0] for c in ERROR_CASES])
async def test_errors_are_rebuilt_from_status(fake: FakeAPI, client: Client, status: int, body: bytes,
                                              cls: type[errors.APIError], message: str) -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, status=status, content_type="text/plain" if body[:1] != b"{" else
                            "application/json")

    fake.on("GET", "/api/v1/namespaces/ns/configmaps/x", answer)
    with pytest.raises(errors.APIError) as info:
        await client.get(CMS, "x", "ns")
    assert type(info.value) is cls
    assert info.value.message == message
    if body[:1] == b"{" and b"Status" in body:
        assert info.value.status == orjson.loads(body)
        assert info.value.details == orjson.loads(body).get("details", {})


async def test_unreachable_server_and_timeouts() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with Client(server=f"http://127.0.0.1:{port}") as c:
        with pytest.raises(errors.ServiceUnavailable, match="cannot reach"):
            await c.get(CMS, "x", "ns")


async def test_slow_answers_time_out(fake: FakeAPI) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return reply({})

    fake.on("GET", "/version", slow)
    async with Client(server=fake.url, timeout=0.2) as c:
        with pytest.raises(errors.Timeout, match="timed out"):
            await c.version()
        with pytest.raises(errors.Timeout):
            await c.request("GET", "/version", timeout=0.1)


# -- requests ------------------------------------------------------------------------------

Call = Callable[[Client], Awaitable[Any]]

VERB_CASES: list[tuple[str, Call, str, str, dict[str, str], str | None, Any]] = [
    # id, call, method, path, query, content type, JSON body
    ("get", lambda c: c.get(CMS, "a", "ns"), "GET", "/api/v1/namespaces/ns/configmaps/a", {}, None, None),
    ("get-cluster-scoped", lambda c: c.get(NODES, "n1", "ignored"), "GET", "/api/v1/nodes/n1", {}, None, None),
    ("get-status", lambda c: c.get_status(DEPLOYS, "web", "ns"), "GET",
     "/apis/apps/v1/namespaces/ns/deployments/web/status", {}, None, None),
    ("get-scale", lambda c: c.get(DEPLOYS, "web", "ns", subresource="scale"), "GET",
     "/apis/apps/v1/namespaces/ns/deployments/web/scale", {}, None, None),
    ("list-all-namespaces", lambda c: c.list(CMS), "GET", "/api/v1/configmaps", {}, None, None),
    ("list-options", lambda c: c.list(CMS, "ns", label_selector="app=web,tier!=db", field_selector="metadata.name=a",
                                      limit=5, continue_token="tok", resource_version="0",
                                      resource_version_match="NotOlderThan"),
     "GET", "/api/v1/namespaces/ns/configmaps",
     {"labelSelector": "app=web,tier!=db", "fieldSelector": "metadata.name=a", "limit": "5", "continue": "tok",
      "resourceVersion": "0", "resourceVersionMatch": "NotOlderThan"}, None, None),
    ("create", lambda c: c.create(CMS, {"metadata": {"name": "a", "namespace": "ns"}}), "POST",
     "/api/v1/namespaces/ns/configmaps", {"fieldManager": "atoll"}, "application/json",
     {"metadata": {"name": "a", "namespace": "ns"}}),
    ("create-dry-run", lambda c: c.create(CMS, {"metadata": {"name": "a"}}, "ns", dry_run=True,
                                          field_manager="me"),
     "POST", "/api/v1/namespaces/ns/configmaps", {"fieldManager": "me", "dryRun": "All"}, "application/json",
     {"metadata": {"name": "a"}}),
    ("create-eviction", lambda c: c.create(Resource("v1", "pods"), {
        "apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p", "namespace": "ns"}},
        subresource="eviction"),
     "POST", "/api/v1/namespaces/ns/pods/p/eviction", {"fieldManager": "atoll"}, "application/json",
     {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p", "namespace": "ns"}}),
    ("replace", lambda c: c.replace(CMS, {"metadata": {"name": "a", "namespace": "ns", "resourceVersion": "3"}}),
     "PUT", "/api/v1/namespaces/ns/configmaps/a", {"fieldManager": "atoll"}, "application/json",
     {"metadata": {"name": "a", "namespace": "ns", "resourceVersion": "3"}}),
    ("replace-status", lambda c: c.replace_status(NODES, {"metadata": {"name": "n1"}, "status": {}}),
     "PUT", "/api/v1/nodes/n1/status", {"fieldManager": "atoll"}, "application/json",
     {"metadata": {"name": "n1"}, "status": {}}),
    ("patch-merge", lambda c: c.patch(CMS, "a", {"data": {"k": None}}, "ns"), "PATCH",
     "/api/v1/namespaces/ns/configmaps/a", {"fieldManager": "atoll"}, "application/merge-patch+json",
     {"data": {"k": None}}),
    ("patch-json", lambda c: c.patch(CMS, "a", [{"op": "remove", "path": "/data/k"}], "ns", patch_type="json"),
     "PATCH", "/api/v1/namespaces/ns/configmaps/a", {"fieldManager": "atoll"}, "application/json-patch+json",
     [{"op": "remove", "path": "/data/k"}]),
    ("patch-strategic", lambda c: c.patch(DEPLOYS, "web", {"spec": {"replicas": 3}}, "ns", patch_type="strategic"),
     "PATCH", "/apis/apps/v1/namespaces/ns/deployments/web", {"fieldManager": "atoll"},
     "application/strategic-merge-patch+json", {"spec": {"replicas": 3}}),
    ("apply-force", lambda c: c.apply(CMS, {"apiVersion": "v1", "kind": "ConfigMap",
                                            "metadata": {"name": "a", "namespace": "ns"}},
                                      force=True, field_manager="ctl"),
     "PATCH", "/api/v1/namespaces/ns/configmaps/a", {"fieldManager": "ctl", "force": "true"},
     "application/apply-patch+yaml",
     {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "ns"}}),
    ("apply-no-force", lambda c: c.patch(CMS, "a", {"metadata": {"name": "a"}}, "ns", patch_type="apply"),
     "PATCH", "/api/v1/namespaces/ns/configmaps/a", {"fieldManager": "atoll"}, "application/apply-patch+yaml",
     {"metadata": {"name": "a"}}),
    ("patch-status", lambda c: c.patch_status(DEPLOYS, "web", {"status": {"replicas": 1}}, "ns"), "PATCH",
     "/apis/apps/v1/namespaces/ns/deployments/web/status", {"fieldManager": "atoll"},
     "application/merge-patch+json", {"status": {"replicas": 1}}),
    ("delete", lambda c: c.delete(CMS, "a", "ns"), "DELETE", "/api/v1/namespaces/ns/configmaps/a", {},
     "application/json", {"kind": "DeleteOptions", "apiVersion": "v1"}),
    ("delete-options", lambda c: c.delete(DEPLOYS, "web", "ns", propagation_policy="Foreground",
                                          grace_period_seconds=0, uid="u-1", resource_version="7", dry_run=True),
     "DELETE", "/apis/apps/v1/namespaces/ns/deployments/web", {}, "application/json",
     {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Foreground", "gracePeriodSeconds": 0,
      "preconditions": {"uid": "u-1", "resourceVersion": "7"}, "dryRun": ["All"]}),
    ("delete-collection", lambda c: c.delete_collection(CMS, "ns", label_selector="app=web",
                                                        propagation_policy="Background"),
     "DELETE", "/api/v1/namespaces/ns/configmaps", {"labelSelector": "app=web"}, "application/json",
     {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}),
    ("raw-request", lambda c: c.request("POST", "/api/v1/namespaces/ns/pods/p/binding", params={"x": 1, "y": None},
                                        body={"target": {"name": "n1"}}),
     "POST", "/api/v1/namespaces/ns/pods/p/binding", {"x": "1"}, "application/json", {"target": {"name": "n1"}}),
]


@pytest.mark.parametrize(("call", "method", "path", "query", "content_type", "body"), [c[1:] for c in VERB_CASES],
                         ids=[c[0] for c in VERB_CASES])
async def test_verbs_send_what_kube_expects(fake: FakeAPI, client: Client, call: Call, method: str, path: str,
                                            query: dict[str, str], content_type: str | None, body: Any) -> None:
    fake.on(method, path, {"kind": "Thing", "metadata": {"name": "answer"}})
    answer = await call(client)
    assert answer == {"kind": "Thing", "metadata": {"name": "answer"}}
    [seen] = fake.seen
    assert (seen.method, seen.path, seen.query) == (method, path, query)
    assert seen.headers.get("Content-Type") == content_type
    assert (seen.json() if seen.body else None) == body
    assert seen.headers["Authorization"] == "Bearer sekret"
    assert seen.headers["Accept"] == "application/json"
    assert seen.headers["User-Agent"].startswith("atoll/")


async def test_answers_other_than_json(fake: FakeAPI, client: Client) -> None:
    async def text(request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    async def empty(request: web.Request) -> web.StreamResponse:
        return web.Response(status=200)

    fake.on("GET", "/healthz", text)
    fake.on("DELETE", "/api/v1/namespaces/ns/configmaps/a", empty)
    assert await client.request("GET", "/healthz") == "ok"
    assert await client.request("GET", "/healthz", raw=True) == b"ok"
    assert await client.delete(CMS, "a", "ns") is None


async def test_list_all_follows_continue_tokens(fake: FakeAPI, client: Client) -> None:
    pages = {"": ({"continue": "p2"}, ["a", "b"]), "p2": ({"continue": "p3"}, ["c"]),
             "p3": ({"resourceVersion": "42"}, ["d"])}

    async def page(request: web.Request) -> web.StreamResponse:
        meta, names = pages[request.query.get("continue", "")]
        return reply({"kind": "ConfigMapList", "metadata": meta, "items": [{"metadata": {"name": n}} for n in names]})

    fake.on("GET", "/api/v1/namespaces/ns/configmaps", page)
    items, rv = await client.list_all(CMS, "ns", page=2, label_selector="a=b")
    assert [i["metadata"]["name"] for i in items] == ["a", "b", "c", "d"] and rv == "42"
    assert [(s.query.get("continue"), s.query["limit"], s.query["labelSelector"]) for s in fake.seen] == [
        (None, "2", "a=b"), ("p2", "2", "a=b"), ("p3", "2", "a=b")]


async def test_explicit_construction(fake: FakeAPI) -> None:
    fake.on("GET", "/version", {"major": "1", "minor": "32"})
    async with Client(server=fake.url + "/") as anonymous:
        assert (await anonymous.version())["minor"] == "32"
        assert anonymous.namespace == "default"
    assert "Authorization" not in fake.seen[0].headers
    with pytest.raises(ValueError):
        Client()


# -- discovery -----------------------------------------------------------------------------

async def test_discovery_is_cached_and_refreshed_on_a_miss(fake: FakeAPI, client: Client) -> None:
    fake.on("GET", "/apis/apps/v1", {"kind": "APIResourceList", "groupVersion": "apps/v1", "resources": [
        {"name": "deployments", "kind": "Deployment", "namespaced": True},
        {"name": "deployments/scale", "kind": "Scale", "namespaced": True, "group": "autoscaling"},
        {"name": "deployments/status", "kind": "Deployment", "namespaced": True}]})
    fake.on("GET", "/api/v1", {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "nodes", "kind": "Node", "namespaced": False}]})
    assert await client.resource_for("apps/v1", "Deployment") == Resource("apps/v1", "deployments", True,
                                                                          "Deployment")
    assert await client.resource_for("apps/v1", "Deployment") == DEPLOYS
    assert await client.resource_for("v1", "Node") == Resource("v1", "nodes", False, "Node")
    assert len(fake.requests("GET", "/apis/apps/v1")) == 1 and len(fake.requests("GET", "/api/v1")) == 1
    with pytest.raises(errors.NotFound, match='kind "Scale"'):  # subresources are not resources
        await client.resource_for("apps/v1", "Scale")
    await client.resource_for("apps/v1", "Deployment")  # the miss dropped the cache: asked again
    assert len(fake.requests("GET", "/apis/apps/v1")) == 2
    with pytest.raises(errors.NotFound):
        await client.resource_for("example.com/v1", "Widget")  # an unknown group version is a 404
    client.invalidate_discovery()
    await client.resource_for("v1", "Node")
    assert len(fake.requests("GET", "/api/v1")) == 2


# -- watch ---------------------------------------------------------------------------------

async def _collect(events: AsyncIterator[WatchEvent]) -> list[tuple[str, str]]:
    return [(ev.type, ev.object["metadata"].get("name") or ev.object["metadata"]["resourceVersion"])
            async for ev in events]


async def test_watch_splits_lines_across_chunks_and_passes_bookmarks(fake: FakeAPI, client: Client) -> None:
    big = "x" * 300_000  # far beyond aiohttp's readline limit
    added, modified = event("ADDED", "a", "2"), event("MODIFIED", "big", "3", data={"blob": big})
    bookmark = event("BOOKMARK", rv="5")
    stream = (added + b"\n" + modified + bookmark + event("DELETED", "a", "6")).rstrip(b"\n")  # no final newline
    chunks = [stream[i:i + 7000] for i in range(0, len(stream), 7000)]
    chunks.insert(1, b"")

    async def watch(request: web.Request) -> web.StreamResponse:
        return await fake.stream(request, chunks)

    fake.on("GET", "/api/v1/namespaces/ns/configmaps", watch)
    got = [ev async for ev in client.watch(CMS, "ns", resource_version="1", label_selector="app=x",
                                           timeout_seconds=60)]
    assert [(e.type, e.object["metadata"]["resourceVersion"]) for e in got] == [
        ("ADDED", "2"), ("MODIFIED", "3"), ("BOOKMARK", "5"), ("DELETED", "6")]
    assert got[1].object["data"]["blob"] == big
    kind, obj = got[0]  # unpacks as (type, object)
    assert (kind, obj["metadata"]["name"]) == ("ADDED", "a")
    assert fake.seen[0].query == {"watch": "true", "resourceVersion": "1", "labelSelector": "app=x",
                                  "timeoutSeconds": "60", "allowWatchBookmarks": "true"}


WATCH_ERRORS: list[tuple[str, list[bytes], int, type[errors.APIError]]] = [
    ("expired-event", [event("ADDED", "a", "2"), error_event(status_body(410, "Expired", "too old"))], 200,
     errors.Gone),
    ("gone-without-reason", [error_event({"kind": "Status", "code": 410, "message": "gone"})], 200, errors.Gone),
    ("internal-event", [error_event(status_body(500, "InternalError", "boom"))], 200, errors.InternalError),
    ("http-410", [orjson.dumps(status_body(410, "Expired", "too old"))], 410, errors.Gone),
    ("http-403", [orjson.dumps(status_body(403, "Forbidden", "no"))], 403, errors.Forbidden),
    ("malformed-line", [b'{"type": "ADDED", "object": {"metadata"\n'], 200, errors.InternalError),
    ("not-an-event", [b'{"kind": "Status"}\n'], 200, errors.InternalError),
]


@pytest.mark.parametrize(("chunks", "status", "cls"), [c[1:] for c in WATCH_ERRORS], ids=[c[0] for c in WATCH_ERRORS])
async def test_watch_errors(fake: FakeAPI, client: Client, chunks: list[bytes], status: int,
                            cls: type[errors.APIError]) -> None:
    async def watch(request: web.Request) -> web.StreamResponse:
        if status != 200:
            return web.Response(body=chunks[0], status=status, content_type="application/json")
        return await fake.stream(request, chunks, hold=True)

    fake.on("GET", "/api/v1/namespaces/ns/configmaps", watch)
    seen: list[str] = []
    with pytest.raises(errors.APIError) as info:
        async for ev in client.watch(CMS, "ns", resource_version="1"):
            seen.append(ev.type)
    assert type(info.value) is cls
    assert seen == (["ADDED"] if len(chunks) > 1 else [])


async def test_a_broken_watch_stream_is_service_unavailable(fake: FakeAPI, client: Client) -> None:
    async def watch(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write(event("ADDED", "a", "2") + b'{"type": "MODIFIED", "obj')
        await asyncio.sleep(0.05)
        assert request.transport is not None
        request.transport.close()  # the server process dies mid-event
        return resp

    fake.on("GET", "/api/v1/namespaces/ns/configmaps", watch)
    seen: list[str] = []
    with pytest.raises(errors.ServiceUnavailable, match="broken answer"):
        async for ev in client.watch(CMS, "ns"):
            seen.append(ev.type)
    assert seen == ["ADDED"]


async def test_watch_stops_promptly_on_a_quiet_stream(fake: FakeAPI, client: Client) -> None:
    async def watch(request: web.Request) -> web.StreamResponse:
        return await fake.stream(request, [event("ADDED", "a", "2")], hold=True)

    fake.on("GET", "/api/v1/namespaces/ns/configmaps", watch)
    stop = asyncio.Event()
    got: list[str] = []

    async def consume() -> None:
        async for ev in client.watch(CMS, "ns", stop=stop):
            got.append(ev.type)
            stop.set()

    await asyncio.wait_for(consume(), 5)
    assert got == ["ADDED"]


async def test_list_and_watch_resumes_and_relists(fake: FakeAPI, client: Client) -> None:
    """List at 10; watch: ADDED b, BOOKMARK 15, end; resume at 15: 410; list again at 20; watch from 20."""
    lists = iter([("10", ["a"]), ("20", ["a", "b", "c"])])
    watches = iter([
        [event("ADDED", "b", "11"), event("BOOKMARK", rv="15")],
        [error_event(status_body(410, "Expired", "too old"))],
        [event("MODIFIED", "c", "21")],
    ])
    hold_after_last = True

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.query.get("watch") != "true":
            rv, names = next(lists)
            return reply({"metadata": {"resourceVersion": rv}, "items": [{"metadata": {"name": n}} for n in names]})
        chunks = next(watches, None)
        if chunks is None:
            return await fake.stream(request, [], hold=hold_after_last)
        return await fake.stream(request, chunks)

    fake.on("GET", "/api/v1/namespaces/ns/configmaps", handler)
    stop = asyncio.Event()
    got: list[tuple[Any, ...]] = []

    async def consume() -> None:
        async for kind, obj in client.list_and_watch(CMS, "ns", stop=stop):
            if kind == "SYNC":
                got.append((kind, [i["metadata"]["name"] for i in obj["items"]], obj["resourceVersion"]))
            else:
                got.append((kind, obj["metadata"]["name"]))
            if len(got) == 4:
                stop.set()

    await asyncio.wait_for(consume(), 10)
    assert got == [("SYNC", ["a"], "10"), ("ADDED", "b"), ("SYNC", ["a", "b", "c"], "20"), ("MODIFIED", "c")]
    watch_rvs = [s.query["resourceVersion"] for s in fake.seen if s.query.get("watch") == "true"]
    assert watch_rvs[:3] == ["10", "15", "20"]
    assert all("resourceVersion" not in s.query for s in fake.seen if s.query.get("watch") != "true")


async def test_list_and_watch_retries_failures_with_backoff(fake: FakeAPI, client: Client) -> None:
    failures = [3]

    async def handler(request: web.Request) -> web.StreamResponse:
        if failures[0]:
            failures[0] -= 1
            return reply(status_body(503, "ServiceUnavailable", "starting"), 503)
        if request.query.get("watch") != "true":
            return reply({"metadata": {"resourceVersion": "1"}, "items": []})
        return await fake.stream(request, [event("ADDED", "late", "2")], hold=True)

    fake.on("GET", "/api/v1/namespaces/ns/configmaps", handler)
    stop = asyncio.Event()
    feed = client.list_and_watch(CMS, "ns", stop=stop, max_backoff=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await asyncio.wait_for(anext(feed), 10))[0] == "SYNC"
    assert loop.time() - started >= 0.2 + 0.3 + 0.3 - 0.05  # waits 0.2, then 0.4 capped to 0.3, then 0.3
    assert (await asyncio.wait_for(anext(feed), 10))[0] == "ADDED"
    stop.set()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(feed), 5)


# -- the blocking facade -------------------------------------------------------------------

async def test_sync_client(fake: FakeAPI) -> None:
    fake.on("GET", "/api/v1/namespaces/ns/configmaps/a", {"metadata": {"name": "a"}})
    fake.on("PATCH", "/api/v1/namespaces/ns/configmaps/a", {"metadata": {"name": "a"}, "data": {"k": "v"}})

    async def watch(request: web.Request) -> web.StreamResponse:
        return await fake.stream(request, [event("ADDED", "a", "2"), event("DELETED", "a", "3")])

    fake.on("GET", "/api/v1/namespaces/ns/configmaps", watch)

    def use() -> list[str]:
        with SyncClient(server=fake.url, token="t") as sync:
            assert sync.get(CMS, "a", "ns") == {"metadata": {"name": "a"}}
            assert sync.patch(CMS, "a", {"data": {"k": "v"}}, "ns", patch_type="merge")["data"] == {"k": "v"}
            with pytest.raises(errors.NotFound):
                sync.get(CMS, "missing", "ns")
            kinds = [ev.type for ev in sync.watch(CMS, "ns", resource_version="1")]
        with pytest.raises(RuntimeError, match="closed"):
            sync.get(CMS, "a", "ns")
        sync.close()  # idempotent
        return kinds

    # The facade blocks: run it off this test's event loop, as the CLI runs it off any loop.
    kinds = await asyncio.wait_for(asyncio.to_thread(use), 20)
    assert kinds == ["ADDED", "DELETED"]
    assert fake.seen[2].headers["Authorization"] == "Bearer t"
