"""A burst of pods through the real API server: bound concurrently, within capacity, explained.

The bench's shape at a small size: nodes and pending pods exist before the scheduler
starts; bindings travel in parallel (bounded), every pod lands on a node with room, and
the ``Scheduled`` events written from the buffer are visible to kubectl.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter

from atoll.client import Client, Resource
from atoll.cluster.kubelet.simulated import NodeSpec, SimulatedNodes
from atoll.cluster.scheduler.controller import EVENTS, PODS, SchedulerController
from tests.conftest import RunningServer
from tests.waiting import eventually

NSS = Resource("v1", "namespaces", namespaced=False)
NODES, PODS_PER_NODE, PENDING = 12, 6, 70  # 72 slots for 70 pods: nearly full, no slot taken twice


async def test_burst_binds_every_pod_within_capacity(apiserver: RunningServer) -> None:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(NSS, {"metadata": {"name": "burst"}})
        await SimulatedNodes(client, [NodeSpec(f"burst-{i:02d}", cpu="2", pods=PODS_PER_NODE)
                                      for i in range(NODES)]).register()
        sem = asyncio.Semaphore(16)

        async def create(i: int) -> None:
            async with sem:
                await client.create(PODS, {"metadata": {"name": f"b-{i}", "namespace": "burst"}, "spec": {
                    "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "300m"}}}]}})

        await asyncio.gather(*(create(i) for i in range(PENDING)))
        sched = SchedulerController(client, rng=random.Random(0), bind_concurrency=8)
        stop = asyncio.Event()
        task = asyncio.create_task(sched.run(stop))
        try:
            async def all_bound() -> list[str] | None:
                pods = (await client.list(PODS, "burst"))["items"]
                nodes = [p["spec"].get("nodeName") for p in pods]
                return nodes if len(nodes) == PENDING and all(nodes) else None

            placed = await eventually(all_bound, timeout=30)
            per_node = Counter(placed)
            assert len(per_node) == NODES and max(per_node.values()) <= PODS_PER_NODE  # 6 x 300m fit in 2 CPUs
            assert sched.metrics.max_in_flight <= 8
            assert sched.metrics.bind_errors == 0
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 20)
        assert sched.event_sink.dropped == 0 and sched.event_sink.pending == 0
        events = (await client.list(EVENTS, "burst", field_selector="reason=Scheduled"))["items"]
        assert len({e["involvedObject"]["name"] for e in events}) == sched.metrics.bound
    out = apiserver.kubectl("get", "events", "-n", "burst", "-o", "json")
    assert any(e["reason"] == "Scheduled" and e["source"]["component"] == "default-scheduler"
               for e in json.loads(out.stdout)["items"])
