"""Scheduler benchmark: pods scheduled per second on many simulated nodes, through the API.

Shaped like kube-scheduler's scheduler_perf ``SchedulingBasic`` (5,000 nodes, 10,000
pods; its CI floor is 680 pods/s), with the scheduler alone in its own process:

1. a real ``atoll apiserver`` process (SQLite, HTTPS, token auth) starts;
2. this process registers N simulated nodes (Node objects with status, as a kubelet
   would) and creates P pending pods with 64 concurrent clients, then lets go of its
   connections;
3. a fresh ``SchedulerController`` process starts: its informers list the nodes and
   pods, then it schedules and binds every pod (``pods/binding``, plus the ``Scheduled``
   Event kube records). It is measured from its start to the last successful binding,
   and its own counters say where the time went (list, framework, binding);
4. this process checks through the API that every pod is bound, and how evenly.

The framework alone (no API, the same plugins over in-memory NodeInfos) is measured
too, as the ceiling the controller and the API server are compared with. ``--profile``
runs the scheduler process under cProfile and writes the hottest functions.

    .venv/bin/python bench/scheduler.py [--quick] [--nodes 5000] [--pods 10000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from atoll.client import Client, Resource  # noqa: E402
from atoll.cluster.kubelet.simulated import NodeSpec, SimulatedNodes  # noqa: E402
from atoll.cluster.scheduler.controller import PODS, SchedulerController  # noqa: E402
from atoll.cluster.scheduler.framework import NodeInfo  # noqa: E402
from atoll.cluster.scheduler.plugins import default_framework  # noqa: E402
from bench.apiserver import Server, pct  # noqa: E402

KUBE_FLOOR = 680.0
"""scheduler_perf SchedulingBasic 5000Nodes_10000Pods: the pods/s its CI fails under."""
RESULTS = ROOT / "bench" / "results"
NAMESPACE = "bench"
CREATORS = 64
SCHEDULER_TIMEOUT = 1800.0


def pod(i: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{i}", "namespace": NAMESPACE,
                                                            "labels": {"app": f"a{i % 10}"}},
            "spec": {"containers": [{"name": "c", "image": "echo",
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}


def node_spec(i: int) -> NodeSpec:
    return NodeSpec(f"node-{i:05d}", cpu="32", memory="256Gi", labels={"topology.kubernetes.io/zone": f"z{i % 3}"})


def framework_only(nodes: int, pods: int) -> float:
    """Pods/s of the framework over in-memory nodes: the ceiling without informers and HTTP."""
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (Linux /proc), to see which process is the bottleneck."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the scheduler process ----------------------------------------------------------------------
async def run_scheduler(kubeconfig: Path, pods: int) -> dict[str, Any]:
    """Start a scheduler, wait for every pod to be bound, and report its own timings."""
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    async with Client.from_kubeconfig(kubeconfig) as client:
        sched = SchedulerController(client)
        stop = asyncio.Event()
        task = asyncio.create_task(sched.run(stop), name="bench-scheduler")
        try:
            async with asyncio.timeout(SCHEDULER_TIMEOUT):
                await asyncio.gather(*(i.synced.wait() for i in sched.informers))
                t_synced = time.perf_counter()
                cpu_synced = time.process_time()
                while sched.metrics.bound < pods:
                    if task.done():
                        raise RuntimeError("the scheduler stopped before binding every pod")
                    await asyncio.sleep(0.02)
                t_last = sched.metrics.last_bound_at
                cpu_bound = time.process_time()
            # The watch confirms what the bindings did (kube's informer-side view).
            seen = 0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(60):
                    while True:
                        seen = sum(1 for p in sched.pods.lister.list(NAMESPACE) if (p.get("spec") or {}).get("nodeName"))
                        if seen >= pods:
                            break
                        await asyncio.sleep(0.05)
            t_seen = time.perf_counter()
            # The Scheduled events trail the bindings; how long they take to catch up.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sched.event_sink.drained(), 300)
            t_events = time.perf_counter()
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 60)
    m = sched.metrics
    binding = list(m.binding_seconds)
    return {"pods": pods, "bound": m.bound, "seen_bound_by_watch": seen,
            "events_recorded": sched.event_sink.recorded, "events_dropped": sched.event_sink.dropped,
            "attempts": m.attempts, "scheduled": m.scheduled, "unschedulable": m.unschedulable,
            "bind_errors": m.bind_errors, "max_bindings_in_flight": m.max_in_flight,
            "sync_s": t_synced - t0, "schedule_s": t_last - t_synced, "total_s": t_last - t0,
            "watch_confirmed_s": t_seen - t0, "events_caught_up_s": t_events - t0, "algorithm_s": m.algorithm_seconds,
            "binding_p50_ms": pct(binding, 50) * 1000, "binding_p99_ms": pct(binding, 99) * 1000,
            "cpu_sync_s": cpu_synced - cpu0, "cpu_schedule_s": cpu_bound - cpu_synced}


def scheduler_process(args: argparse.Namespace) -> None:
    imports_s = time.time() - args.spawned_at
    profile = cProfile.Profile() if args.profile else None
    if profile is not None:
        profile.enable()
    result = asyncio.run(run_scheduler(Path(args.kubeconfig), args.pods))
    if profile is not None:
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(40)
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "scheduler-profile.txt").write_text(out.getvalue())
    result["imports_s"] = imports_s
    print(json.dumps(result), flush=True)


# -- the driver -----------------------------------------------------------------------------------
async def set_up(server: Server, nodes: int, pods: int) -> dict[str, float]:
    """Register nodes and create pending pods before any scheduler runs (scheduler_perf's init ops)."""
    async with Client.from_kubeconfig(server.state / "kubeconfig") as client:
        await client.create(Resource("v1", "namespaces", namespaced=False), {"metadata": {"name": NAMESPACE}})
        t0 = time.perf_counter()
        await SimulatedNodes(client, [node_spec(i) for i in range(nodes)]).register()
        register_s = time.perf_counter() - t0
        sem = asyncio.Semaphore(CREATORS)

        async def create(i: int) -> None:
            async with sem:
                await client.create(PODS, pod(i))

        t1 = time.perf_counter()
        await asyncio.gather(*(create(i) for i in range(pods)))
        create_s = time.perf_counter() - t1
    return {"register_nodes_s": register_s, "create_pods_s": create_s}


async def check(server: Server) -> dict[str, Any]:
    """Every pod bound, and how many landed on each node (through a fresh list)."""
    async with Client.from_kubeconfig(server.state / "kubeconfig") as client:
        items, _ = await client.list_all(PODS, NAMESPACE, page=1000)
    per_node = Counter((p.get("spec") or {}).get("nodeName") for p in items)
    unbound = per_node.pop(None, 0)
    return {"listed": len(items), "unbound": unbound, "nodes_used": len(per_node),
            "max_pods_on_a_node": max(per_node.values(), default=0), "min_pods_on_a_used_node":
            min(per_node.values(), default=0)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"nodes": args.nodes, "pods": args.pods, "cpus": os.cpu_count(),
                               "kube_floor_pods_per_s": KUBE_FLOOR}
    results["framework_only_pods_per_s"] = framework_only(args.nodes, min(args.pods, 2000))
    with tempfile.TemporaryDirectory(prefix="atoll-sched-") as tmp:
        t0 = time.perf_counter()
        with Server(Path(tmp) / "api") as server:
            results["apiserver_start_s"] = time.perf_counter() - t0
            assert server.proc is not None
            results.update(asyncio.run(set_up(server, args.nodes, args.pods)))
            command = [sys.executable, str(Path(__file__).resolve()), "--scheduler-process",
                       "--kubeconfig", str(server.state / "kubeconfig"), "--pods", str(args.pods),
                       "--spawned-at", repr(time.time())]
            if args.profile:
                command.append("--profile")
            api_cpu0 = cpu_seconds(server.proc.pid)
            done = subprocess.run(command, capture_output=True, text=True, timeout=SCHEDULER_TIMEOUT + 120, cwd=ROOT,
                                  check=False)
            api_cpu = cpu_seconds(server.proc.pid) - api_cpu0
            if done.returncode != 0:
                raise RuntimeError(f"scheduler process failed ({done.returncode}):\n{done.stderr[-4000:]}")
            sched: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
            sched["apiserver_cpu_s"] = api_cpu
            results["scheduler"] = sched
            results["check"] = asyncio.run(check(server))
    bound = results["check"]["listed"] - results["check"]["unbound"]
    results["pods_per_s"] = bound / sched["total_s"] if sched["total_s"] > 0 else 0.0
    results["pods_per_s_after_sync"] = bound / sched["schedule_s"] if sched["schedule_s"] > 0 else 0.0
    results["ratio_to_kube_floor"] = results["pods_per_s"] / KUBE_FLOOR
    results["ratio_after_sync_to_kube_floor"] = results["pods_per_s_after_sync"] / KUBE_FLOOR
    return results


def print_table(r: dict[str, Any]) -> None:
    s, c = r["scheduler"], r["check"]
    rows: list[tuple[str, str]] = [
        ("nodes / pods", f"{r['nodes']} / {r['pods']}"),
        ("setup: apiserver start (s)", f"{r['apiserver_start_s']:.1f}"),
        ("setup: register nodes (s)", f"{r['register_nodes_s']:.1f}"),
        (f"setup: create pods, {CREATORS} clients (s)", f"{r['create_pods_s']:.1f}"),
        ("scheduler: process start, imports (s)", f"{s['imports_s']:.1f}"),
        ("scheduler: informers list+sync (s)", f"{s['sync_s']:.1f}"),
        ("scheduler: synced -> last binding (s)", f"{s['schedule_s']:.1f}"),
        ("scheduler: start -> last binding (s)", f"{s['total_s']:.1f}"),
        ("  in the framework (s)", f"{s['algorithm_s']:.1f}"),
        ("  scheduler CPU while scheduling (s)", f"{s['cpu_schedule_s']:.1f}"),
        ("  apiserver CPU during the scheduler run (s)", f"{s['apiserver_cpu_s']:.1f}"),
        ("  binding p50 / p99 (ms)", f"{s['binding_p50_ms']:.0f} / {s['binding_p99_ms']:.0f}"),
        ("  bindings in flight (max)", f"{s['max_bindings_in_flight']}"),
        ("scheduler: start -> last Scheduled event (s)", f"{s['events_caught_up_s']:.1f}"),
        ("Scheduled events written / dropped", f"{s['events_recorded']} / {s['events_dropped']}"),
        ("attempts / unschedulable / bind errors", f"{s['attempts']} / {s['unschedulable']} / {s['bind_errors']}"),
        ("bound (listed) / nodes used / max per node", f"{c['listed'] - c['unbound']} / {c['nodes_used']} / "
                                                        f"{c['max_pods_on_a_node']}"),
        ("pods/s, start -> last binding", f"{r['pods_per_s']:.0f}"),
        ("pods/s, synced -> last binding", f"{r['pods_per_s_after_sync']:.0f}"),
        ("framework only pods/s (no API)", f"{r['framework_only_pods_per_s']:.0f}"),
        (f"ratio to kube floor ({KUBE_FLOOR:.0f}/s), from start", f"{r['ratio_to_kube_floor']:.2f}"),
        ("ratio to kube floor, after sync", f"{r['ratio_after_sync_to_kube_floor']:.2f}"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"\n{'what':<{width}}  {'value':>14}")
    for k, v in rows:
        print(f"{k:<{width}}  {v:>14}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="500 nodes, 1,000 pods")
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=10000)
    parser.add_argument("--profile", action="store_true",
                        help="profile the scheduler process (bench/results/scheduler-profile.txt)")
    parser.add_argument("--scheduler-process", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    parser.add_argument("--spawned-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scheduler_process:
        scheduler_process(args)
        return
    if args.quick:
        args.nodes, args.pods = 500, 1000
    results = run(args)
    print_table(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("scheduler-quick.json" if args.quick else "scheduler.json")
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
