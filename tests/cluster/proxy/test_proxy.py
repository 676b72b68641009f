"""The service proxy over a real API server, relaying to real TCP echo servers on pod-like IPs.

The test writes the EndpointSlices itself (no EndpointSlice controller). Services ask for
cluster IPs in 127.80.200.0/24 and the proxy's node address is 127.0.200.1, away from
what other clusters on this machine use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from atoll.client import Client, Resource
from atoll.cluster.proxy import ServiceProxy
from tests.conftest import RunningServer
from tests.waiting import eventually

SERVICES = Resource("v1", "services", kind="Service")
SLICES = Resource("discovery.k8s.io/v1", "endpointslices", kind="EndpointSlice")
NSS = Resource("v1", "namespaces", namespaced=False)
NODE = "127.0.200.1"
NS = "proxy-test"


def _privileged_ports() -> bool:
    try:
        start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        start = 1024
    return os.geteuid() == 0 or start <= 80


PORT = 80 if _privileged_ports() else 18080
"""Service port: kube's usual 80 where this user may bind it."""


class Backend:
    """A pod-like echo server: says its name on connect, then echoes every line."""

    def __init__(self, name: str, ip: str) -> None:
        self.name, self.ip = name, ip
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int = 0) -> int:
        self.server = await asyncio.start_server(self._serve, self.ip, port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(f"{self.name}\n".encode())
            await writer.drain()
            while line := await reader.readline():
                writer.write(f"{self.name}:{line.decode()}".encode())
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
async def backends() -> AsyncIterator[list[Backend]]:
    group = [Backend(n, f"127.16.200.{i + 1}") for i, n in enumerate(("a", "b", "c"))]
    port = await group[0].start()
    for b in group[1:]:
        await b.start(port)   # same target port on every "pod", as a Deployment has
    yield group
    for b in group:
        await b.stop()


@pytest.fixture
async def setup(apiserver: RunningServer) -> AsyncIterator[tuple[Client, ServiceProxy]]:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        with contextlib.suppress(Exception):
            await client.create(NSS, {"metadata": {"name": NS}})
        proxy = ServiceProxy(client, node_address=NODE, connect_timeout=1.0)
        stop = asyncio.Event()
        task = asyncio.create_task(proxy.run(stop))
        await asyncio.wait_for(proxy.synced.wait(), 20)
        try:
            yield client, proxy
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)


def service(name: str, ip: str, *, port: int = PORT, target: int = 8080, **spec: Any) -> dict[str, Any]:
    ports = [{"name": "http", "port": port, "targetPort": target, "protocol": "TCP", **spec.pop("port_extra", {})}]
    return {"metadata": {"name": name}, "spec": {"clusterIP": ip, "ports": ports, "selector": {"app": name},
                                                  **spec}}


def endpoint_slice(service_name: str, backends: list[Backend], *, suffix: str = "x",
                   conditions: dict[str, bool] | None = None) -> dict[str, Any]:
    port = backends[0].port if backends else 8080
    return {"metadata": {"name": f"{service_name}-{suffix}", "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [b.ip], "conditions": dict(conditions or {"ready": True})} for b in backends],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}]}


async def hello(ip: str, port: int, *, source: str | None = None,
                ) -> tuple[str, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        ip, port, local_addr=(source, 0) if source else None), 5)
    name = (await asyncio.wait_for(reader.readline(), 5)).decode().strip()
    return name, reader, writer


async def ask(ip: str, port: int, *, source: str | None = None) -> str:
    try:
        name, _reader, writer = await hello(ip, port, source=source)
    except (ConnectionError, OSError):
        return ""
    writer.close()
    return name


async def refused(ip: str, port: int) -> bool:
    try:
        _r, w = await asyncio.wait_for(asyncio.open_connection(ip, port), 5)
    except ConnectionRefusedError:
        return True
    w.close()
    return False


async def test_round_robin_and_metrics(setup: tuple[Client, ServiceProxy], backends: list[Backend]) -> None:
    client, proxy = setup
    await client.create(SERVICES, service("rr", "127.80.200.1"), NS)
    await client.create(SLICES, endpoint_slice("rr", backends), NS)
    await eventually(lambda: ask("127.80.200.1", PORT))
    names = [await ask("127.80.200.1", PORT) for _ in range(9)]
    start = names.index("a")
    assert names[start:start + 3] == ["a", "b", "c"]
    assert sorted(names) == sorted(["a", "b", "c"] * 3)
    forwarded = proxy.metrics.registry.get_sample_value(
        "atoll_proxy_connections_total", {"service": f"{NS}/rr", "port": "http", "result": "forwarded"})
    assert forwarded is not None and forwarded >= 9
    assert proxy.metrics.registry.get_sample_value("atoll_proxy_endpoints",
                                                   {"service": f"{NS}/rr", "port": "http"}) == 3
    assert (proxy.metrics.registry.get_sample_value("atoll_proxy_syncs_total") or 0) >= 1


async def test_client_ip_affinity(setup: tuple[Client, ServiceProxy], backends: list[Backend]) -> None:
    client, _proxy = setup
    await client.create(SERVICES, service("sticky", "127.80.200.2", sessionAffinity="ClientIP"), NS)
    await client.create(SLICES, endpoint_slice("sticky", backends), NS)
    await eventually(lambda: ask("127.80.200.2", PORT, source="127.0.201.1"))
    seen: dict[str, set[str]] = {}
    for source in ("127.0.201.1", "127.0.201.2", "127.0.201.3"):
        seen[source] = {await ask("127.80.200.2", PORT, source=source) for _ in range(4)}
    assert all(len(names) == 1 for names in seen.values()), seen
    assert len(set().union(*seen.values())) > 1, seen   # different clients are spread


async def test_long_lived_connection_survives_endpoint_change(setup: tuple[Client, ServiceProxy],
                                                              backends: list[Backend]) -> None:
    client, _proxy = setup
    a, b, _c = backends
    await client.create(SERVICES, service("live", "127.80.200.3"), NS)
    await client.create(SLICES, endpoint_slice("live", [a]), NS)
    await eventually(lambda: ask("127.80.200.3", PORT))
    name, reader, writer = await hello("127.80.200.3", PORT)
    assert name == "a"
    body = endpoint_slice("live", [b])
    await client.patch(SLICES, "live-x", {"endpoints": body["endpoints"]}, NS)

    async def moved() -> bool:
        return await ask("127.80.200.3", PORT) == "b"

    await eventually(moved)
    writer.write(b"still there?\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.readline(), 5) == b"a:still there?\n"
    writer.close()


async def test_node_port(setup: tuple[Client, ServiceProxy], backends: list[Backend]) -> None:
    client, _proxy = setup
    await client.create(SERVICES, service("np", "127.80.200.4", type="NodePort",
                                          port_extra={"nodePort": 32701}), NS)
    await client.create(SLICES, endpoint_slice("np", backends[:1]), NS)
    assert await eventually(lambda: ask(NODE, 32701)) == "a"
    assert await ask("127.80.200.4", PORT) == "a"


async def test_no_endpoints_refused_and_fallbacks(setup: tuple[Client, ServiceProxy],
                                                  backends: list[Backend]) -> None:
    client, proxy = setup
    a, b, _c = backends
    await client.create(SERVICES, service("empty", "127.80.200.5"), NS)
    await client.create(SERVICES, service("probe", "127.80.200.6"), NS)
    await client.create(SLICES, endpoint_slice("probe", [a]), NS)
    await eventually(lambda: ask("127.80.200.6", PORT))   # the proxy has seen both services by now
    assert await refused("127.80.200.5", PORT)
    # Not ready: still refused. Terminating but serving, with nothing ready: used.
    await client.create(SLICES, endpoint_slice("empty", [b], conditions={"ready": False}), NS)
    await client.create(SLICES, endpoint_slice("probe", [a], suffix="y"), NS)   # a later change to wait for
    await asyncio.sleep(0.3)
    assert await refused("127.80.200.5", PORT)
    await client.patch(SLICES, "empty-x", {"endpoints": [
        {"addresses": [b.ip], "conditions": {"ready": False, "serving": True, "terminating": True}}]}, NS)
    assert await eventually(lambda: ask("127.80.200.5", PORT)) == "b"
    # A backend that refuses is skipped: the next endpoint takes the connection.
    dead = Backend("dead", "127.16.200.9")
    dead.port = a.port
    await client.create(SERVICES, service("retry", "127.80.200.8"), NS)
    await client.create(SLICES, endpoint_slice("retry", [dead, a]), NS)
    await eventually(lambda: ask("127.80.200.8", PORT))
    assert [await ask("127.80.200.8", PORT) for _ in range(4)] == ["a"] * 4
    failures = proxy.metrics.registry.get_sample_value("atoll_proxy_backend_connect_failures_total",
                                                       {"service": f"{NS}/retry", "port": "http"})
    assert failures is not None and failures >= 2


async def test_deleting_the_service_stops_listening(setup: tuple[Client, ServiceProxy],
                                                    backends: list[Backend]) -> None:
    client, proxy = setup
    await client.create(SERVICES, service("gone", "127.80.200.7"), NS)
    await client.create(SLICES, endpoint_slice("gone", backends[:2]), NS)
    await eventually(lambda: ask("127.80.200.7", PORT))
    _name, reader, writer = await hello("127.80.200.7", PORT)
    await client.delete(SERVICES, "gone", NS)
    await eventually(lambda: refused("127.80.200.7", PORT))
    assert ("127.80.200.7", PORT) not in proxy.listeners
    writer.write(b"bye\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readline(), 5)).endswith(b":bye\n")   # established ones finish
    writer.close()


async def test_kubernetes_service_reaches_the_api_server(setup: tuple[Client, ServiceProxy]) -> None:
    """Pods reach the API server through ``kubernetes.default`` (127.80.0.1:443 → the server's port)."""
    _client, proxy = setup
    if not _privileged_ports():
        pytest.skip("port 443 needs privileges here")

    async def listening() -> bool:
        return ("127.80.0.1", 443) in proxy.listeners

    try:
        await eventually(listening, timeout=5)
    except AssertionError:
        pytest.skip("127.80.0.1:443 is taken by another cluster on this machine")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.80.0.1", 443, ssl=ctx), 5)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: kubernetes.default.svc\r\nConnection: close\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")
