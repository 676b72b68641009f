"""Informers and a small controller against a real API server."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from atoll.api.errors import NotFound
from atoll.client import Client, Resource
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.informing import Informer, split_key
from tests.conftest import RunningServer

CMS = Resource("v1", "configmaps")
NSS = Resource("v1", "namespaces", namespaced=False)


async def eventually(check: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 - polling the API server, not a local flag
            await asyncio.sleep(0.05)


async def test_informer_cache_and_events(apiserver: RunningServer) -> None:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(NSS, {"metadata": {"name": "inf"}})
        await client.create(CMS, {"metadata": {"name": "pre", "namespace": "inf"}})
        informer = Informer(client, CMS, namespace="inf")
        events: list[tuple[str, str]] = []
        informer.add_handler(lambda ev, old, new: events.append((ev, ((new or old) or {})["metadata"]["name"])))
        stop = asyncio.Event()
        task = asyncio.create_task(informer.run(stop))
        await asyncio.wait_for(informer.synced.wait(), 10)
        assert events == [("ADDED", "pre")]
        await client.patch(CMS, "pre", {"data": {"a": "b"}}, "inf")
        await client.delete(CMS, "pre", "inf")

        async def seen() -> bool:
            return events[-2:] == [("MODIFIED", "pre"), ("DELETED", "pre")]

        await eventually(seen)
        assert informer.lister.list("inf") == []
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Mirror(Controller):
    """Copies each ConfigMap's data into a ``<name>-mirror`` ConfigMap; fails once on purpose."""

    NAME = "mirror-controller"

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client
        self.source = self.watch(Informer(client, CMS, namespace="ctl", label_selector="mirror=yes"))
        self.failed_once: set[str] = set()
        self.reconciles = 0

    async def reconcile(self, key: str) -> Result:
        self.reconciles += 1
        ns, name = split_key(key)
        obj = self.source.lister.get(key)
        if obj is None:
            try:
                await self.client.delete(CMS, f"{name}-mirror", ns)
            except NotFound:
                pass
            return Result()
        if key not in self.failed_once:
            self.failed_once.add(key)
            raise RuntimeError("transient failure")
        await self.client.apply(CMS, {"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": f"{name}-mirror", "namespace": ns},
                                      "data": obj.get("data") or {}}, field_manager=self.NAME)
        return Result()


async def test_controller_reconciles_retries_and_cleans_up(apiserver: RunningServer) -> None:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(NSS, {"metadata": {"name": "ctl"}})
        ctl = Mirror(client)
        stop = asyncio.Event()
        task = asyncio.create_task(ctl.run(stop))
        await client.create(CMS, {"metadata": {"name": "src", "namespace": "ctl", "labels": {"mirror": "yes"}},
                                  "data": {"k": "v"}})

        async def mirrored() -> bool:
            try:
                return (await client.get(CMS, "src-mirror", "ctl")).get("data") == {"k": "v"}
            except NotFound:
                return False

        await eventually(mirrored)
        assert ctl.reconciles >= 2  # the first attempt failed and was retried
        await client.delete(CMS, "src", "ctl")

        async def removed() -> bool:
            return not await mirrored()

        await eventually(removed)
        stop.set()
        await asyncio.wait_for(task, 10)
