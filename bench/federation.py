"""Federation benchmark: propagation latency, scheduling latency and failover time.

Starts a real ``atoll federation run`` process and N ``atoll cluster run --runtime
simulated`` member processes, joins them, then:

* **propagation**: creates D Deployments on the federation at a steady rate, each
  selected by one PropagationPolicy (Duplicated to every member), and measures for
  each the time from its create returning to the Deployment existing in *every* member
  (watches on each member's API server). Karmada's published p99 in push mode is
  1,298 ms; the aim here is under 500 ms.
* **scheduling**: per-binding scheduling latency from the federation scheduler's
  histogram (Karmada publishes p99 32 ms).
* **failover**: a Deployment divided over all members; one member process is killed
  (SIGKILL, a cloud outage) and the time until all its replicas are Ready on the
  others is measured, with default settings (aim: under 15 s).

    .venv/bin/python bench/federation.py [--quick] [--members 3,10] [--deployments 1000] [--rate 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from atoll.client import Client, Resource  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DEPLOYMENTS = Resource("apps/v1", "deployments", True, "Deployment")
POLICIES = Resource("policy.karmada.io/v1alpha1", "propagationpolicies", True, "PropagationPolicy")
CLUSTERS = Resource("cluster.karmada.io/v1alpha1", "clusters", False, "Cluster")
NAMESPACES = Resource("v1", "namespaces", False, "Namespace")
KARMADA_PROPAGATION_P99_MS = 1298.0
KARMADA_SCHEDULING_P99_MS = 32.0


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[str]
    kubeconfig: Path
    url: str = ""


def start(args: list[str], state: Path, name: str) -> Proc:
    state.mkdir(parents=True, exist_ok=True)
    log = open(state.parent / f"{name}.log", "a")
    popen = subprocess.Popen([sys.executable, "-m", "atoll.cli.main", *args, "--state-dir", str(state)],
                             stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT, start_new_session=True,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert popen.stdout is not None
    line = popen.stdout.readline()
    if "ready at" not in line:
        popen.kill()
        raise SystemExit(f"{name} did not start: {line!r} (see {state.parent / (name + '.log')})")
    return Proc(name, popen, state / "kubeconfig", line.split("ready at ", 1)[1].split(" ", 1)[0])


def stop(proc: Proc) -> None:
    if proc.popen.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGTERM)
        try:
            proc.popen.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.popen.pid, signal.SIGKILL)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def histogram_quantile(metrics: str, name: str, q: float) -> float:
    """A quantile of a Prometheus histogram from its cumulative buckets (upper bound of the bucket)."""
    buckets: list[tuple[float, float]] = []
    for line in metrics.splitlines():
        if line.startswith(f"{name}_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            count = float(line.rsplit(" ", 1)[1])
            buckets.append((float("inf") if le == "+Inf" else float(le), count))
    merged: dict[float, float] = {}
    for le, count in buckets:  # sum over label sets
        merged[le] = merged.get(le, 0.0) + count
    ordered = sorted(merged.items())
    if not ordered or ordered[-1][1] == 0:
        return float("nan")
    target = q * ordered[-1][1]
    return next(le for le, count in ordered if count >= target)


def deployment(i: int, replicas: int = 1, labels: dict[str, str] | None = None) -> dict[str, Any]:
    app = {"app": f"d{i}"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"d{i}", "namespace": "bench", "labels": {"bench": "fed", **(labels or {})}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": app},
                     "template": {"metadata": {"labels": app},
                                  "spec": {"containers": [{"name": "c", "image": "atoll/echo"}]}}}}


@dataclass
class Arrivals:
    """When each Deployment name first appeared in each member."""
    seen: dict[str, dict[str, float]] = field(default_factory=dict)

    async def watch(self, member: str, client: Client, stop: asyncio.Event) -> None:
        async for event, obj in client.list_and_watch(DEPLOYMENTS, "bench", stop=stop):
            now = time.perf_counter()
            items = obj["items"] if event == "SYNC" else [obj] if event == "ADDED" else []
            for item in items:
                self.seen.setdefault(item["metadata"]["name"], {}).setdefault(member, now)


async def propagation(fed: Client, members: dict[str, Client], count: int, rate: float) -> dict[str, Any]:
    await fed.create(NAMESPACES, {"metadata": {"name": "bench"}})
    await fed.create(POLICIES, {"apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
                                "metadata": {"name": "bench", "namespace": "bench"},
                                "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                                                "labelSelector": {"matchLabels": {"bench": "fed"}}}],
                                         "placement": {"clusterAffinity": {"clusterNames": sorted(members)},
                                                       "replicaScheduling": {"replicaSchedulingType": "Duplicated"}}}})
    arrivals = Arrivals()
    stop = asyncio.Event()
    watchers = [asyncio.create_task(arrivals.watch(m, c, stop)) for m, c in members.items()]
    written: dict[str, float] = {}
    await asyncio.sleep(1.0)  # watches established
    t0 = time.perf_counter()

    async def create(i: int) -> None:
        await fed.create(DEPLOYMENTS, deployment(i))
        written[f"d{i}"] = time.perf_counter()

    tasks = []
    for i in range(count):
        target = t0 + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(create(i)))
    await asyncio.gather(*tasks)
    deadline = time.perf_counter() + 300
    while time.perf_counter() < deadline:
        if sum(1 for n in written if len(arrivals.seen.get(n, {})) == len(members)) == count:
            break
        await asyncio.sleep(0.2)
    stop.set()
    for w in watchers:
        w.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await w
    latencies = [(max(arrivals.seen[n].values()) - t) * 1000 for n, t in written.items()
                 if len(arrivals.seen.get(n, {})) == len(members)]
    return {"deployments": count, "rate_per_s": rate, "complete": len(latencies),
            "p50_ms": percentile(latencies, 50), "p90_ms": percentile(latencies, 90),
            "p99_ms": percentile(latencies, 99), "max_ms": max(latencies, default=float("nan"))}


async def failover(fed: Client, members: dict[str, Client], procs: dict[str, Proc]) -> dict[str, Any]:
    names = sorted(members)
    replicas = 2 * len(names)
    await fed.create(POLICIES, {"apiVersion": "policy.karmada.io/v1alpha1", "kind": "PropagationPolicy",
                                "metadata": {"name": "failover", "namespace": "bench"},
                                "spec": {"resourceSelectors": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                                                "name": "failover"}],
                                         "placement": {"clusterAffinity": {"clusterNames": names},
                                                       "replicaScheduling": {
                                                           "replicaSchedulingType": "Divided",
                                                           "replicaDivisionPreference": "Weighted",
                                                           "weightPreference": {"staticWeightList": [
                                                               {"targetCluster": {"clusterNames": [n]}, "weight": 1}
                                                               for n in names]}}}}})
    obj = deployment(0, replicas)
    obj["metadata"]["name"] = "failover"
    obj["metadata"]["labels"] = {"bench": "failover"}
    await fed.create(DEPLOYMENTS, obj)

    async def ready_in(member: str) -> int:
        try:
            d = await members[member].get(DEPLOYMENTS, "failover", "bench")
        except Exception:
            return 0
        return int((d.get("status") or {}).get("readyReplicas") or 0)

    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline:
        if sum([await ready_in(m) for m in names]) == replicas:
            break
        await asyncio.sleep(0.2)
    victim = names[-1]
    survivors = names[:-1]
    t0 = time.perf_counter()
    os.killpg(procs[victim].popen.pid, signal.SIGKILL)
    not_ready_s = float("nan")
    deadline = t0 + 180
    while time.perf_counter() < deadline:
        if not_ready_s != not_ready_s:  # nan: not yet seen NotReady
            cluster = await fed.get(CLUSTERS, victim)
            ready = next((c for c in (cluster.get("status") or {}).get("conditions") or []
                          if c.get("type") == "Ready"), {})
            if ready.get("status") != "True":
                not_ready_s = time.perf_counter() - t0
        if sum([await ready_in(m) for m in survivors]) == replicas:
            return {"replicas": replicas, "victim": victim, "cluster_not_ready_s": not_ready_s,
                    "all_ready_elsewhere_s": time.perf_counter() - t0}
        await asyncio.sleep(0.2)
    return {"replicas": replicas, "victim": victim, "cluster_not_ready_s": not_ready_s,
            "all_ready_elsewhere_s": float("nan")}


async def run_case(members_n: int, count: int, rate: float, workdir: Path) -> dict[str, Any]:
    procs: dict[str, Proc] = {}
    fed_proc = start(["federation", "run"], workdir / "federation", "federation")
    try:
        names = [f"m{i}" for i in range(members_n)]
        for i, name in enumerate(names):
            procs[name] = start(["cluster", "run", "--name", name, "--nodes", "1", "--runtime", "simulated",
                                 "--pod-cidr", f"127.{16 + i}.0.0/16", "--service-cidr", f"127.{80 + i}.0.0/16"],
                                workdir / name, name)
        for name in names:
            await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "atoll.cli.main", "join", name,
                                                     "--kubeconfig", str(procs[name].kubeconfig),
                                                     "--federation-kubeconfig", str(fed_proc.kubeconfig)],
                                    check=True, capture_output=True, cwd=ROOT, timeout=60)
        async with Client.from_kubeconfig(fed_proc.kubeconfig) as fed:
            members = {n: Client.from_kubeconfig(p.kubeconfig) for n, p in procs.items()}
            try:
                deadline = time.perf_counter() + 60
                while time.perf_counter() < deadline:
                    clusters = (await fed.list(CLUSTERS)).get("items") or []
                    if sum(1 for c in clusters for cond in (c.get("status") or {}).get("conditions") or []
                           if cond.get("type") == "Ready" and cond.get("status") == "True") == members_n:
                        break
                    await asyncio.sleep(0.2)
                prop = await propagation(fed, members, count, rate)
                metrics = (await fed.request("GET", "/metrics", raw=True)).decode()
                sched = {"p50_ms": histogram_quantile(metrics, "karmada_scheduler_e2e_scheduling_duration_seconds",
                                                      0.5) * 1000,
                         "p99_ms": histogram_quantile(metrics, "karmada_scheduler_e2e_scheduling_duration_seconds",
                                                      0.99) * 1000}
                fail = await failover(fed, members, procs)
            finally:
                for c in members.values():
                    await c.close()
        return {"members": members_n, "propagation": prop, "scheduling": sched, "failover": fail}
    finally:
        for p in procs.values():
            stop(p)
        stop(fed_proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 members, 100 Deployments")
    parser.add_argument("--members", default="3,10", help="comma-separated member counts")
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0, help="Deployments created per second")
    args = parser.parse_args()
    if args.quick:
        args.members, args.deployments = "3", 100
    cases = []
    for n in [int(x) for x in args.members.split(",")]:
        with tempfile.TemporaryDirectory(prefix="atoll-fedbench-") as tmp:
            cases.append(asyncio.run(run_case(n, args.deployments, args.rate, Path(tmp))))
    print(f"\n{'members':>7} {'deploys':>7} {'prop p50':>9} {'p90':>8} {'p99':>8} {'vs Karmada':>10} "
          f"{'sched p50':>9} {'p99':>7} {'NotReady':>8} {'failover':>8}")
    for c in cases:
        p, s, f = c["propagation"], c["scheduling"], c["failover"]
        print(f"{c['members']:>7} {p['complete']:>7} {p['p50_ms']:>8.0f}ms {p['p90_ms']:>6.0f}ms "
              f"{p['p99_ms']:>6.0f}ms {KARMADA_PROPAGATION_P99_MS / p['p99_ms']:>9.1f}x "
              f"{s['p50_ms']:>7.1f}ms {s['p99_ms']:>5.1f}ms {f['cluster_not_ready_s']:>7.1f}s "
              f"{f['all_ready_elsewhere_s']:>7.1f}s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / ("federation-quick.json" if args.quick else "federation.json")
    out.write_text(json.dumps({"cases": cases, "karmada_propagation_p99_ms": KARMADA_PROPAGATION_P99_MS,
                               "karmada_scheduling_p99_ms": KARMADA_SCHEDULING_P99_MS}, indent=2))
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
