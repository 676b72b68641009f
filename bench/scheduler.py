"""Scheduler benchmark: pods scheduled per second on many simulated nodes, through the API.

A real ``atoll apiserver`` process (SQLite), N simulated nodes registered through the API,
the scheduler controller in this process, and P pods created by 64 concurrent clients.
Measures pods bound per second from the first create to the last binding (kube-scheduler's
own CI floor for 5,000 nodes / 10,000 pods is 680 pods/s) and the framework alone.

    .venv/bin/python bench/scheduler.py [--quick] [--nodes 5000] [--pods 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from atoll.client import Client, Resource  # noqa: E402
from atoll.cluster.kubelet.simulated import NodeSpec, SimulatedNodes  # noqa: E402
from atoll.cluster.scheduler.controller import PODS, SchedulerController  # noqa: E402
from atoll.cluster.scheduler.framework import NodeInfo  # noqa: E402
from atoll.cluster.scheduler.plugins import default_framework  # noqa: E402
from bench.apiserver import Server  # noqa: E402

KUBE_FLOOR = 680.0
RESULTS = ROOT / "bench" / "results"


def pod(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{i}", "namespace": "bench",
                                                            "labels": {"app": f"a{i % 10}"}},
            "spec": {"containers": [{"name": "c", "image": "echo",
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}


def framework_only(nodes: int, pods: int) -> float:
    infos = [NodeInfo.build({"metadata": {"name": f"n{i}", "labels": {"zone": f"z{i % 3}"}}, "spec": {},
                             "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"}}})
             for i in range(nodes)]
    by_name = {i.name: i for i in infos}
    fw = default_framework()
    t0 = time.perf_counter()
    for i in range(pods):
        p = pod(i)
        result = fw.schedule(p, infos)
        assert result.node is not None
        by_name[result.node].add_pod(p)
    return pods / (time.perf_counter() - t0)


async def through_api(server: Server, nodes: int, pods: int) -> dict[str, Any]:
    client = Client.from_kubeconfig(server.state / "kubeconfig")
    async with client:
        await client.create(Resource("v1", "namespaces", namespaced=False), {"metadata": {"name": "bench"}})
        specs = [NodeSpec(f"node-{i:05d}", cpu="32", memory="256Gi",
                          labels={"topology.kubernetes.io/zone": f"z{i % 3}"}) for i in range(nodes)]
        sim = SimulatedNodes(client, specs)
        t0 = time.perf_counter()
        await sim.register()
        register_s = time.perf_counter() - t0
        sched = SchedulerController(client)
        stop = asyncio.Event()
        task = asyncio.create_task(sched.run(stop))
        await asyncio.gather(*(i.synced.wait() for i in sched.informers))
        sem = asyncio.Semaphore(64)

        async def create(i: int) -> None:
            async with sem:
                await client.create(PODS, pod(i))

        t1 = time.perf_counter()
        await asyncio.gather(*(create(i) for i in range(pods)))
        created_s = time.perf_counter() - t1
        deadline = time.perf_counter() + 1800
        while time.perf_counter() < deadline:
            bound = sum(1 for p in sched.pods.lister.list("bench") if (p.get("spec") or {}).get("nodeName"))
            if bound >= pods:
                break
            await asyncio.sleep(0.2)
        total_s = time.perf_counter() - t1
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
    return {"nodes": nodes, "pods": pods, "bound": bound, "register_nodes_s": register_s,
            "create_pods_s": created_s, "schedule_total_s": total_s, "pods_per_s": bound / total_s}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="atoll-sched-") as tmp, Server(Path(tmp) / "api") as server:
        return await through_api(server, args.nodes, args.pods)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="500 nodes, 1,000 pods")
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=10000)
    args = parser.parse_args()
    if args.quick:
        args.nodes, args.pods = 500, 1000
    fw_rate = framework_only(args.nodes, min(args.pods, 2000))
    api = asyncio.run(main_async(args))
    results = {"framework_only_pods_per_s": fw_rate, "through_api": api, "kube_floor_pods_per_s": KUBE_FLOOR,
               "ratio_to_kube_floor": api["pods_per_s"] / KUBE_FLOOR}
    print(f"\n{'what':<34} {'value':>10}")
    print(f"{'nodes / pods':<34} {args.nodes:>5} / {args.pods}")
    print(f"{'register nodes (s)':<34} {api['register_nodes_s']:>10.1f}")
    print(f"{'create pods (s)':<34} {api['create_pods_s']:>10.1f}")
    print(f"{'all pods bound (s)':<34} {api['schedule_total_s']:>10.1f}")
    print(f"{'scheduled pods/s (through API)':<34} {api['pods_per_s']:>10.0f}")
    print(f"{'framework only pods/s':<34} {fw_rate:>10.0f}")
    print(f"{'ratio to kube floor (680/s)':<34} {results['ratio_to_kube_floor']:>10.2f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "scheduler.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
