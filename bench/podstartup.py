"""Pod startup latency on process-runtime kubelets: from creation to Ready, through the API.

A real ``atoll apiserver`` process (SQLite), N kubelets with the process runtime and the
scheduler in this process, and P pods with the ``atoll/echo`` image (each a real Python
HTTP server process on its own loopback IP), twice: *paced* (one create in flight, as
kube's latency pods are created) and *burst* (``--concurrency`` creates in flight: all
pods at once, where the CPU cost of starting P interpreters shows). Latency is measured per pod from just
before its create request to the moment a watch shows it Ready — kube's pod startup SLI
(which excludes image pulls; there are none here) measured from the client's side, so
it includes the API round trips, scheduling, the kubelet's sync and status write, and
the watch delivery. Kubernetes' SLO: p99 <= 5 s.

    .venv/bin/python bench/podstartup.py [--quick] [--nodes 4] [--pods 100] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from atoll.client import Client, Resource  # noqa: E402
from atoll.cluster.kubelet.kubelet import PODS, Kubelet  # noqa: E402
from atoll.cluster.kubelet.process import ProcessRuntime  # noqa: E402
from atoll.cluster.kubelet.simulated import NodeSpec  # noqa: E402
from atoll.cluster.scheduler.controller import SchedulerController  # noqa: E402
from bench.apiserver import Server  # noqa: E402

SLO_P99_S = 5.0
RESULTS = ROOT / "bench" / "results"


def pod(i: int, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"echo-{i}", "namespace": namespace, "labels": {"app": "echo"}},
            "spec": {"terminationGracePeriodSeconds": 5,
                     "containers": [{"name": "echo", "image": "atoll/echo:1.0",
                                     "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}}}]}}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def is_ready(obj: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


async def phase(client: Client, namespace: str, pods: int, concurrency: int) -> dict[str, Any]:
    """Create ``pods`` pods with ``concurrency`` create requests in flight; time each to Ready; delete them."""
    await client.create(Resource("v1", "namespaces", namespaced=False), {"metadata": {"name": namespace}})
    created: dict[str, float] = {}
    ready: dict[str, float] = {}
    bound: dict[str, float] = {}
    running: dict[str, float] = {}
    all_ready = asyncio.Event()
    watch_stop = asyncio.Event()

    async def watch() -> None:
        async for event, obj in client.list_and_watch(PODS, namespace, stop=watch_stop):
            if event == "SYNC":
                continue
            name = obj["metadata"]["name"]
            if name not in bound and (obj.get("spec") or {}).get("nodeName"):
                bound[name] = time.perf_counter()
            if name not in running and (obj.get("status") or {}).get("podIP"):
                running[name] = time.perf_counter()
            if name not in ready and is_ready(obj):
                ready[name] = time.perf_counter()
                if len(ready) >= pods:
                    all_ready.set()

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.5)
    sem = asyncio.Semaphore(concurrency)

    async def create(i: int) -> None:
        async with sem:
            created[f"echo-{i}"] = time.perf_counter()
            await client.create(PODS, pod(i, namespace))

    t0 = time.perf_counter()
    await asyncio.gather(*(create(i) for i in range(pods)))
    create_s = time.perf_counter() - t0
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_ready.wait(), 300)
    total_s = max(ready.values(), default=t0) - t0
    latencies = [ready[n] - created[n] for n in ready]
    to_bound = [bound[n] - created[n] for n in bound]
    to_status = [running[n] - bound[n] for n in running if n in bound]
    to_ready = [ready[n] - running[n] for n in ready if n in running]

    t1 = time.perf_counter()
    await client.delete_collection(PODS, namespace, grace_period_seconds=5)
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        if not (await client.list(PODS, namespace))["items"]:
            break
        await asyncio.sleep(0.2)
    delete_s = time.perf_counter() - t1
    watch_stop.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(watcher, 30)
    return {"pods": pods, "ready": len(ready), "concurrency": concurrency,
            "create_s": create_s, "all_ready_s": total_s, "delete_all_s": delete_s,
            "p50_s": percentile(latencies, 50), "p90_s": percentile(latencies, 90),
            "p99_s": percentile(latencies, 99), "max_s": max(latencies, default=float("nan")),
            "mean_s": statistics.fmean(latencies) if latencies else float("nan"),
            "phases_p50_s": {"created_to_bound": percentile(to_bound, 50),
                             "bound_to_first_status": percentile(to_status, 50),
                             "first_status_to_ready": percentile(to_ready, 50)}}


async def run(server: Server, root: Path, nodes: int, pods: int, concurrency: int) -> dict[str, Any]:
    client = Client.from_kubeconfig(server.state / "kubeconfig", pool_size=200)
    async with client:
        stop = asyncio.Event()
        kubelets = [Kubelet(client, NodeSpec(f"node-{i}", cpu="8", memory="32Gi"),
                            runtime=ProcessRuntime(root / f"node-{i}", node=f"node-{i}"),
                            pod_cidr=f"127.40.{i}.0/24", cluster_name="bench") for i in range(nodes)]
        sched = SchedulerController(client)
        tasks = [asyncio.create_task(k.run(stop)) for k in kubelets] + [asyncio.create_task(sched.run(stop))]
        try:
            await asyncio.wait_for(asyncio.gather(*(k.registered.wait() for k in kubelets)), 60)
            await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in sched.informers)), 60)
            paced = await phase(client, "bench-paced", pods, 1)
            burst = await phase(client, "bench-burst", pods, concurrency)
        finally:
            stop.set()
            for t in tasks:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(t, 60)
    return {"nodes": nodes, "pods": pods, "slo_p99_s": SLO_P99_S, "paced": paced, "burst": burst}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="atoll-podstartup-") as tmp, Server(Path(tmp) / "api") as server:
        return await run(server, Path(tmp) / "nodes", args.nodes, args.pods, args.concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 nodes, 30 pods")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10, help="concurrent create requests")
    args = parser.parse_args()
    if args.quick:
        args.nodes, args.pods = 2, 30
    r = asyncio.run(main_async(args))
    paced, burst = r["paced"], r["burst"]
    print(f"\n{r['nodes']} nodes, {r['pods']} atoll/echo pods per phase; latency = create request to Ready "
          "seen through a watch")
    print(f"{'what':<34} {'paced (1 in flight)':>20} {'burst (' + str(burst['concurrency']) + ' in flight)':>20}")

    def row(label: str, key: str, fmt: str = ".3f") -> None:
        print(f"{label:<34} {paced[key]:>20{fmt}} {burst[key]:>20{fmt}}")

    row("pods Ready", "ready", "d")
    row("create all pods (s)", "create_s", ".2f")
    row("all pods Ready (s)", "all_ready_s", ".2f")
    for key in ("p50_s", "p90_s", "p99_s", "max_s"):
        row(f"startup latency {key[:-2]} (s)", key)
    for key in paced["phases_p50_s"]:
        print(f"{'  p50 ' + key.replace('_', ' ') + ' (s)':<34} {paced['phases_p50_s'][key]:>20.3f} "
              f"{burst['phases_p50_s'][key]:>20.3f}")
    row("delete all, graceful (s)", "delete_all_s", ".2f")
    print(f"{'kube SLO: p99 (s) <=':<34} {SLO_P99_S:>20.1f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("podstartup-quick.json" if args.quick else "podstartup.json")
    out.write_text(json.dumps(r, indent=2))
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
