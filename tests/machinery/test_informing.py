"""Shared informers: one list+watch per query and client, each informer with its own handlers."""

from __future__ import annotations

import asyncio

from atoll.client import Client, Resource
from atoll.machinery.informing import _SOURCES, Informer
from tests.conftest import RunningServer
from tests.waiting import eventually

CMS = Resource("v1", "configmaps")
NSS = Resource("v1", "namespaces", namespaced=False)


async def test_informers_share_one_watch_and_late_joiners_see_the_cache(apiserver: RunningServer) -> None:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(NSS, {"metadata": {"name": "shared"}})
        await client.create(CMS, {"metadata": {"name": "one", "namespace": "shared"}})
        first, second = Informer(client, CMS, namespace="shared"), Informer(client, CMS, namespace="shared")
        other = Informer(client, CMS, namespace="shared", label_selector="x=y")
        assert first._source is second._source and other._source is not first._source
        seen: dict[str, list[tuple[str, str]]] = {"first": [], "second": []}
        first.add_handler(lambda ev, old, new: seen["first"].append((ev, (new or old or {})["metadata"]["name"])))
        second.add_handler(lambda ev, old, new: seen["second"].append((ev, (new or old or {})["metadata"]["name"])))
        stop_first, stop_second = asyncio.Event(), asyncio.Event()
        t1 = asyncio.create_task(first.run(stop_first))
        await asyncio.wait_for(first.synced.wait(), 10)
        await client.create(CMS, {"metadata": {"name": "two", "namespace": "shared"}})
        await eventually(lambda: asyncio.sleep(0, ("ADDED", "two") in seen["first"]))
        # A late joiner gets every cached object as ADDED, then live events.
        t2 = asyncio.create_task(second.run(stop_second))
        await asyncio.wait_for(second.synced.wait(), 10)
        assert sorted(seen["second"]) == [("ADDED", "one"), ("ADDED", "two")]
        await client.delete(CMS, "one", "shared")
        await eventually(lambda: asyncio.sleep(0, ("DELETED", "one") in seen["second"]
                                               and ("DELETED", "one") in seen["first"]))
        assert first.lister.get("shared/two") is second.lister.get("shared/two")
        # The source stays while one informer still runs, and goes with the last.
        stop_first.set()
        await t1
        key = ("v1", "configmaps", "shared", "", "")
        assert _SOURCES[client][key] is second._source
        stop_second.set()
        await t2
        assert key not in _SOURCES[client]
        # Running again starts a fresh list+watch.
        again = asyncio.Event()
        t3 = asyncio.create_task(first.run(again))
        await asyncio.wait_for(first.synced.wait(), 10)
        assert first.lister.get("shared/two") is not None and first.lister.get("shared/one") is None
        again.set()
        await t3
