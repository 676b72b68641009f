"""The object registry over the in-memory store: the rules every write goes through."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from atoll.api.builtin import new_registry
from atoll.api.errors import AlreadyExists, BadRequest, Conflict, Gone, Invalid, NotFound
from atoll.api.resources import ResourceInfo
from atoll.apiserver.registry import DeleteOptions, ObjectRegistry, RequestContext
from atoll.storage.memory import MemoryStore

CTX = RequestContext(field_manager="test")


@pytest.fixture
async def objects() -> AsyncIterator[ObjectRegistry]:
    reg = ObjectRegistry(MemoryStore(), new_registry())
    try:
        yield reg
    finally:
        await reg.close()


def info(objects: ObjectRegistry, group: str, version: str, plural: str) -> ResourceInfo:
    i = objects.resources.get(group, version, plural)
    assert i is not None
    return i


def deployment(name: str, replicas: int = 1) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


async def test_create_sets_system_fields_and_defaults(objects: ObjectRegistry) -> None:
    deps = info(objects, "apps", "v1", "deployments")
    d = await objects.create(deps, "ns", deployment("web"), CTX)
    md = d["metadata"]
    assert md["uid"] and md["creationTimestamp"] and md["resourceVersion"] and md["generation"] == 1
    assert md["namespace"] == "ns"
    assert d["spec"]["strategy"]["type"] == "RollingUpdate"
    assert d["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert md["managedFields"][0]["manager"] == "test"
    with pytest.raises(AlreadyExists):
        await objects.create(deps, "ns", deployment("web"), CTX)


@pytest.mark.parametrize(("mutation", "error"), [
    (lambda o: o["metadata"].update(name="Bad_Name"), Invalid),
    (lambda o: o.update(kind="ReplicaSet"), BadRequest),
    (lambda o: o["metadata"].update(namespace="other"), BadRequest),
    (lambda o: o["spec"]["selector"].update(matchLabels={"app": "nope"}), Invalid),
    (lambda o: o["metadata"].pop("name"), Invalid),
])
async def test_create_rejects_bad_objects(objects: ObjectRegistry, mutation, error) -> None:  # type: ignore[no-untyped-def]
    obj = deployment("web")
    mutation(obj)
    with pytest.raises(error):
        await objects.create(info(objects, "apps", "v1", "deployments"), "ns", obj, CTX)
    assert (await objects.list(info(objects, "apps", "v1", "deployments"), "ns")).items == []


async def test_generate_name(objects: ObjectRegistry) -> None:
    cms = info(objects, "", "v1", "configmaps")
    a = await objects.create(cms, "ns", {"metadata": {"generateName": "cfg-"}}, CTX)
    b = await objects.create(cms, "ns", {"metadata": {"generateName": "cfg-"}}, CTX)
    assert a["metadata"]["name"].startswith("cfg-") and len(a["metadata"]["name"]) == 9
    assert a["metadata"]["name"] != b["metadata"]["name"]


async def test_update_conflicts_and_generation(objects: ObjectRegistry) -> None:
    deps = info(objects, "apps", "v1", "deployments")
    d = await objects.create(deps, "ns", deployment("web"), CTX)
    stale = dict(d)
    d["spec"]["replicas"] = 3
    d2 = await objects.update(deps, "ns", "web", d, CTX)
    assert d2["metadata"]["generation"] == 2
    with pytest.raises(Conflict):
        await objects.update(deps, "ns", "web", stale, CTX)
    d2["metadata"]["labels"] = {"x": "y"}
    d3 = await objects.update(deps, "ns", "web", d2, CTX)
    assert d3["metadata"]["generation"] == 2  # metadata-only change
    d3["status"] = {"replicas": 7}
    d4 = await objects.update(deps, "ns", "web", d3, CTX)
    assert "replicas" not in (d4.get("status") or {})  # status only through /status
    d4["status"] = {"replicas": 7}
    d4["spec"]["replicas"] = 99
    d5 = await objects.update(deps, "ns", "web", d4, CTX, subresource="status")
    assert d5["status"]["replicas"] == 7 and d5["spec"]["replicas"] == 3


async def test_patch_types(objects: ObjectRegistry) -> None:
    cms = info(objects, "", "v1", "configmaps")
    await objects.create(cms, "ns", {"metadata": {"name": "c"}, "data": {"a": "1"}}, CTX)
    out = await objects.patch(cms, "ns", "c", "merge", b'{"data":{"b":"2","a":null}}', CTX)
    assert out["data"] == {"b": "2"}
    out = await objects.patch(cms, "ns", "c", "json", b'[{"op":"add","path":"/data/c","value":"3"}]', CTX)
    assert out["data"] == {"b": "2", "c": "3"}
    apply_ctx = RequestContext(field_manager="applier")
    out = await objects.patch(cms, "ns", "c", "apply",
                              b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"},"data":{"d":"4"}}',
                              apply_ctx)
    assert out["data"]["d"] == "4"
    created = await objects.patch(cms, "ns", "fresh", "apply",
                                  b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fresh}\ndata: {x: y}\n",
                                  apply_ctx)
    assert created["data"] == {"x": "y"} and created["metadata"]["uid"]


async def test_list_pagination_and_resource_versions(objects: ObjectRegistry) -> None:
    cms = info(objects, "", "v1", "configmaps")
    for i in range(7):
        await objects.create(cms, "ns", {"metadata": {"name": f"c{i}", "labels": {"even": str(i % 2 == 0)}}}, CTX)
    first = await objects.list(cms, "ns", limit=3)
    assert [o["metadata"]["name"] for o in first.items] == ["c0", "c1", "c2"] and first.continue_token
    await objects.create(cms, "ns", {"metadata": {"name": "c99"}}, CTX)  # not in the snapshot
    rest = await objects.list(cms, "ns", limit=10, continue_token=first.continue_token)
    assert [o["metadata"]["name"] for o in rest.items] == ["c3", "c4", "c5", "c6"] and not rest.continue_token
    assert rest.resource_version == first.resource_version
    evens = await objects.list(cms, "ns", label_selector="even=True")
    assert [o["metadata"]["name"] for o in evens.items] == ["c0", "c2", "c4", "c6"]
    byname = await objects.list(cms, "ns", field_selector="metadata.name=c5")
    assert [o["metadata"]["name"] for o in byname.items] == ["c5"]
    cached = await objects.list(cms, "ns", resource_version="0")
    assert len(cached.items) == 8
    exact = await objects.list(cms, "ns", resource_version=first.resource_version, resource_version_match="Exact")
    assert len(exact.items) == 7
    with pytest.raises(BadRequest):
        await objects.list(cms, "ns", field_selector="data.x=1")


async def test_watch_resume_and_too_old(objects: ObjectRegistry) -> None:
    cms = info(objects, "", "v1", "configmaps")
    a = await objects.create(cms, "ns", {"metadata": {"name": "a"}}, CTX)
    stream = await objects.watch(cms, "ns", resource_version=a["metadata"]["resourceVersion"])
    await objects.create(cms, "ns", {"metadata": {"name": "b"}}, CTX)
    await objects.delete(cms, "ns", "a", DeleteOptions(), CTX)
    got = [await asyncio.wait_for(stream.next(), 5) for _ in range(2)]
    await stream.aclose()
    assert [(e.type, e.object["metadata"]["name"]) for e in got if e] == [("ADDED", "b"), ("DELETED", "a")]
    # From zero: the current state first.
    stream0 = await objects.watch(cms, "ns", resource_version="0")
    first = await asyncio.wait_for(stream0.next(), 5)
    await stream0.aclose()
    assert first is not None and (first.type, first.object["metadata"]["name"]) == ("ADDED", "b")
    # Older than the cache window but still in the store: served from the store's history.
    cache = await objects.cache_for(cms)
    cache._window_start = 10_000
    old = await objects.watch(cms, "ns", resource_version=a["metadata"]["resourceVersion"])
    replayed = [await asyncio.wait_for(old.next(), 5) for _ in range(2)]
    await old.aclose()
    assert [(e.type, e.object["metadata"]["name"]) for e in replayed if e] == [("ADDED", "b"), ("DELETED", "a")]
    # Compacted away: 410 Gone.
    await objects.store.compact(await objects.store.current_revision())
    with pytest.raises(Gone):
        await objects.watch(cms, "ns", resource_version="1")


async def test_label_selector_watch_sees_objects_leave(objects: ObjectRegistry) -> None:
    cms = info(objects, "", "v1", "configmaps")
    stream = await objects.watch(cms, "ns", label_selector="app=x", resource_version="0")
    c = await objects.create(cms, "ns", {"metadata": {"name": "c", "labels": {"app": "x"}}}, CTX)
    c["metadata"]["labels"] = {"app": "y"}
    await objects.update(cms, "ns", "c", c, CTX)
    got = [await asyncio.wait_for(stream.next(), 5) for _ in range(2)]
    await stream.aclose()
    assert [e.type for e in got if e] == ["ADDED", "DELETED"]


async def test_finalizers_hold_deletion(objects: ObjectRegistry) -> None:
    cms = info(objects, "", "v1", "configmaps")
    await objects.create(cms, "ns", {"metadata": {"name": "f", "finalizers": ["example.com/hold"]}}, CTX)
    obj, gone = await objects.delete(cms, "ns", "f", DeleteOptions(), CTX)
    assert not gone and obj["metadata"]["deletionTimestamp"]
    obj["metadata"]["finalizers"].append("example.com/another")
    with pytest.raises(Exception, match="no new finalizers"):
        await objects.update(cms, "ns", "f", obj, CTX)
    await objects.remove_finalizer(cms, "ns", "f", "example.com/hold")
    with pytest.raises(NotFound):
        await objects.get(cms, "ns", "f")


async def test_pod_on_a_node_is_deleted_gracefully(objects: ObjectRegistry) -> None:
    pods = info(objects, "", "v1", "pods")
    pod = {"metadata": {"name": "p"}, "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}}
    await objects.create(pods, "ns", pod, CTX)
    obj, gone = await objects.delete(pods, "ns", "p", DeleteOptions(), CTX)
    assert not gone and obj["metadata"]["deletionGracePeriodSeconds"] == 30
    obj, gone = await objects.delete(pods, "ns", "p", DeleteOptions(grace_period_seconds=0), CTX)
    assert gone
    unscheduled = {"metadata": {"name": "q"}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    await objects.create(pods, "ns", unscheduled, CTX)
    _, gone = await objects.delete(pods, "ns", "q", DeleteOptions(), CTX)
    assert gone


async def test_dry_run_writes_nothing(objects: ObjectRegistry) -> None:
    cms = info(objects, "", "v1", "configmaps")
    out = await objects.create(cms, "ns", {"metadata": {"name": "d"}}, RequestContext(dry_run=True))
    assert out["metadata"]["uid"]
    with pytest.raises(NotFound):
        await objects.get(cms, "ns", "d")
