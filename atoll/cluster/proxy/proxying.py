"""The service proxy: a userspace kube-proxy for Atoll's loopback networking.

Every Service gets a cluster IP from a loopback range (``127.80.0.0/16`` by default), so a
Linux host accepts connections to it without any configuration. The proxy watches
Services and EndpointSlices and, for each TCP Service port with usable endpoints, listens
on ``clusterIP:port`` — and on ``node_address:nodePort`` for NodePort and LoadBalancer
Services — and relays each accepted connection to one backend ``podIP:targetPort``.

What a client can observe is kube-proxy's behaviour:

- A Service port without usable endpoints is not listened on, so connecting is refused
  at once, as kube-proxy's ``REJECT``/``reject`` rule answers with a TCP reset.
- Endpoint changes apply to new connections only; relayed connections are left alone,
  also when their backend leaves the set.
- A Service deleted, or a port removed, stops the listener; connections already relayed
  finish on their own.
- Round robin over ready endpoints (terminating-but-serving ones only when nothing is
  ready), ``sessionAffinity: ClientIP`` with ``timeoutSeconds``, and a refused backend
  connect moves on to the next endpoint, as the userspace proxier did.

Out of scope: UDP and SCTP ports, ``externalIPs``, load balancer ingress IPs, and the
``Local`` traffic policies (one proxy serves the whole simulated cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from atoll.client import Client, Resource
from atoll.cluster.proxy.backends import (
    DEFAULT_AFFINITY_TIMEOUT,
    Balancer,
    endpoints_for_port,
    usable_endpoints,
)
from atoll.machinery.informing import Informer, key_of

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

SERVICES = Resource("v1", "services", kind="Service")
ENDPOINT_SLICES = Resource("discovery.k8s.io/v1", "endpointslices", kind="EndpointSlice")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")
SYNC_PERIOD = 30.0
"""kube-proxy's ``--sync-period``: a full resync also retries listeners that failed to bind."""
CONNECT_TIMEOUT = 3.0
BUFFER = 64 * 1024

Address = tuple[str, int]
ServiceKey = tuple[str, str]
"""(namespace, name) of a Service."""


class ProxyMetrics:
    """The proxy's Prometheus metrics, in a registry of its own (``proxy.metrics.registry``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections = Counter("atoll_proxy_connections_total",
                                   "Connections accepted, by Service port and result (forwarded, no_endpoints, "
                                   "backend_unavailable)", ["service", "port", "result"], registry=self.registry)
        self.active = Gauge("atoll_proxy_active_connections", "Connections being relayed now",
                            ["service", "port"], registry=self.registry)
        self.connect_failures = Counter("atoll_proxy_backend_connect_failures_total",
                                        "Backend connects that failed (refused, unreachable, timed out)",
                                        ["service", "port"], registry=self.registry)
        self.endpoints = Gauge("atoll_proxy_endpoints", "Usable endpoints per Service port",
                               ["service", "port"], registry=self.registry)
        self.listeners = Gauge("atoll_proxy_listeners", "Addresses the proxy listens on", registry=self.registry)
        self.bind_errors = Counter("atoll_proxy_bind_errors_total", "Listeners that failed to bind",
                                   registry=self.registry)
        self.syncs = Counter("atoll_proxy_syncs_total", "Proxy rule syncs", registry=self.registry)
        self.sync_duration = Histogram("atoll_proxy_sync_duration_seconds", "Time to apply one sync",
                                       registry=self.registry,
                                       buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
        self.last_sync = Gauge("atoll_proxy_last_sync_timestamp_seconds", "When the last sync finished",
                               registry=self.registry)


@dataclass(frozen=True, slots=True)
class ServicePortName:
    """kube-proxy's ``ServicePortName``: ``namespace/name:port``."""

    namespace: str
    name: str
    port: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port}"

    @property
    def service(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class _Listener:
    target: ServicePortName
    server: asyncio.Server | None = None

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def _slice_service(eps: Obj) -> ServiceKey | None:
    md = eps.get("metadata") or {}
    service = (md.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return (str(md.get("namespace")), str(service)) if service else None


def _valid_ipv4(ip: object) -> bool:
    if not isinstance(ip, str) or not ip or ip == "None":
        return False
    try:
        ipaddress.IPv4Address(ip)
    except ValueError:
        return False
    return True


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), the way a rejected connection ends."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Relay one direction until EOF, then half-close the other side (TCP semantics kept)."""
    while True:
        data = await src.read(BUFFER)
        if not data:
            break
        dst.write(data)
        await dst.drain()
    if dst.can_write_eof() and not dst.is_closing():
        with contextlib.suppress(OSError, RuntimeError):
            dst.write_eof()


class ServiceProxy:
    """Listens on Service addresses and relays connections to their endpoints.

    ``ServiceProxy(client, node_address="127.0.0.1")`` then ``await proxy.run(stop)``;
    ``proxy.synced`` is set once the first sync after both informers listed is applied,
    ``proxy.metrics.registry`` holds the metrics.
    """

    NAME = "service-proxy"

    def __init__(self, client: Client, *, node_address: str = "127.0.0.1", sync_period: float = SYNC_PERIOD,
                 connect_timeout: float = CONNECT_TIMEOUT, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.node_address = node_address
        self.sync_period = sync_period
        self.connect_timeout = connect_timeout
        self._clock = clock
        self.metrics = ProxyMetrics()
        self.services = Informer(client, SERVICES)
        self.slices = Informer(client, ENDPOINT_SLICES)
        self.balancers: dict[ServicePortName, Balancer] = {}
        self.listeners: dict[Address, _Listener] = {}
        self._wanted: dict[Address, ServicePortName] = {}
        self._service_state: dict[ServiceKey, tuple[set[ServicePortName], dict[Address, ServicePortName]]] = {}
        self._slice_index: dict[ServiceKey, dict[str, Obj]] = {}
        self._dirty_services: set[ServiceKey] = set()
        self._failed_binds: set[Address] = set()
        self._connections: set[asyncio.Task[Any]] = set()
        self._dirty = asyncio.Event()
        self.synced = asyncio.Event()
        self.services.add_handler(self._service_changed)
        self.slices.add_handler(self._slice_changed)

    # Handlers only note which Services changed; the sync loop does the work, so a burst
    # of endpoint updates costs one sync of the Services it touched.
    def _service_changed(self, _event: str, old: Obj | None, new: Obj | None) -> None:
        for obj in (old, new):
            if obj is not None:
                md = obj.get("metadata") or {}
                self._dirty_services.add((str(md.get("namespace")), str(md.get("name"))))
        self._dirty.set()

    def _slice_changed(self, _event: str, old: Obj | None, new: Obj | None) -> None:
        if old is not None:
            service = _slice_service(old)
            if service is not None:
                self._slice_index.get(service, {}).pop(key_of(old), None)
                self._dirty_services.add(service)
        if new is not None:
            service = _slice_service(new)
            if service is not None:
                self._slice_index.setdefault(service, {})[key_of(new)] = new
                self._dirty_services.add(service)
        self._dirty.set()

    # -- lifecycle -------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.services.run(stop), name="proxy-services")
                tg.create_task(self.slices.run(stop), name="proxy-endpointslices")
                tg.create_task(self._sync_loop(stop), name="proxy-sync")
        finally:
            await self._shutdown()

    async def _sync_loop(self, stop: asyncio.Event) -> None:
        stopping = asyncio.create_task(stop.wait())
        try:
            while not (self.services.synced.is_set() and self.slices.synced.is_set()):
                waiters = [asyncio.create_task(self.services.synced.wait()),
                           asyncio.create_task(self.slices.synced.wait())]
                await asyncio.wait([*waiters, stopping], return_when=asyncio.FIRST_COMPLETED, timeout=1.0)
                for w in waiters:
                    w.cancel()
                if stop.is_set():
                    return
            full = True
            while not stop.is_set():
                self._dirty.clear()
                try:
                    await self.sync(full=full)
                except Exception:
                    logger.exception("service proxy sync failed")
                    full = True
                self.synced.set()
                dirty = asyncio.create_task(self._dirty.wait())
                await asyncio.wait([dirty, stopping], return_when=asyncio.FIRST_COMPLETED,
                                   timeout=self.sync_period)
                full = not dirty.done()   # the period passed without changes: resync everything
                dirty.cancel()
        finally:
            stopping.cancel()

    async def _shutdown(self) -> None:
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()
        self.metrics.listeners.set(0)
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- sync ------------------------------------------------------------------------------
    def service_desired(self, key: ServiceKey) -> tuple[dict[ServicePortName, Balancer],
                                                         dict[Address, ServicePortName]]:
        """One Service from the caches: its TCP ports' balancers and the addresses to listen on."""
        balancers: dict[ServicePortName, Balancer] = {}
        listen: dict[Address, ServicePortName] = {}
        ns, name = key
        svc = self.services.lister.get(f"{ns}/{name}")
        if svc is None:
            return balancers, listen
        spec = svc.get("spec") or {}
        svc_type = spec.get("type") or "ClusterIP"
        if svc_type == "ExternalName":
            return balancers, listen
        cluster_ip = spec.get("clusterIP")
        affinity = spec.get("sessionAffinity") == "ClientIP"
        timeout = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get(
            "timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT
        slices = list(self._slice_index.get(key, {}).values())
        for port in spec.get("ports") or []:
            if not isinstance(port, dict) or (port.get("protocol") or "TCP") != "TCP":
                continue
            target = port.get("targetPort")
            spn = ServicePortName(ns, name, str(port.get("name") or ""))
            endpoints = usable_endpoints(endpoints_for_port(
                slices, spn.port, "TCP", default_port=target if isinstance(target, int) else None))
            balancer = self.balancers.get(spn) or Balancer()
            balancer.update(endpoints, affinity=affinity, affinity_timeout=float(timeout))
            balancers[spn] = balancer
            if not endpoints:
                continue   # not listening: connections are refused, as kube-proxy rejects them
            if _valid_ipv4(cluster_ip) and isinstance(port.get("port"), int):
                listen[(str(cluster_ip), int(port["port"]))] = spn
            if svc_type in NODE_PORT_TYPES and isinstance(port.get("nodePort"), int) and port["nodePort"]:
                listen[(self.node_address, int(port["nodePort"]))] = spn
        return balancers, listen

    async def sync(self, *, full: bool = False) -> None:
        """Apply what changed (or, with ``full``, everything): balancers first, then listeners.

        A full sync also retries addresses that failed to bind.
        """
        started = time.perf_counter()
        if full:
            keys = {(str((s.get("metadata") or {}).get("namespace")), str((s.get("metadata") or {}).get("name")))
                    for s in self.services.lister.list()} | set(self._service_state) | self._dirty_services
            self._dirty_services.clear()
        else:
            keys, self._dirty_services = self._dirty_services, set()
        for key in keys:
            old_ports, old_listen = self._service_state.pop(key, (set(), {}))
            balancers, listen = self.service_desired(key)
            for spn in old_ports - balancers.keys():
                self.balancers.pop(spn, None)
                with contextlib.suppress(KeyError):
                    self.metrics.endpoints.remove(spn.service, spn.port)
            for spn, balancer in balancers.items():
                self.balancers[spn] = balancer
                self.metrics.endpoints.labels(spn.service, spn.port).set(len(balancer.endpoints))
            for address, spn in old_listen.items():
                if self._wanted.get(address) == spn:
                    del self._wanted[address]
            self._wanted.update(listen)
            if balancers:
                self._service_state[key] = (set(balancers), listen)
        for address in [a for a in self.listeners if a not in self._wanted]:
            listener = self.listeners.pop(address)
            listener.close()  # stops accepting; relayed connections carry on
            logger.info("proxy stopped listening on %s:%d for %s", address[0], address[1], listener.target)
        self._failed_binds = {a for a in self._failed_binds if a in self._wanted}
        for address, spn in self._wanted.items():
            current = self.listeners.get(address)
            if current is not None:
                current.target = spn
            elif full or address not in self._failed_binds:
                await self._listen(address, spn)
        self.metrics.listeners.set(len(self.listeners))
        self.metrics.syncs.inc()
        self.metrics.sync_duration.observe(time.perf_counter() - started)
        self.metrics.last_sync.set(time.time())

    async def _listen(self, address: Address, spn: ServicePortName) -> None:
        listener = _Listener(spn)

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._relay(listener.target, reader, writer)

        try:
            listener.server = await asyncio.start_server(accept, address[0], address[1], reuse_address=True,
                                                         backlog=1024)
        except OSError as exc:
            self.metrics.bind_errors.inc()
            if address not in self._failed_binds:
                logger.error("proxy cannot listen on %s:%d for %s: %s", address[0], address[1], spn, exc)
            self._failed_binds.add(address)
            return
        self._failed_binds.discard(address)
        self.listeners[address] = listener
        logger.info("proxy listening on %s:%d for %s", address[0], address[1], spn)

    # -- relaying --------------------------------------------------------------------------
    async def _relay(self, spn: ServicePortName, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._relay_one(spn, reader, writer)
        except asyncio.CancelledError:
            # The proxy stops: end the connection here (the task is the stream server's,
            # which cannot take a cancelled task in Python 3.11).
            writer.transport.abort()
        except Exception:
            logger.exception("proxy connection for %s failed", spn)
            writer.transport.abort()
        finally:
            self._connections.discard(task)

    async def _relay_one(self, spn: ServicePortName, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client_ip = str(peer[0]) if peer else ""
        balancer = self.balancers.get(spn)
        backend: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        attempts = len(balancer.endpoints) if balancer is not None else 0
        for attempt in range(attempts):
            assert balancer is not None
            endpoint = balancer.pick(client_ip, self._clock(), reset_affinity=attempt > 0)
            if endpoint is None:
                break
            try:
                backend = await asyncio.wait_for(asyncio.open_connection(endpoint.ip, endpoint.port),
                                                 self.connect_timeout)
                break
            except (OSError, TimeoutError) as exc:
                self.metrics.connect_failures.labels(spn.service, spn.port).inc()
                logger.debug("proxy %s: backend %s failed: %s", spn, endpoint.address, exc)
        if backend is None:
            result = "no_endpoints" if attempts == 0 else "backend_unavailable"
            self.metrics.connections.labels(spn.service, spn.port, result).inc()
            _reset(writer)
            return
        self.metrics.connections.labels(spn.service, spn.port, "forwarded").inc()
        active = self.metrics.active.labels(spn.service, spn.port)
        active.inc()
        b_reader, b_writer = backend
        pumps = [asyncio.create_task(_copy(reader, b_writer)), asyncio.create_task(_copy(b_reader, writer))]
        failed = False
        try:
            done, _pending = await asyncio.wait(pumps, return_when=asyncio.FIRST_EXCEPTION)
            failed = any(not t.cancelled() and t.exception() is not None for t in done)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            active.dec()
            for w in (writer, b_writer):
                if failed:
                    w.transport.abort()
                else:
                    w.close()


__all__ = ["ENDPOINT_SLICES", "SERVICES", "ProxyMetrics", "ServicePortName", "ServiceProxy"]
