"""API server benchmark: creates/s and latency on SQLite and etcd, watch delivery, raw etcd.

Runs real ``atoll apiserver`` processes (HTTPS, token auth) and drives them over real
HTTP from this process. Prints a table and writes ``bench/results/apiserver.json``.

    .venv/bin/python bench/apiserver.py [--quick] [--backends sqlite,etcd]

Measured:
* closed loop: N concurrent clients creating ConfigMaps as fast as they can
  (N = 1, 16, 64) → creates/s, p50/p99 latency;
* writes to existing objects, 16 clients each on its own object (the scheduler's and
  the controllers' hot paths): merge PATCH of a ConfigMap, PUT of a ConfigMap with its
  resourceVersion (conditional), merge PATCH of ``pods/status``, and ``pods/binding``
  → writes/s, p50/p99 latency;
* open loop: creates at a fixed 1,000/s (the issue's goal: p99 < 50 ms on SQLite);
* watch: 100 watchers on one namespace, p50/p99 from the create being sent to each
  watcher receiving the event;
* raw etcd: puts/s of the same client library (aetcd) straight to etcd with 64
  concurrent writers, the physical limit the API server on etcd is compared with.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "bench" / "results"


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process (Linux ``/proc``; NaN elsewhere)."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))
    return s[k]


class Server:
    def __init__(self, state: Path, storage: str = "") -> None:
        self.state = state
        self.storage = storage
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def __enter__(self) -> Server:
        self.state.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "atoll.cli.main", "apiserver", "--listen", "127.0.0.1:0",
                "--state-dir", str(self.state)]
        if self.storage:
            args += ["--storage", self.storage]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "ready at" not in line:
            raise RuntimeError(f"apiserver failed to start: {line!r}")
        self.url = line.split("ready at ", 1)[1].split(" ", 1)[0]
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def session(self, limit: int = 200) -> aiohttp.ClientSession:
        cfg = yaml.safe_load((self.state / "kubeconfig").read_text())
        cluster = cfg["clusters"][0]["cluster"]
        user = cfg["users"][0]["user"]
        ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        headers = {"Content-Type": "application/json"}
        if user.get("token"):
            headers["Authorization"] = f"Bearer {user['token']}"
        else:
            cert = self.state / "bench-client.crt"
            key = self.state / "bench-client.key"
            cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
            key.write_bytes(base64.b64decode(user["client-key-data"]))
            ctx.load_cert_chain(str(cert), str(key))
        return aiohttp.ClientSession(base_url=self.url, headers=headers,
                                     connector=aiohttp.TCPConnector(ssl=ctx, limit=limit))


async def ensure_namespace(http: aiohttp.ClientSession, name: str) -> None:
    async with http.post("/api/v1/namespaces", json={"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": name}}) as r:
        if r.status not in (201, 409):
            raise RuntimeError(f"namespace create failed: {r.status} {await r.text()}")


def configmap(name: str, sent: float | None = None) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name}
    if sent is not None:
        md["annotations"] = {"bench/sent": repr(sent)}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": md, "data": {"k": "v" * 64}}


async def closed_loop(http: aiohttp.ClientSession, ns: str, clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds
    counter = 0

    async def worker(wid: int) -> None:
        nonlocal counter, errors
        while time.perf_counter() < stop_at:
            counter += 1
            name = f"c{clients}-{wid}-{counter}"
            t0 = time.perf_counter()
            async with http.post(f"/api/v1/namespaces/{ns}/configmaps", json=configmap(name)) as r:
                await r.read()
                if r.status != 201:
                    errors += 1
                    continue
            latencies.append(time.perf_counter() - t0)

    t_start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    elapsed = time.perf_counter() - t_start
    return {"clients": clients, "creates": len(latencies), "errors": errors,
            "creates_per_s": len(latencies) / elapsed, "p50_ms": pct(latencies, 50) * 1000,
            "p99_ms": pct(latencies, 99) * 1000}


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "main", "image": "registry.local/bench:1",
                                     "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}


WRITE_SCENARIOS = ("patch", "put", "status", "binding")


async def write_loop(http: aiohttp.ClientSession, ns: str, scenario: str, clients: int,
                     seconds: float, server_pid: int | None = None) -> dict[str, Any]:
    """``clients`` workers, each writing its own object as fast as it can for ``seconds``.

    ``binding`` binds a fresh pending pod per request (pods are created beforehand, in
    batches, outside the timed part), so each worker needs a pool of pods.
    """
    latencies: list[float] = []
    errors = 0
    merge = {"Content-Type": "application/merge-patch+json"}
    cms = f"/api/v1/namespaces/{ns}/configmaps"
    pods = f"/api/v1/namespaces/{ns}/pods"
    state: dict[int, dict[str, Any]] = {}
    pool: dict[int, list[str]] = {}
    per_worker = 1200 if seconds > 5 else 500

    async def setup(wid: int) -> None:
        name = f"{scenario}-{wid}"
        if scenario in ("patch", "put"):
            async with http.post(cms, json=configmap(name)) as r:
                state[wid] = await r.json()
        elif scenario == "status":
            async with http.post(pods, json=pod(name)) as r:
                state[wid] = await r.json()
        else:
            names = []
            for i in range(per_worker):
                async with http.post(pods, json=pod(f"{name}-{i}")) as r:
                    await r.read()
                    if r.status == 201:
                        names.append(f"{name}-{i}")
            pool[wid] = names

    await asyncio.gather(*(setup(i) for i in range(clients)))
    # The writers of these objects are controllers, which watch what they write (their
    # informers): one watcher per scenario, draining events, keeps that cost in the numbers.
    watched = cms if scenario in ("patch", "put") else pods
    seen = 0

    async def informer() -> None:
        nonlocal seen
        async with http.get(watched, params={"watch": "true", "resourceVersion": "0",
                                             "timeoutSeconds": str(int(seconds) + 60)}) as r:
            async for _line in r.content:
                seen += 1

    watch_task = asyncio.create_task(informer())
    await asyncio.sleep(0.3)
    stop_at = time.perf_counter() + seconds

    async def worker(wid: int) -> None:
        nonlocal errors
        name = f"{scenario}-{wid}"
        i = 0
        while time.perf_counter() < stop_at:
            i += 1
            t0 = time.perf_counter()
            if scenario == "patch":
                req = http.patch(f"{cms}/{name}", data=json.dumps({"data": {"k": f"v{i}"}}), headers=merge)
            elif scenario == "put":
                obj = state[wid]
                obj["data"] = {"k": f"v{i}"}
                req = http.put(f"{cms}/{name}", json=obj)
            elif scenario == "status":
                req = http.patch(f"{pods}/{name}/status", headers=merge, data=json.dumps(
                    {"status": {"phase": "Pending", "message": f"m{i}"}}))
            else:
                if not pool[wid]:
                    return
                target = pool[wid].pop()
                req = http.post(f"{pods}/{target}/binding", json={
                    "apiVersion": "v1", "kind": "Binding", "metadata": {"name": target},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": f"node-{wid}"}})
            async with req as r:
                body = await r.read()
                if r.status not in (200, 201):
                    errors += 1
                    continue
                if scenario == "put":
                    state[wid] = json.loads(body)
            latencies.append(time.perf_counter() - t0)

    t_start = time.perf_counter()
    cpu_start = process_cpu_seconds(server_pid)
    try:
        await asyncio.gather(*(worker(i) for i in range(clients)))
    finally:
        elapsed = time.perf_counter() - t_start
        cpu = process_cpu_seconds(server_pid) - cpu_start
        watch_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
            await watch_task
    return {"scenario": scenario, "clients": clients, "writes": len(latencies), "errors": errors,
            "writes_per_s": len(latencies) / elapsed, "p50_ms": pct(latencies, 50) * 1000,
            "p99_ms": pct(latencies, 99) * 1000,
            # What each write costs the API server process (watch delivery to one watcher included):
            # steadier than writes/s on a machine shared with other work.
            "server_cpu_ms_per_write": cpu * 1000 / max(1, len(latencies))}


async def open_loop(http: aiohttp.ClientSession, ns: str, rate: float, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    start = time.perf_counter()

    async def one(i: int) -> None:
        nonlocal errors
        t0 = time.perf_counter()
        async with http.post(f"/api/v1/namespaces/{ns}/configmaps", json=configmap(f"o{i}")) as r:
            await r.read()
            if r.status != 201:
                errors += 1
                return
        latencies.append(time.perf_counter() - t0)

    tasks = []
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    return {"target_per_s": rate, "achieved_per_s": len(latencies) / elapsed, "errors": errors,
            "p50_ms": pct(latencies, 50) * 1000, "p99_ms": pct(latencies, 99) * 1000}


async def watch_latency(server: Server, ns: str, watchers: int, events: int) -> dict[str, Any]:
    delays: list[float] = []
    got = [0] * watchers
    http = server.session(limit=watchers + 20)
    async with http:
        await ensure_namespace(http, ns)
        ready = asyncio.Event()
        opened = 0

        async def watcher(i: int) -> None:
            nonlocal opened
            async with http.get(f"/api/v1/namespaces/{ns}/configmaps",
                                params={"watch": "true", "timeoutSeconds": "120"}) as r:
                opened += 1
                if opened == watchers:
                    ready.set()
                async for line in r.content:
                    now = time.time()
                    ev = json.loads(line)
                    sent = ev["object"]["metadata"].get("annotations", {}).get("bench/sent")
                    if sent is not None and ev["type"] == "ADDED":
                        delays.append(now - float(sent))
                        got[i] += 1
                        if got[i] >= events:
                            return

        tasks = [asyncio.create_task(watcher(i)) for i in range(watchers)]
        await asyncio.wait_for(ready.wait(), 60)
        await asyncio.sleep(0.5)
        for j in range(events):
            async with http.post(f"/api/v1/namespaces/{ns}/configmaps",
                                 json=configmap(f"w{j}", time.time())) as r:
                await r.read()
            await asyncio.sleep(0.02)
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
    return {"watchers": watchers, "events": events, "deliveries": len(delays),
            "p50_ms": pct(delays, 50) * 1000, "p99_ms": pct(delays, 99) * 1000}


async def raw_etcd_puts(endpoint: str, clients: int, seconds: float) -> dict[str, Any]:
    import aetcd

    host, port = endpoint.removeprefix("etcd://").split(",")[0].split(":")
    count = 0
    latencies: list[float] = []
    async with aetcd.Client(host=host, port=int(port)) as etcd:
        stop_at = time.perf_counter() + seconds

        async def worker(wid: int) -> None:
            nonlocal count
            i = 0
            while time.perf_counter() < stop_at:
                i += 1
                t0 = time.perf_counter()
                await etcd.put(f"/bench/raw/{wid}/{i}".encode(), b"v" * 300)
                latencies.append(time.perf_counter() - t0)
                count += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        elapsed = time.perf_counter() - t0
    return {"clients": clients, "puts_per_s": count / elapsed, "p50_ms": pct(latencies, 50) * 1000,
            "p99_ms": pct(latencies, 99) * 1000}


async def bench_backend(name: str, server: Server, *, seconds: float, watchers: int, watch_events: int,
                        rate: float, scenarios: tuple[str, ...] = WRITE_SCENARIOS,
                        writes_only: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": name, "closed_loop": [], "writes": [], "open_loop": None, "watch": None}
    async with server.session() as http:
        await ensure_namespace(http, "bench")
        for clients in () if writes_only else (1, 16, 64):
            ns = f"bench-{clients}"
            await ensure_namespace(http, ns)
            res = await closed_loop(http, ns, clients, seconds)
            out["closed_loop"].append(res)
            print(f"  {name}: {clients:>3} clients  {res['creates_per_s']:8.0f} creates/s  "
                  f"p50 {res['p50_ms']:6.1f} ms  p99 {res['p99_ms']:6.1f} ms", flush=True)
        for scenario in scenarios:
            ns = f"bench-{scenario}"
            await ensure_namespace(http, ns)
            res = await write_loop(http, ns, scenario, 16, seconds,
                                   server.proc.pid if server.proc is not None else None)
            out["writes"].append(res)
            print(f"  {name}: {scenario:<8} 16 clients {res['writes_per_s']:8.0f} writes/s  "
                  f"p50 {res['p50_ms']:6.1f} ms  p99 {res['p99_ms']:6.1f} ms  "
                  f"server CPU {res['server_cpu_ms_per_write']:.2f} ms/write  errors {res['errors']}", flush=True)
        if writes_only:
            return out
        await ensure_namespace(http, "bench-open")
        out["open_loop"] = await open_loop(http, "bench-open", rate, seconds)
        o = out["open_loop"]
        print(f"  {name}: open loop {rate:.0f}/s → {o['achieved_per_s']:.0f}/s  p50 {o['p50_ms']:.1f} ms  "
              f"p99 {o['p99_ms']:.1f} ms", flush=True)
    out["watch"] = await watch_latency(server, "bench-watch", watchers, watch_events)
    w = out["watch"]
    print(f"  {name}: watch {watchers} watchers  p50 {w['p50_ms']:.1f} ms  p99 {w['p99_ms']:.1f} ms", flush=True)
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    seconds = 3.0 if args.quick else 10.0
    watchers = 100
    watch_events = 20 if args.quick else 100
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "seconds_per_run": seconds, "backends": []}
    with tempfile.TemporaryDirectory(prefix="atoll-bench-") as tmp:
        base = Path(tmp)
        if "sqlite" in args.backends:
            with Server(base / "sqlite") as server:
                results["backends"].append(await bench_backend("sqlite", server, seconds=seconds, watchers=watchers,
                                                               watch_events=watch_events, rate=args.rate,
                                                               writes_only=args.writes_only))
        if "etcd" in args.backends:
            from atoll.storage.etcd_server import EtcdServer

            async with EtcdServer(base / "etcd-data") as endpoint:
                raw = await raw_etcd_puts(endpoint, 64, seconds)
                results["raw_etcd"] = raw
                print(f"  raw etcd (aetcd, 64 writers): {raw['puts_per_s']:.0f} puts/s", flush=True)
                with Server(base / "etcd", storage=endpoint) as server:
                    results["backends"].append(await bench_backend("etcd", server, seconds=seconds,
                                                                   watchers=watchers, watch_events=watch_events,
                                                                   rate=args.rate,
                                                                   writes_only=args.writes_only))
    return results


def print_table(results: dict[str, Any]) -> None:
    print()
    print(f"{'backend':<8} {'clients':>7} {'creates/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for b in results["backends"]:
        for row in b["closed_loop"]:
            print(f"{b['backend']:<8} {row['clients']:>7} {row['creates_per_s']:>10.0f} {row['p50_ms']:>8.1f} "
                  f"{row['p99_ms']:>8.1f}")
    print()
    print(f"{'backend':<8} {'write':<8} {'clients':>7} {'writes/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'server CPU ms/write':>20}")
    for b in results["backends"]:
        for row in b.get("writes", []):
            print(f"{b['backend']:<8} {row['scenario']:<8} {row['clients']:>7} {row['writes_per_s']:>10.0f} "
                  f"{row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} {row['server_cpu_ms_per_write']:>20.2f}")
    if any(b["open_loop"] is None for b in results["backends"]):
        return
    print()
    print(f"{'backend':<8} {'open loop target/s':>18} {'achieved/s':>10} {'p50 ms':>8} {'p99 ms':>8}   goal")
    for b in results["backends"]:
        o = b["open_loop"]
        goal = "p99 < 50 ms" + (" ✓" if o["p99_ms"] < 50 and o["achieved_per_s"] >= 0.95 * o["target_per_s"]
                                 else " ✗")
        print(f"{b['backend']:<8} {o['target_per_s']:>18.0f} {o['achieved_per_s']:>10.0f} {o['p50_ms']:>8.1f} "
              f"{o['p99_ms']:>8.1f}   {goal if b['backend'] == 'sqlite' else ''}")
    print()
    print(f"{'backend':<8} {'watchers':>8} {'deliveries':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for b in results["backends"]:
        w = b["watch"]
        print(f"{b['backend']:<8} {w['watchers']:>8} {w['deliveries']:>10} {w['p50_ms']:>8.1f} {w['p99_ms']:>8.1f}")
    raw = results.get("raw_etcd")
    if raw:
        etcd = next((b for b in results["backends"] if b["backend"] == "etcd"), None)
        best = max((r["creates_per_s"] for r in etcd["closed_loop"]), default=0.0) if etcd else 0.0
        ratio = best / raw["puts_per_s"] if raw["puts_per_s"] else 0.0
        results["etcd_ratio"] = ratio
        print()
        print(f"raw etcd puts/s (64 writers): {raw['puts_per_s']:.0f}; API server on etcd best creates/s: "
              f"{best:.0f}; ratio {ratio:.2f} (goal ≥ 0.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs (3 s each)")
    parser.add_argument("--backends", default="sqlite,etcd")
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop creates/s")
    parser.add_argument("--writes-only", action="store_true",
                        help="only the update/patch/status/binding scenarios (for quick A/B runs)")
    args = parser.parse_args()
    args.backends = args.backends.split(",")
    results = asyncio.run(main_async(args))
    print_table(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "apiserver.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
