"""Memory of a big simulated cluster: 1,000 nodes and 30,000 pods in one `atoll cluster run` process.

Starts ``atoll cluster run --runtime simulated --nodes N`` as a real process (API server,
scheduler, controllers and the simulated nodes all in it), records its resident memory
idle, then creates ReplicaSets of 300 pods each until P pods exist, waits until every pod
is Ready (the ReplicaSets' readyReplicas), and records the memory again (current and
peak), the time it took and the size of the SQLite store.

    .venv/bin/python bench/cluster_memory.py [--quick] [--nodes 1000] [--pods 30000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from atoll.client import Client, Resource  # noqa: E402

RESULTS = ROOT / "bench" / "results"
REPLICASETS = Resource("apps/v1", "replicasets", True, "ReplicaSet")
NAMESPACES = Resource("v1", "namespaces", False, "Namespace")
PER_SET = 300


def memory_mib(pid: int) -> dict[str, float]:
    """Resident (VmRSS) and peak resident (VmHWM) memory of a process, MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def replicaset(i: int, replicas: int) -> dict[str, Any]:
    labels = {"app": f"load-{i}"}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": f"load-{i}", "namespace": "load"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "atoll/echo",
                                                           "resources": {"requests": {"cpu": "10m",
                                                                                      "memory": "16Mi"}}}]}}}}


async def load(kubeconfig: Path, pods: int, timeout: float) -> dict[str, float]:
    async with Client.from_kubeconfig(kubeconfig) as client:
        await client.create(NAMESPACES, {"metadata": {"name": "load"}})
        sets = [min(PER_SET, pods - i * PER_SET) for i in range((pods + PER_SET - 1) // PER_SET)]
        t0 = time.perf_counter()
        for i, n in enumerate(sets):
            await client.create(REPLICASETS, replicaset(i, n))
        ready = 0
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            items = (await client.list(REPLICASETS, "load")).get("items") or []
            ready = sum(int((rs.get("status") or {}).get("readyReplicas") or 0) for rs in items)
            if ready >= pods:
                break
            await asyncio.sleep(1.0)
        return {"ready_pods": ready, "all_ready_s": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 nodes, 3,000 pods")
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=30000)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    if args.quick:
        args.nodes, args.pods = 100, 3000
    with tempfile.TemporaryDirectory(prefix="atoll-mem-") as tmp:
        state = Path(tmp) / "cluster"
        cmd = [sys.executable, "-m", "atoll.cli.main", "cluster", "run", "--name", "mem", "--runtime", "simulated",
               "--nodes", str(args.nodes), "--state-dir", str(state)]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if "ready at" not in line:
                raise SystemExit(f"cluster did not start: {line!r}")
            start_s = time.perf_counter() - t0
            time.sleep(2.0)
            idle = memory_mib(proc.pid)
            result = asyncio.run(load(state / "kubeconfig", args.pods, args.timeout))
            time.sleep(2.0)
            loaded = memory_mib(proc.pid)
            db = sum(f.stat().st_size for f in state.glob("store.db*"))
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    results = {"nodes": args.nodes, "pods": args.pods, "start_s": start_s, "idle_rss_mib": idle["VmRSS"],
               **result, "loaded_rss_mib": loaded["VmRSS"], "peak_rss_mib": loaded["VmHWM"],
               "kib_per_pod": (loaded["VmRSS"] - idle["VmRSS"]) * 1024 / max(1, args.pods),
               "store_mib": db / 2**20}
    print(f"\n{'what':<32} {'value':>10}")
    print(f"{'nodes / pods':<32} {args.nodes:>5} / {args.pods}")
    print(f"{'cluster ready (s)':<32} {start_s:>10.1f}")
    print(f"{'RSS idle, nodes only (MiB)':<32} {idle['VmRSS']:>10.0f}")
    print(f"{'all pods Ready (s)':<32} {result['all_ready_s']:>10.1f}")
    print(f"{'pods Ready':<32} {result['ready_pods']:>10.0f}")
    print(f"{'RSS loaded (MiB)':<32} {loaded['VmRSS']:>10.0f}")
    print(f"{'RSS peak (MiB)':<32} {loaded['VmHWM']:>10.0f}")
    print(f"{'RSS per pod (KiB)':<32} {results['kib_per_pod']:>10.1f}")
    print(f"{'SQLite store (MiB)':<32} {results['store_mib']:>10.1f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "cluster_memory.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
