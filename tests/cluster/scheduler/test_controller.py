"""The scheduler controller against a real API server: bind, explain, retry on new capacity."""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Any

from atoll.client import Client, Resource
from atoll.cluster.scheduler.controller import EVENTS, NODES, PODS, SchedulerController
from tests.conftest import RunningServer

NSS = Resource("v1", "namespaces", namespaced=False)


def node(name: str, cpu: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {"zone": name}},
            "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "10"},
                       "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "10"}}}


def pod(name: str, cpu: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "sched"},
            "spec": {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu}}}]}}


async def eventually(check: Any, timeout: float = 15.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.05)


async def test_scheduler_binds_explains_and_retries(apiserver: RunningServer) -> None:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(NSS, {"metadata": {"name": "sched"}})
        for n, cpu in (("small-a", "1"), ("small-b", "1")):
            created = await client.create(NODES, node(n, cpu))
            created["status"] = node(n, cpu)["status"]
            await client.replace_status(NODES, created)
        scheduler = SchedulerController(client, rng=random.Random(0))
        stop = asyncio.Event()
        task = asyncio.create_task(scheduler.run(stop))
        try:
            for i in range(2):
                await client.create(PODS, pod(f"fits-{i}", "600m"))

            async def bound() -> list[str] | None:
                nodes = [(await client.get(PODS, f"fits-{i}", "sched"))["spec"].get("nodeName") for i in range(2)]
                return nodes if all(nodes) else None

            placed = await eventually(bound)
            assert sorted(placed) == ["small-a", "small-b"]  # 600m each: they cannot share a 1-CPU node

            await client.create(PODS, pod("huge", "4"))

            async def explained() -> dict[str, Any] | None:
                p = await client.get(PODS, "huge", "sched")
                cond = next((c for c in (p.get("status") or {}).get("conditions") or []
                             if c["type"] == "PodScheduled"), None)
                return cond if cond and cond["status"] == "False" else None

            cond = await eventually(explained)
            assert cond["reason"] == "Unschedulable"
            assert cond["message"] == "0/2 nodes are available: 2 Insufficient cpu."
            events = (await client.list(EVENTS, "sched", field_selector="involvedObject.name=huge"))["items"]
            assert any(e["reason"] == "FailedScheduling" and e["type"] == "Warning" for e in events)

            big = await client.create(NODES, node("big", "8"))
            big["status"] = node("big", "8")["status"]
            await client.replace_status(NODES, big)

            async def huge_bound() -> str | None:
                return (await client.get(PODS, "huge", "sched"))["spec"].get("nodeName")

            assert await eventually(huge_bound) == "big"
            scheduled = (await client.list(EVENTS, "sched", field_selector="involvedObject.name=huge"))["items"]
            assert any(e["reason"] == "Scheduled" for e in scheduled)
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
