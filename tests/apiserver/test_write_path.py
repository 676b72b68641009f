"""The update path's shortcuts keep every result of a plain read-modify-write.

Updates start from the watch cache's copy (kube's GuaranteedUpdate "suggestion"); these
tests make that copy stale on purpose (a snapshot taken before other writes) and check
that every kind of write still gives the answer an update of the current object gives:
no lost update, the right conflicts, no-ops that are not no-ops on the current object,
and a cache whose objects are never changed in place.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from atoll.api.builtin import new_registry
from atoll.api.errors import Conflict, NotFound
from atoll.api.resources import ResourceInfo
from atoll.apiserver.registry import ObjectRegistry, RequestContext, clone, now_rfc3339
from atoll.apiserver.subresources import Subresources
from atoll.apiserver.watchcache import WatchCache
from atoll.storage.memory import MemoryStore
from atoll.storage.protocol import Store
from atoll.storage.sqlite import SqliteStore
from tests.waiting import eventually

CTX = RequestContext(field_manager="test")
NS = "wp"
Obj = dict[str, Any]


@pytest.fixture(params=["memory", "sqlite"])
async def objects(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectRegistry]:
    store: Store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "s.db")
    reg = ObjectRegistry(store, new_registry())
    try:
        yield reg
    finally:
        await reg.close()
        await store.close()


def res(objects: ObjectRegistry, group: str, version: str, plural: str) -> ResourceInfo:
    i = objects.resources.get(group, version, plural)
    assert i is not None
    return i


def configmap(name: str, **data: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": dict(data)}


def pod(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


async def cached(objects: ObjectRegistry, info: ResourceInfo, name: str, rv: str) -> WatchCache:
    """The resource's watch cache, once it holds ``name`` at ``rv``."""
    cache = await objects.cache_for(info)
    key = info.key(NS, name)

    async def caught_up() -> bool:
        obj = cache.get(key)
        return obj is not None and obj["metadata"]["resourceVersion"] == rv

    await eventually(caught_up, timeout=5)
    return cache


def freeze(cache: WatchCache, monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on the cache answers with what it holds now: a copy that goes stale."""
    frozen = copy.deepcopy(cache._objects)
    monkeypatch.setattr(cache, "get", lambda key: frozen.get(key))


def merge(doc: Obj) -> bytes:
    return orjson.dumps(doc)


async def test_patch_on_a_stale_copy_loses_no_update(objects: ObjectRegistry,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cms = res(objects, "", "v1", "configmaps")
    first = await objects.create(cms, NS, configmap("a", one="1"), CTX)
    freeze(await cached(objects, cms, "a", first["metadata"]["resourceVersion"]), monkeypatch)
    second = await objects.patch(cms, NS, "a", "merge", merge({"data": {"two": "2"}}), CTX)
    third = await objects.patch(cms, NS, "a", "merge", merge({"data": {"three": "3"}}), CTX)
    assert third["data"] == {"one": "1", "two": "2", "three": "3"}
    assert int(third["metadata"]["resourceVersion"]) > int(second["metadata"]["resourceVersion"])
    assert (await objects.get(cms, NS, "a"))["data"] == third["data"]


@pytest.mark.parametrize(("sent_rv", "succeeds"), [("current", True), ("first", False)])
async def test_conditional_update_judged_on_the_current_object(objects: ObjectRegistry,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                sent_rv: str, succeeds: bool) -> None:
    cms = res(objects, "", "v1", "configmaps")
    first = await objects.create(cms, NS, configmap("b", v="1"), CTX)
    freeze(await cached(objects, cms, "b", first["metadata"]["resourceVersion"]), monkeypatch)
    current = await objects.patch(cms, NS, "b", "merge", merge({"data": {"v": "2"}}), CTX)
    body = configmap("b", v="3")
    body["metadata"]["resourceVersion"] = (current if sent_rv == "current" else first)["metadata"]["resourceVersion"]
    if succeeds:
        updated = await objects.update(cms, NS, "b", body, CTX)
        assert updated["data"] == {"v": "3"}
    else:
        with pytest.raises(Conflict):
            await objects.update(cms, NS, "b", body, CTX)
        assert (await objects.get(cms, NS, "b"))["data"] == {"v": "2"}


async def test_no_op_on_a_stale_copy_is_written_to_the_current_object(objects: ObjectRegistry,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cms = res(objects, "", "v1", "configmaps")
    first = await objects.create(cms, NS, configmap("c", v="old"), CTX)
    freeze(await cached(objects, cms, "c", first["metadata"]["resourceVersion"]), monkeypatch)
    await objects.patch(cms, NS, "c", "merge", merge({"data": {"v": "new"}}), CTX)
    # Against the stale copy this patch changes nothing; against the current object it does.
    back = await objects.patch(cms, NS, "c", "merge", merge({"data": {"v": "old"}}), CTX)
    assert back["data"] == {"v": "old"}
    assert (await objects.get(cms, NS, "c"))["data"] == {"v": "old"}


async def test_stale_copy_of_a_deleted_object_is_not_found(objects: ObjectRegistry,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from atoll.apiserver.registry import DeleteOptions

    cms = res(objects, "", "v1", "configmaps")
    first = await objects.create(cms, NS, configmap("d", v="1"), CTX)
    freeze(await cached(objects, cms, "d", first["metadata"]["resourceVersion"]), monkeypatch)
    await objects.delete(cms, NS, "d", DeleteOptions(), CTX)
    with pytest.raises(NotFound):
        await objects.patch(cms, NS, "d", "merge", merge({"data": {"v": "2"}}), CTX)


async def test_binding_a_pod_bound_since_the_cached_copy_conflicts(objects: ObjectRegistry,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pods = res(objects, "", "v1", "pods")
    subs = Subresources(objects)
    created = await objects.create(pods, NS, pod("p"), CTX)
    freeze(await cached(objects, pods, "p", created["metadata"]["resourceVersion"]), monkeypatch)
    bound = await subs.bind(NS, "p", {"target": {"name": "node-a"}}, CTX)
    assert bound["spec"]["nodeName"] == "node-a"
    with pytest.raises(Conflict, match='already assigned to node "node-a"'):
        await subs.bind(NS, "p", {"target": {"name": "node-b"}}, CTX)
    assert (await objects.get(pods, NS, "p"))["spec"]["nodeName"] == "node-a"


async def test_writes_never_change_the_cached_objects(objects: ObjectRegistry) -> None:
    pods = res(objects, "", "v1", "pods")
    subs = Subresources(objects)
    created = await objects.create(pods, NS, pod("q"), CTX)
    cache = await cached(objects, pods, "q", created["metadata"]["resourceVersion"])
    key = pods.key(NS, "q")
    before = cache.get(key)
    assert before is not None
    snapshot = copy.deepcopy(before)
    bound = await subs.bind(NS, "q", {"target": {"name": "n1"}, "metadata": {"annotations": {"x": "y"}}}, CTX)
    status = await objects.patch(pods, NS, "q", "merge", merge({"status": {"phase": "Running"}}), CTX,
                                 subresource="status")
    labelled = await objects.patch(pods, NS, "q", "strategic", merge({"metadata": {"labels": {"l": "1"}}}), CTX)
    assert before == snapshot, "a write changed the watch cache's object in place"
    assert bound["metadata"]["annotations"] == {"x": "y"}
    assert status["status"]["phase"] == "Running" and status["spec"]["nodeName"] == "n1"
    assert labelled["metadata"]["labels"] == {"l": "1"} and labelled["status"]["phase"] == "Running"


async def test_racing_writers_lose_no_update(objects: ObjectRegistry) -> None:
    cms = res(objects, "", "v1", "configmaps")
    first = await objects.create(cms, NS, configmap("race"), CTX)
    await cached(objects, cms, "race", first["metadata"]["resourceVersion"])
    # Each write loses at most once to every other writer's write: 4 x 4 stays within the
    # registry's retry budget whatever the interleaving.
    writers, rounds = 4, 4

    async def writer(w: int) -> None:
        for r in range(rounds):
            await objects.patch(cms, NS, "race", "merge", merge({"data": {f"w{w}-{r}": "x"}}), CTX)

    await asyncio.wait_for(asyncio.gather(*(writer(w) for w in range(writers))), 30)
    final = await objects.get(cms, NS, "race")
    assert sorted(final["data"]) == sorted(f"w{w}-{r}" for w in range(writers) for r in range(rounds))


async def test_status_write_prunes_unknown_status_fields_and_keeps_spec(objects: ObjectRegistry) -> None:
    pods = res(objects, "", "v1", "pods")
    await objects.create(pods, NS, pod("s"), CTX)
    out = await objects.patch(pods, NS, "s", "merge", merge({"status": {"phase": "Running", "bogus": 1},
                                                              "spec": {"nodeName": "sneaky"}}), CTX,
                              subresource="status")
    assert out["status"]["phase"] == "Running" and "bogus" not in out["status"]
    assert "nodeName" not in out["spec"]
    stored = await objects.get(pods, NS, "s")
    assert "bogus" not in stored["status"]


async def test_update_prunes_unknown_spec_fields(objects: ObjectRegistry) -> None:
    pods = res(objects, "", "v1", "pods")
    created = await objects.create(pods, NS, pod("u"), CTX)
    body = copy.deepcopy(created)
    body["metadata"]["labels"] = {"a": "b"}
    body["spec"]["containers"][0]["bogus"] = True
    body["bogusTop"] = 1
    out = await objects.update(pods, NS, "u", body, CTX)
    assert "bogus" not in out["spec"]["containers"][0] and "bogusTop" not in out
    assert out["metadata"]["labels"] == {"a": "b"}


@pytest.mark.parametrize("value", [
    {"a": [1, 2.5, None, True, "x"], "b": {"c": {}}},
    {"n": 10**30},  # beyond orjson's integers: deepcopy instead
])
def test_clone_is_deep_and_equal(value: Obj) -> None:
    out = clone(value)
    assert out == value
    assert out is not value
    for k, v in value.items():
        if isinstance(v, dict | list):
            assert out[k] is not v


def test_now_is_rfc3339_seconds() -> None:
    import re

    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", now_rfc3339())


async def test_a_copy_older_than_our_own_write_is_not_tried(objects: ObjectRegistry,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    cms = res(objects, "", "v1", "configmaps")
    first = await objects.create(cms, NS, configmap("own", v="1"), CTX)
    freeze(await cached(objects, cms, "own", first["metadata"]["resourceVersion"]), monkeypatch)
    seen: list[str] = []

    def mutate(current: Obj) -> Obj:
        seen.append(current["metadata"]["resourceVersion"])
        new = clone(current)
        new["data"]["v"] = str(len(seen) + 1)
        return new

    # The frozen copy is as new as the registry's last write: it is tried (and is right).
    second = await objects.guaranteed_update(cms, NS, "own", mutate, CTX)
    assert seen == [first["metadata"]["resourceVersion"]]
    # Now the registry knows it wrote a newer revision: the stale copy is skipped.
    await objects.guaranteed_update(cms, NS, "own", mutate, CTX)
    assert seen[1:] == [second["metadata"]["resourceVersion"]]
