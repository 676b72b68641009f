"""Pod garbage collector: which pods are collected, and a real pass over the API server."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from atoll.api.errors import NotFound
from atoll.client import Client, Resource
from atoll.cluster.controllers.podgc import OUT_OF_SERVICE, PODS, PodGCController, plan
from tests.conftest import RunningServer
from tests.waiting import eventually

NSS = Resource("v1", "namespaces", namespaced=False)


def pod(name: str, *, node: str = "", phase: str = "Running", deleting: bool = False,
        created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, "namespace": "ns", "creationTimestamp": created}
    if deleting:
        md["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    return {"metadata": md, "spec": {"nodeName": node}, "status": {"phase": phase}}


NODES = {"n1": {"metadata": {"name": "n1"}, "spec": {}},
         "oos": {"metadata": {"name": "oos"},
                 "spec": {"taints": [{"key": OUT_OF_SERVICE, "value": "nodeshutdown", "effect": "NoExecute"}]}}}


@pytest.mark.parametrize(("pods", "missing", "now", "threshold", "expected"), [
    ([pod("a", node="n1")], {}, 100, 10, []),                                      # healthy
    ([pod("a", node="ghost")], {"ghost": 90}, 100, 10, []),                         # still in quarantine
    ([pod("a", node="ghost")], {"ghost": 50}, 100, 10, [("ns/a", True)]),           # orphaned
    ([pod("a", node="oos")], {}, 100, 10, []),                                      # out of service, not deleting
    ([pod("a", node="oos", deleting=True)], {}, 100, 10, [("ns/a", True)]),         # ... and terminating
    ([pod("a", deleting=True)], {}, 100, 10, [("ns/a", True)]),                     # unscheduled terminating
    ([pod("a")], {}, 100, 10, []),                                                  # merely pending
    ([pod("old", node="n1", phase="Succeeded", created="2026-01-01T00:00:00Z"),
      pod("new", node="n1", phase="Failed", created="2026-01-02T00:00:00Z"),
      pod("run", node="n1")], {}, 100, 1, [("ns/old", False)]),                      # oldest terminated first
])
def test_plan(pods: list[dict[str, Any]], missing: dict[str, float], now: float, threshold: int,
              expected: list[tuple[str, bool]]) -> None:
    got = plan(pods, NODES, missing, now, quarantine=40, terminated_threshold=threshold)
    assert [(c.pod, c.force) for c in got] == expected


async def test_orphaned_pods_are_force_deleted(apiserver: RunningServer) -> None:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(NSS, {"metadata": {"name": "podgc"}})
        await client.create(PODS, {"metadata": {"name": "orphan", "namespace": "podgc"},
                                   "spec": {"nodeName": "ghost-node", "containers": [{"name": "c", "image": "x"}]}})
        gc = PodGCController(client, interval=0.2, quarantine=0.5)
        stop = asyncio.Event()
        task = asyncio.create_task(gc.run(stop))
        try:
            async def gone() -> bool:
                try:
                    await client.get(PODS, "orphan", "podgc")
                except NotFound:
                    return True
                return False

            await eventually(gone, 15)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
