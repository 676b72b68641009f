"""Simulated nodes with the real scheduler over a real API server."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from atoll.api.errors import NotFound
from atoll.client import Client, Resource
from atoll.cluster.kubelet.simulated import LEASES, NODES, PODS, NodeSpec, PodIPs, SimulatedNodes, Stages
from atoll.cluster.scheduler.controller import SchedulerController
from tests.conftest import RunningServer

NSS = Resource("v1", "namespaces", namespaced=False)


async def eventually(check: Any, timeout: float = 15.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.05)


def test_pod_ips_are_unique_and_reused() -> None:
    ips = PodIPs("127.16.0.0/29")
    a, b = ips.allocate("a"), ips.allocate("b")
    assert a != b and ips.allocate("a") == a
    ips.release("a")
    assert ips.allocate("c") == a


async def test_simulated_nodes_run_complete_and_delete_pods(apiserver: RunningServer) -> None:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(NSS, {"metadata": {"name": "sim"}})
        specs = [NodeSpec(f"sim-{i}", cpu="2", labels={"topology.kubernetes.io/zone": f"z{i}"}) for i in range(3)]
        sim = SimulatedNodes(client, specs, stages=Stages(start=0.05, complete=1.0), renew_interval=0.5)
        sched = SchedulerController(client)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(sim.run(stop)), asyncio.create_task(sched.run(stop))]
        try:
            async def ready_nodes() -> bool:
                nodes = (await client.list(NODES))["items"]
                return len([n for n in nodes if n["metadata"]["name"].startswith("sim-")]) == 3

            await eventually(ready_nodes)
            node = await client.get(NODES, "sim-1")
            assert node["status"]["allocatable"]["cpu"] == "2"
            assert any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
            for i in range(4):
                await client.create(PODS, {"metadata": {"name": f"web-{i}", "namespace": "sim"},
                                           "spec": {"containers": [{"name": "c", "image": "echo"}]}})
            await client.create(PODS, {"metadata": {"name": "job", "namespace": "sim"},
                                       "spec": {"restartPolicy": "Never",
                                                "containers": [{"name": "c", "image": "busybox"}]}})

            async def running() -> list[str] | None:
                pods = [await client.get(PODS, f"web-{i}", "sim") for i in range(4)]
                if all((p.get("status") or {}).get("phase") == "Running" for p in pods):
                    return [p["status"]["podIP"] for p in pods]
                return None

            ips = await eventually(running)
            assert len(set(ips)) == 4 and all(ip.startswith("127.16.") for ip in ips)

            async def phase_of_job() -> str:
                return str(((await client.get(PODS, "job", "sim")).get("status") or {}).get("phase") or "")

            async def job_running() -> bool:
                return await phase_of_job() == "Running"

            await eventually(job_running)
            running_since = asyncio.get_running_loop().time()

            async def succeeded() -> bool:
                return await phase_of_job() == "Succeeded"

            await eventually(succeeded)
            # It ran for its stage's time (1 s), not just until the next event.
            assert asyncio.get_running_loop().time() - running_since >= 0.8
            await client.delete(PODS, "web-0", "sim")  # graceful: the simulated kubelet confirms it

            async def gone() -> bool:
                try:
                    await client.get(PODS, "web-0", "sim")
                    return False
                except NotFound:
                    return True

            await eventually(gone)
            lease = await client.get(LEASES, "sim-2", "kube-node-lease")
            assert lease["spec"]["holderIdentity"] == "sim-2" and lease["spec"]["renewTime"]
        finally:
            stop.set()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(t, 10)
