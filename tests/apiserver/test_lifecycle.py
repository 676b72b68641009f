"""Garbage collection and namespace deletion, run in-process over the memory store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from atoll.api.builtin import new_registry
from atoll.api.errors import NotFound
from atoll.apiserver.lifecycle import Lifecycle
from atoll.apiserver.registry import DeleteOptions, ObjectRegistry, RequestContext
from atoll.storage.memory import MemoryStore

CTX = RequestContext(field_manager="test")


@pytest.fixture
async def objects() -> AsyncIterator[ObjectRegistry]:
    store = MemoryStore()
    reg = ObjectRegistry(store, new_registry())
    lifecycle = Lifecycle(store, reg)
    task = asyncio.create_task(lifecycle.run())
    await lifecycle.wait_ready()
    try:
        yield reg
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await reg.close()


async def eventually(check: Callable[[], object], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            try:
                result = check()
                if asyncio.iscoroutine(result):
                    result = await result
                if result:
                    return
            except NotFound:
                pass
            await asyncio.sleep(0.05)


async def gone(objects: ObjectRegistry, plural: str, name: str, group: str = "", version: str = "v1",
               ns: str | None = "ns") -> bool:
    info = objects.resources.get(group, version, plural)
    assert info is not None
    return await objects.try_get(info, ns, name) is None


async def owner_and_child(objects: ObjectRegistry, block: bool = True) -> None:
    deps = objects.resources.get("apps", "v1", "deployments")
    cms = objects.resources.get("", "v1", "configmaps")
    assert deps and cms
    d = await objects.create(deps, "ns", {"metadata": {"name": "owner"}, "spec": {
        "selector": {"matchLabels": {"a": "b"}},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}},
        CTX)
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "owner", "uid": d["metadata"]["uid"],
           "blockOwnerDeletion": block, "controller": True}
    await objects.create(cms, "ns", {"metadata": {"name": "child", "ownerReferences": [ref]}}, CTX)


@pytest.mark.parametrize("policy", ["Background", "Foreground"])
async def test_cascading_deletion_removes_dependents(objects: ObjectRegistry, policy: str) -> None:
    await owner_and_child(objects)
    deps = objects.resources.get("apps", "v1", "deployments")
    assert deps
    await objects.delete(deps, "ns", "owner", DeleteOptions(propagation_policy=policy), CTX)
    await eventually(lambda: gone(objects, "configmaps", "child"))
    await eventually(lambda: gone(objects, "deployments", "owner", "apps"))


async def test_foreground_owner_waits_for_blocking_dependent(objects: ObjectRegistry) -> None:
    await owner_and_child(objects)
    cms = objects.resources.get("", "v1", "configmaps")
    deps = objects.resources.get("apps", "v1", "deployments")
    assert cms and deps
    child = await objects.get(cms, "ns", "child")
    child["metadata"]["finalizers"] = ["example.com/slow"]
    await objects.update(cms, "ns", "child", child, CTX)
    await objects.delete(deps, "ns", "owner", DeleteOptions(propagation_policy="Foreground"), CTX)
    await asyncio.sleep(0.5)
    owner = await objects.get(deps, "ns", "owner")
    assert "foregroundDeletion" in owner["metadata"]["finalizers"]
    await objects.remove_finalizer(cms, "ns", "child", "example.com/slow")
    await eventually(lambda: gone(objects, "deployments", "owner", "apps"))


async def test_orphan_keeps_dependents(objects: ObjectRegistry) -> None:
    await owner_and_child(objects)
    deps = objects.resources.get("apps", "v1", "deployments")
    cms = objects.resources.get("", "v1", "configmaps")
    assert deps and cms
    await objects.delete(deps, "ns", "owner", DeleteOptions(propagation_policy="Orphan"), CTX)
    await eventually(lambda: gone(objects, "deployments", "owner", "apps"))
    child = await objects.get(cms, "ns", "child")
    assert not child["metadata"].get("ownerReferences")


async def test_dependent_of_missing_owner_is_collected(objects: ObjectRegistry) -> None:
    cms = objects.resources.get("", "v1", "configmaps")
    assert cms
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "no-such-uid"}
    await objects.create(cms, "ns", {"metadata": {"name": "orphaned", "ownerReferences": [ref]}}, CTX)
    await eventually(lambda: gone(objects, "configmaps", "orphaned"))


async def test_namespace_deletion_empties_it(objects: ObjectRegistry) -> None:
    nss = objects.resources.get("", "v1", "namespaces")
    cms = objects.resources.get("", "v1", "configmaps")
    assert nss and cms
    await objects.create(nss, None, {"metadata": {"name": "tmp"}}, CTX)
    for i in range(3):
        await objects.create(cms, "tmp", {"metadata": {"name": f"c{i}"}}, CTX)
    ns, deleted_now = await objects.delete(nss, None, "tmp", DeleteOptions(), CTX)
    assert not deleted_now and ns["status"]["phase"] == "Terminating"
    await eventually(lambda: gone(objects, "namespaces", "tmp", ns=None))
    assert (await objects.list(cms, "tmp")).items == []
