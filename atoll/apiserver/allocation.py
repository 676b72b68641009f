"""Service cluster IPs and node ports: the allocators, the admission step, the ``kubernetes`` Service.

kube-apiserver hands out ``spec.clusterIP`` from ``--service-cluster-ip-range`` and
``spec.ports[*].nodePort`` from ``--service-node-port-range`` inside the Service REST
storage (``pkg/registry/core/service/{ipallocator,portallocator}``). Atoll does the same in
an admission step, which runs after defaulting and validation and before the store write:

- **Create**: a Service of type ClusterIP, NodePort or LoadBalancer that is not headless
  gets a free address (or the one it asks for, if inside the range and free); NodePort and
  LoadBalancer ports get node ports (and ``healthCheckNodePort`` for
  ``externalTrafficPolicy: Local`` load balancers). Errors are kube's, word for word.
- **Update**: ExternalName → other types allocates; the reverse releases; node ports are
  allocated for new ports and released for removed ones (and when the type drops them).
  Releases happen only once the write is committed (``after_write``), as kube's
  transactions do, so a failed update never frees what the stored object still holds.
- **Delete**: everything the Service held is released when it is gone from the store.

Where the truth lives (a deliberate deviation from kube's bitmaps in etcd): the stored
Services are the only record. At start-up the allocators are rebuilt from them, so a
restart cannot hand out an address a stored Service holds, and there is no second record
that can drift from the first. Atoll runs one API server per store, so in-memory bitmaps
are authoritative while it runs; allocation itself is synchronous inside one event loop,
so concurrent creates can never pick the same value. What in-memory state cannot see is a
write that fails *after* admission (a create racing another create of the same name, a
conflict retried by the registry): those values are "pending" until a commit confirms
them, and :meth:`ServiceAllocation.repair` — kube's repair loop — frees values no stored
Service holds once they have been untouched for a full repair interval.

Allocation follows kube's static/dynamic split (KEP-3070, KEP-3668): dynamic allocations
come from the upper band of the range first, so that the lower band stays free for
addresses and ports users pick themselves. Within a band the search starts after the
last value handed out (kube picks at random; a rotating cursor keeps the "not reused at
once" property and is deterministic).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ipaddress
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from atoll.api import meta
from atoll.api.errors import AlreadyExists, APIError, Conflict, InternalError, NotFound, invalid
from atoll.api.resources import ResourceInfo
from atoll.apiserver.registry import ObjectRegistry, Operation, RequestContext

logger = logging.getLogger(__name__)

Obj = dict[str, Any]

DEFAULT_SERVICE_CIDR = "127.80.0.0/16"
DEFAULT_NODE_PORT_RANGE = "30000-32767"
REPAIR_INTERVAL = 60.0
KUBERNETES_SERVICE_INTERVAL = 10.0
"""kube-apiserver's bootstrap controller re-checks the ``kubernetes`` Service this often."""

NODE_PORT_TYPES = ("NodePort", "LoadBalancer")
SYSTEM_CONTEXT = RequestContext(user="system:apiserver", field_manager="kube-apiserver")


# -- allocators ---------------------------------------------------------------------------

class AllocationError(Exception):
    """A value cannot be allocated; ``str()`` is kube's message."""


class RangeFull(AllocationError):
    def __init__(self) -> None:
        super().__init__("range is full")


class AlreadyAllocated(AllocationError):
    pass


class NotInRange(AllocationError):
    pass


def band_offset(size: int, *, minimum: int, maximum: int, step: int) -> int:
    """Where the dynamic (upper) band starts: kube's ``calculateRangeOffset``."""
    if size < minimum:
        return 0
    return min(max(minimum, size // step), maximum)


class RangeAllocator:
    """Offsets ``0..size-1``, each free or taken; dynamic allocation prefers the upper band.

    ``reserved`` offsets are never handed out dynamically but may be requested, which is
    how the first service address is kept for the ``kubernetes`` Service.
    """

    def __init__(self, size: int, *, offset: int = 0, reserved: Iterable[int] = ()) -> None:
        if size <= 0:
            raise ValueError("an allocation range needs at least one value")
        self.size = size
        self.offset = min(max(offset, 0), size)
        self.reserved = frozenset(reserved)
        self._used: set[int] = set()
        self._cursor_upper = self.offset
        self._cursor_lower = 0

    def __contains__(self, index: int) -> bool:
        return index in self._used

    @property
    def used(self) -> int:
        return len(self._used)

    @property
    def free(self) -> int:
        return self.size - len(self._used | self.reserved)

    def allocate(self, index: int, *, dry_run: bool = False) -> None:
        if not 0 <= index < self.size:
            raise IndexError(index)
        if index in self._used:
            raise AlreadyAllocated("already allocated")
        if not dry_run:
            self._used.add(index)

    def allocate_next(self, *, dry_run: bool = False) -> int:
        found = self._scan(self.offset, self.size, self._cursor_upper)
        upper = found is not None
        if found is None:
            found = self._scan(0, self.offset, self._cursor_lower)
        if found is None:
            raise RangeFull()
        if not dry_run:
            self._used.add(found)
            if upper:
                self._cursor_upper = found + 1
            else:
                self._cursor_lower = found + 1
        return found

    def _scan(self, start: int, end: int, cursor: int) -> int | None:
        if end <= start:
            return None
        cursor = cursor if start <= cursor < end else start
        for index in itertools.chain(range(cursor, end), range(start, cursor)):
            if index not in self._used and index not in self.reserved:
                return index
        return None

    def allocated(self) -> list[int]:
        return sorted(self._used)

    def release(self, index: int) -> bool:
        if index in self._used:
            self._used.discard(index)
            return True
        return False


class ServiceIPAllocator:
    """IPv4 addresses of one service CIDR, without the network and broadcast addresses.

    The first usable address is reserved for the ``kubernetes`` Service (kube's
    ``GetIndexedIP(cidr, 1)``): only a request for it exactly can take it.
    """

    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.ip_network(cidr, strict=True)
        if not isinstance(self.network, ipaddress.IPv4Network):
            raise ValueError(f"service CIDR {cidr}: only IPv4 is supported")
        if self.network.num_addresses < 4:
            raise ValueError(f"service CIDR {cidr} is too small (at least a /30)")
        self.cidr = str(self.network)
        self._base = int(self.network.network_address) + 1
        size = self.network.num_addresses - 2
        self.bitmap = RangeAllocator(size, offset=band_offset(self.network.num_addresses, minimum=16, maximum=256,
                                                              step=16), reserved=(0,))

    @property
    def first(self) -> str:
        """The ``kubernetes`` Service's address."""
        return str(ipaddress.IPv4Address(self._base))

    def _index(self, ip: str) -> int:
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            raise NotInRange(f"the provided IP ({ip}) is not in the valid range. The range of valid IPs is "
                             f"{self.cidr}") from None
        index = int(addr) - self._base
        if not 0 <= index < self.bitmap.size:
            raise NotInRange(f"the provided IP ({ip}) is not in the valid range. The range of valid IPs is "
                             f"{self.cidr}")
        return index

    def contains(self, ip: str) -> bool:
        try:
            self._index(ip)
        except NotInRange:
            return False
        return True

    def allocate(self, ip: str, *, dry_run: bool = False) -> None:
        try:
            self.bitmap.allocate(self._index(ip), dry_run=dry_run)
        except AlreadyAllocated:
            raise AlreadyAllocated("provided IP is already allocated") from None

    def allocate_next(self, *, dry_run: bool = False) -> str:
        return str(ipaddress.IPv4Address(self._base + self.bitmap.allocate_next(dry_run=dry_run)))

    def release(self, ip: str) -> bool:
        try:
            return self.bitmap.release(self._index(ip))
        except NotInRange:
            return False

    def has(self, ip: str) -> bool:
        try:
            return self._index(ip) in self.bitmap
        except NotInRange:
            return False

    def allocated(self) -> list[str]:
        return [str(ipaddress.IPv4Address(self._base + i)) for i in self.bitmap.allocated()]


def parse_port_range(text: str) -> tuple[int, int]:
    """``30000-32767`` or ``30000+2767`` (kube's ``utilnet.ParsePortRange``) → (first, last)."""
    value = text.strip()
    try:
        if "-" in value:
            first_s, last_s = value.split("-", 1)
            first, last = int(first_s), int(last_s)
        elif "+" in value:
            first_s, extra_s = value.split("+", 1)
            first = int(first_s)
            last = first + int(extra_s)
        else:
            first = last = int(value)
    except ValueError:
        raise ValueError(f"invalid port range {text!r}") from None
    if not 0 < first <= last <= 65535:
        raise ValueError(f"invalid port range {text!r}")
    return first, last


class NodePortAllocator:
    """The node port range; dynamic ports come from its upper band first (KEP-3668)."""

    def __init__(self, port_range: str) -> None:
        self.first, self.last = parse_port_range(port_range)
        self.text = f"{self.first}-{self.last}"
        size = self.last - self.first + 1
        self.bitmap = RangeAllocator(size, offset=band_offset(size, minimum=16, maximum=128, step=32))

    def _index(self, port: int) -> int:
        if not self.first <= port <= self.last:
            raise NotInRange(f"provided port is not in the valid range. The range of valid ports is {self.text}")
        return port - self.first

    def contains(self, port: int) -> bool:
        return self.first <= port <= self.last

    def allocate(self, port: int, *, dry_run: bool = False) -> None:
        try:
            self.bitmap.allocate(self._index(port), dry_run=dry_run)
        except AlreadyAllocated:
            raise AlreadyAllocated("provided port is already allocated") from None

    def allocate_next(self, *, dry_run: bool = False) -> int:
        return self.first + self.bitmap.allocate_next(dry_run=dry_run)

    def release(self, port: int) -> bool:
        return self.contains(port) and self.bitmap.release(port - self.first)

    def has(self, port: int) -> bool:
        return self.contains(port) and (port - self.first) in self.bitmap

    def allocated(self) -> list[int]:
        return [self.first + i for i in self.bitmap.allocated()]


# -- what a Service holds -------------------------------------------------------------------

def _spec(svc: Obj | None) -> Obj:
    spec = (svc or {}).get("spec")
    return spec if isinstance(spec, dict) else {}


def _type(svc: Obj | None) -> str:
    return str(_spec(svc).get("type") or "ClusterIP")


def held_ips(svc: Obj | None) -> set[str]:
    if svc is None or _type(svc) == "ExternalName":
        return set()
    spec = _spec(svc)
    ips = [ip for ip in spec.get("clusterIPs") or [] if isinstance(ip, str)]
    if not ips and isinstance(spec.get("clusterIP"), str):
        ips = [spec["clusterIP"]]
    return {ip for ip in ips if ip and ip != "None"}


def held_ports(svc: Obj | None) -> set[int]:
    """kube's ``collectServiceNodePorts``: every port's nodePort and the health check port."""
    if svc is None:
        return set()
    spec = _spec(svc)
    out = {int(p["nodePort"]) for p in spec.get("ports") or []
           if isinstance(p, dict) and isinstance(p.get("nodePort"), int) and p["nodePort"]}
    hc = spec.get("healthCheckNodePort")
    if isinstance(hc, int) and hc:
        out.add(hc)
    return out


def needs_health_check(svc: Obj | None) -> bool:
    return _type(svc) == "LoadBalancer" and _spec(svc).get("externalTrafficPolicy") == "Local"


def _allocates_node_ports(svc: Obj) -> bool:
    """kube's ``shouldAllocateNodePorts``: LoadBalancers may opt out."""
    svc_type = _type(svc)
    if svc_type == "NodePort":
        return True
    return svc_type == "LoadBalancer" and _spec(svc).get("allocateLoadBalancerNodePorts", True) is not False


# -- the admission step ---------------------------------------------------------------------

@dataclass
class _Allocation:
    """What one admission call took, so that a failure half-way gives it all back."""

    ips: list[str]
    ports: list[int]


class ServiceAllocation:
    """Admission step and after-write hook that own the service IP and node port ranges.

    Wire it into an :class:`ObjectRegistry` with ``objects.admission.append(alloc)`` and
    ``objects.after_write.append(alloc.after_write)``; run :meth:`run` for the repair loop
    and the ``kubernetes`` Service (after :meth:`ensure_kubernetes_service` at start-up).
    """

    def __init__(self, objects: ObjectRegistry, *, service_cidr: str = DEFAULT_SERVICE_CIDR,
                 node_port_range: str = DEFAULT_NODE_PORT_RANGE, repair_interval: float = REPAIR_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.objects = objects
        self.ips = ServiceIPAllocator(service_cidr)
        self.ports = NodePortAllocator(node_port_range)
        self.repair_interval = repair_interval
        self._clock = clock
        self._touched_ips: dict[str, float] = {}
        self._touched_ports: dict[int, float] = {}
        self._loaded = False
        self._load_lock = asyncio.Lock()
        self._kubernetes_endpoint: tuple[str, int] | None = None

    def _services(self) -> ResourceInfo:
        info = self.objects.resources.get("", "v1", "services")
        assert info is not None
        return info

    @staticmethod
    def _is_services(info: ResourceInfo) -> bool:
        return info.group == "" and info.plural == "services"

    # -- loading and repair ----------------------------------------------------------
    async def load(self) -> None:
        """Mark everything the stored Services hold (once; later calls return at once)."""
        if self._loaded:
            return
        async with self._load_lock:
            if self._loaded:
                return
            listed = await self.objects.list(self._services(), None)
            seen: set[str] = set()
            for svc in listed.items:
                self._mark_stored(svc, seen)
            self._loaded = True
            logger.info("service allocation: %d cluster IPs of %s and %d node ports of %s in use",
                        self.ips.bitmap.used, self.ips.cidr, self.ports.bitmap.used, self.ports.text)

    def _mark_stored(self, svc: Obj, seen: set[str]) -> None:
        md = svc.get("metadata") or {}
        name = f"{md.get('namespace')}/{md.get('name')}"
        for ip in held_ips(svc):
            if not self.ips.contains(ip):
                logger.warning("service %s: cluster IP %s is not within the service CIDR %s; recreate the "
                               "service to move it", name, ip, self.ips.cidr)
            elif ip in seen:
                logger.error("service %s: cluster IP %s is held by more than one service", name, ip)
            else:
                self.ips.allocate(ip)
            seen.add(ip)
        for port in held_ports(svc):
            if not self.ports.contains(port):
                logger.warning("service %s: node port %d is not within the range %s", name, port, self.ports.text)
            elif not self.ports.has(port):
                self.ports.allocate(port)

    async def repair(self) -> tuple[int, int]:
        """kube's repair loop: mark what stored Services hold, free what none holds any more.

        A value is freed only if nothing touched it during the last ``repair_interval``:
        an admission in flight (allocated, not committed yet) must not lose it.
        Returns the counts of freed addresses and ports.
        """
        await self.load()
        started = self._clock()
        listed = await self.objects.list(self._services(), None)
        stored_ips: set[str] = set()
        stored_ports: set[int] = set()
        for svc in listed.items:
            stored_ips |= held_ips(svc)
            stored_ports |= held_ports(svc)
            self._mark_stored_quietly(svc)
        horizon = started - self.repair_interval
        freed_ips = [ip for ip in self.ips.allocated() if ip not in stored_ips
                     and self._touched_ips.get(ip, float("-inf")) < horizon]
        freed_ports = [p for p in self.ports.allocated() if p not in stored_ports
                       and self._touched_ports.get(p, float("-inf")) < horizon]
        for ip in freed_ips:
            self.ips.release(ip)
            self._touched_ips.pop(ip, None)
        for port in freed_ports:
            self.ports.release(port)
            self._touched_ports.pop(port, None)
        if freed_ips or freed_ports:
            logger.warning("service allocation repair freed leaked cluster IPs %s and node ports %s",
                           sorted(freed_ips), sorted(freed_ports))
        return len(freed_ips), len(freed_ports)

    def _mark_stored_quietly(self, svc: Obj) -> None:
        for ip in held_ips(svc):
            if self.ips.contains(ip) and not self.ips.has(ip):
                self.ips.allocate(ip)
        for port in held_ports(svc):
            if self.ports.contains(port) and not self.ports.has(port):
                self.ports.allocate(port)

    # -- admission ---------------------------------------------------------------------
    async def admit(self, op: Operation, info: ResourceInfo, obj: Obj | None, old: Obj | None,
                    ctx: RequestContext) -> None:
        if not self._is_services(info) or obj is None or op == "DELETE":
            return
        await self.load()
        if op == "CREATE":
            md = obj.get("metadata") or {}
            if await self.objects.store.get(info.key(md.get("namespace"), str(md.get("name")))) is not None:
                return  # the registry answers AlreadyExists; taking values now would only leak them
            self._allocate_create(obj, dry_run=ctx.dry_run)
        elif old is not None:
            self._allocate_update(obj, old, dry_run=ctx.dry_run)

    def _name(self, svc: Obj) -> str:
        return str((svc.get("metadata") or {}).get("name") or "")

    def _invalid(self, svc: Obj, path: str, value: Any, message: str) -> APIError:
        return invalid("Service", self._name(svc), [meta.invalid_value(path, value, message)])

    def _check_families(self, svc: Obj) -> None:
        spec = _spec(svc)
        if spec.get("clusterIP") == "None":
            return
        causes = []
        if spec.get("ipFamilyPolicy") == "RequireDualStack":
            causes.append(meta.invalid_value("spec.ipFamilyPolicy", "RequireDualStack",
                                             "this cluster is not configured for dual-stack services"))
        for i, family in enumerate(spec.get("ipFamilies") or []):
            if family != "IPv4":
                causes.append(meta.invalid_value(f"spec.ipFamilies[{i}]", family, "not configured on this cluster"))
        if causes:
            raise invalid("Service", self._name(svc), causes)

    def _allocate_ips(self, svc: Obj, taken: _Allocation, *, dry_run: bool) -> None:
        spec = svc.setdefault("spec", {})
        if _type(svc) == "ExternalName" or spec.get("clusterIP") == "None":
            return
        self._check_families(svc)
        ips = [ip for ip in spec.get("clusterIPs") or [] if isinstance(ip, str)]
        requested = spec.get("clusterIP") or (ips[0] if ips else "")
        if requested:
            try:
                self.ips.allocate(str(requested), dry_run=dry_run)
            except AllocationError as exc:
                shown = ips or [str(requested)]
                raise self._invalid(svc, "spec.clusterIPs", shown,
                                    f"failed to allocate IP {requested}: {exc}") from None
            ip = str(requested)
        else:
            try:
                ip = self.ips.allocate_next(dry_run=dry_run)
            except RangeFull as exc:
                raise InternalError(f"Internal error occurred: failed to allocate a serviceIP: {exc}") from None
        if not dry_run:
            taken.ips.append(ip)
            self._touched_ips[ip] = self._clock()
        spec["clusterIP"] = ip
        spec["clusterIPs"] = [ip]
        spec["ipFamilies"] = ["IPv4"]
        spec.setdefault("ipFamilyPolicy", "SingleStack")

    def _take_port(self, svc: Obj, taken: _Allocation, path: str, port: int, *, dry_run: bool) -> None:
        try:
            self.ports.allocate(port, dry_run=dry_run)
        except AllocationError as exc:
            raise self._invalid(svc, path, port, str(exc)) from None
        if not dry_run:
            taken.ports.append(port)
            self._touched_ports[port] = self._clock()

    def _next_port(self, taken: _Allocation, *, dry_run: bool, what: str = "a nodePort") -> int:
        try:
            port = self.ports.allocate_next(dry_run=dry_run)
        except RangeFull as exc:
            raise InternalError(f"Internal error occurred: failed to allocate {what}: {exc}") from None
        if not dry_run:
            taken.ports.append(port)
            self._touched_ports[port] = self._clock()
        return port

    def _allocate_node_ports(self, svc: Obj, old: Obj | None, taken: _Allocation, *, dry_run: bool) -> None:
        """kube's ``initNodePorts``/``updateNodePorts``: ports with the same number share a node port."""
        if _type(svc) not in NODE_PORT_TYPES:
            return
        already = held_ports(old) if old is not None and _type(old) in NODE_PORT_TYPES else set()
        allocate_new = _allocates_node_ports(svc)
        by_port: dict[Any, int] = {}
        claimed: set[int] = set()
        ports = [p for p in _spec(svc).get("ports") or [] if isinstance(p, dict)]
        for i, port in enumerate(ports):
            path = f"spec.ports[{i}].nodePort"
            wanted = port.get("nodePort") or 0
            if not wanted and not allocate_new:
                continue
            shared = by_port.get(port.get("port"))
            if wanted:
                if wanted not in already and wanted not in claimed:
                    self._take_port(svc, taken, path, int(wanted), dry_run=dry_run)
                claimed.add(int(wanted))
                by_port.setdefault(port.get("port"), int(wanted))
            elif shared is not None:
                port["nodePort"] = shared
            elif old is None and (requested := next((int(q["nodePort"]) for q in ports[i + 1:]
                                                     if q.get("port") == port.get("port") and q.get("nodePort")),
                                                    0)):
                # kube's findRequestedNodePort: a later port with the same number asked for one.
                self._take_port(svc, taken, path, requested, dry_run=dry_run)
                port["nodePort"] = requested
                claimed.add(requested)
                by_port[port.get("port")] = requested
            else:
                number = self._next_port(taken, dry_run=dry_run)
                port["nodePort"] = number
                claimed.add(number)
                by_port[port.get("port")] = number

    def _allocate_health_check(self, svc: Obj, old: Obj | None, taken: _Allocation, *, dry_run: bool) -> None:
        spec = _spec(svc)
        if not needs_health_check(svc):
            return
        wanted = spec.get("healthCheckNodePort") or 0
        had = _spec(old).get("healthCheckNodePort") if old is not None and needs_health_check(old) else None
        if wanted and wanted == had:
            return
        if wanted:
            node_ports = {p.get("nodePort") for p in spec.get("ports") or [] if isinstance(p, dict)}
            try:
                if wanted in node_ports:
                    raise AlreadyAllocated("provided port is already allocated")
                self.ports.allocate(int(wanted), dry_run=dry_run)
            except AllocationError as exc:
                raise InternalError(f"Internal error occurred: failed to allocate requested HealthCheck "
                                    f"NodePort {wanted}: {exc}") from None
            if not dry_run:
                taken.ports.append(int(wanted))
                self._touched_ports[int(wanted)] = self._clock()
        else:
            spec["healthCheckNodePort"] = self._next_port(taken, dry_run=dry_run, what="a HealthCheck NodePort")

    def _revert(self, taken: _Allocation) -> None:
        for ip in taken.ips:
            self.ips.release(ip)
        for port in taken.ports:
            self.ports.release(port)

    def _allocate_create(self, svc: Obj, *, dry_run: bool) -> None:
        taken = _Allocation([], [])
        try:
            self._allocate_ips(svc, taken, dry_run=dry_run)
            self._allocate_node_ports(svc, None, taken, dry_run=dry_run)
            self._allocate_health_check(svc, None, taken, dry_run=dry_run)
        except BaseException:
            self._revert(taken)
            raise

    def _allocate_update(self, svc: Obj, old: Obj, *, dry_run: bool) -> None:
        taken = _Allocation([], [])
        try:
            spec = _spec(svc)
            if _type(svc) != "ExternalName" and (_type(old) == "ExternalName" or not spec.get("clusterIP")):
                # From ExternalName (kube's case A), or a Service stored before it had an address.
                self._allocate_ips(svc, taken, dry_run=dry_run)
            self._allocate_node_ports(svc, old, taken, dry_run=dry_run)
            self._allocate_health_check(svc, old, taken, dry_run=dry_run)
        except BaseException:
            self._revert(taken)
            raise

    # -- commits ---------------------------------------------------------------------------
    async def after_write(self, op: str, info: ResourceInfo, obj: Obj | None, old: Obj | None) -> None:
        """On commit: confirm what the stored object holds and free what it no longer holds."""
        if not self._is_services(info) or not self._loaded:
            return
        now = self._clock()
        for ip in held_ips(obj):
            if self.ips.contains(ip):
                if not self.ips.has(ip):
                    self.ips.allocate(ip)
                self._touched_ips[ip] = now
        for port in held_ports(obj):
            if self.ports.contains(port):
                if not self.ports.has(port):
                    self.ports.allocate(port)
                self._touched_ports[port] = now
        for ip in held_ips(old) - held_ips(obj):
            self.ips.release(ip)
            self._touched_ips.pop(ip, None)
        for port in held_ports(old) - held_ports(obj):
            self.ports.release(port)
            self._touched_ports.pop(port, None)

    # -- the kubernetes Service ------------------------------------------------------------
    async def ensure_kubernetes_service(self, host: str, port: int) -> None:
        """Create or fix ``default/kubernetes`` and its Endpoints and EndpointSlice, as kube-apiserver does.

        The Service takes the first address of the range, port 443 (``https``) to the API
        server's own port; its endpoints name the address clients reach the server on.
        """
        address = host if host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        self._kubernetes_endpoint = (address, port)
        await self.load()
        await self._reconcile_kubernetes_service()

    async def _reconcile_kubernetes_service(self) -> None:
        if self._kubernetes_endpoint is None:
            return
        address, port = self._kubernetes_endpoint
        family = "IPv6" if ":" in address else "IPv4"
        services = self._services()
        endpoints = self.objects.resources.get("", "v1", "endpoints")
        slices = self.objects.resources.get("discovery.k8s.io", "v1", "endpointslices")
        assert endpoints is not None and slices is not None
        ports = [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]
        labels = {"component": "apiserver", "provider": "kubernetes"}
        await self._ensure(services, {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": labels},
            "spec": {"type": "ClusterIP", "clusterIP": self.ips.first, "ports": ports, "sessionAffinity": "None"},
        }, lambda cur: _spec(cur).get("ports") == ports and (cur["metadata"].get("labels") or {}) == labels,
            lambda new, cur: {**new, "spec": {**_spec(cur), "ports": ports},
                              "metadata": {**cur["metadata"], "labels": labels}})
        subsets = [{"addresses": [{"ip": address}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]
        ep_labels = {"endpointslice.kubernetes.io/skip-mirror": "true"}
        await self._ensure(endpoints, {
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default", "labels": ep_labels},
            "subsets": subsets,
        }, lambda cur: cur.get("subsets") == subsets,
            lambda new, cur: {**cur, "subsets": subsets})
        slice_body = {
            "addressType": family,
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }
        await self._ensure(slices, {
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            **slice_body,
        }, lambda cur: all(cur.get(k) == v for k, v in slice_body.items()),
            lambda new, cur: {**cur, **slice_body})

    async def _ensure(self, info: ResourceInfo, desired: Obj, good: Callable[[Obj], bool],
                      fix: Callable[[Obj, Obj], Obj]) -> None:
        name, ns = desired["metadata"]["name"], desired["metadata"]["namespace"]
        for _attempt in range(5):
            current = await self.objects.try_get(info, ns, name)
            try:
                if current is None:
                    await self.objects.create(info, ns, copy.deepcopy(desired), SYSTEM_CONTEXT)
                    return
                if good(current):
                    return
                await self.objects.guaranteed_update(info, ns, name, lambda cur: fix(copy.deepcopy(desired),
                                                                                      copy.deepcopy(cur)),
                                                     SYSTEM_CONTEXT)
                return
            except (AlreadyExists, Conflict, NotFound):
                continue
            except APIError as exc:
                logger.error("cannot write %s default/%s: %s", info.group_resource, name, exc)
                return

    # -- lifecycle -------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Re-check the ``kubernetes`` Service every 10 s and repair the ranges every ``repair_interval``."""
        stop = stop or asyncio.Event()
        last_repair = self._clock()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(KUBERNETES_SERVICE_INTERVAL, self.repair_interval))
            if stop.is_set():
                return
            try:
                await self._reconcile_kubernetes_service()
                if self._clock() - last_repair >= self.repair_interval:
                    last_repair = self._clock()
                    await self.repair()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("service allocation maintenance failed")


__all__ = [
    "DEFAULT_NODE_PORT_RANGE",
    "DEFAULT_SERVICE_CIDR",
    "AllocationError",
    "AlreadyAllocated",
    "NodePortAllocator",
    "NotInRange",
    "RangeAllocator",
    "RangeFull",
    "ServiceAllocation",
    "ServiceIPAllocator",
    "band_offset",
    "held_ips",
    "held_ports",
    "parse_port_range",
]
