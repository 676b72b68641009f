"""Which backend gets a connection: endpoints from EndpointSlices, round robin, ClientIP affinity.

This is the pure part of the service proxy, kept free of sockets so that it can be tested
table-driven with a fake clock:

- :func:`endpoints_for_port` reads a Service port's endpoints out of its EndpointSlices the
  way kube-proxy's ``EndpointSliceCache`` does: the slice port with the Service port's name
  and protocol gives the (already resolved) target port; each endpoint's first address is
  used; ``ready``/``serving`` absent mean true, ``terminating`` absent means false; the same
  address seen in two slices (a slice controller moving endpoints) counts once.
- :func:`usable_endpoints` is kube-proxy's ``CategorizeEndpoints`` for cluster traffic:
  ready endpoints, or — only when none is ready — the terminating ones still serving, so
  that a rolling update does not drop traffic on the floor.
- :class:`Balancer` is the userspace proxier's load balancer: round robin over the
  usable endpoints, optionally sticky per client IP for ``timeoutSeconds`` since the
  client's last connection; a retry after a refused connect skips the sticky choice.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

DEFAULT_AFFINITY_TIMEOUT = 10800
"""Seconds; ``sessionAffinityConfig.clientIP.timeoutSeconds`` default (3 hours)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: str
    port: int
    ready: bool = True
    serving: bool = True
    terminating: bool = False

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"


def _flag(conditions: Mapping[str, Any], name: str, default: bool) -> bool:
    value = conditions.get(name)
    return default if value is None else bool(value)


def endpoints_for_port(slices: Iterable[Obj], port_name: str, protocol: str = "TCP",
                       default_port: int | None = None) -> list[Endpoint]:
    """The endpoints serving Service port ``port_name``, sorted by address, duplicates dropped.

    ``default_port`` stands in for a slice port without a number (kube leaves it nil when
    a named target port cannot be resolved on the pod; such endpoints are skipped then).
    """
    found: dict[tuple[str, int], Endpoint] = {}
    for eps in slices:
        if (eps.get("addressType") or "IPv4") != "IPv4":
            continue
        number: int | None = None
        for port in eps.get("ports") or []:
            if not isinstance(port, Mapping):
                continue
            if (port.get("name") or "") == port_name and (port.get("protocol") or "TCP") == protocol:
                number = port.get("port") if isinstance(port.get("port"), int) else default_port
                break
        if number is None:
            continue
        for ep in eps.get("endpoints") or []:
            if not isinstance(ep, Mapping):
                continue
            addresses = [a for a in ep.get("addresses") or [] if isinstance(a, str) and a]
            if not addresses:
                continue
            conditions = ep.get("conditions") if isinstance(ep.get("conditions"), Mapping) else {}
            assert isinstance(conditions, Mapping)
            endpoint = Endpoint(addresses[0], number, ready=_flag(conditions, "ready", True),
                                serving=_flag(conditions, "serving", True),
                                terminating=_flag(conditions, "terminating", False))
            key = (endpoint.ip, endpoint.port)
            previous = found.get(key)
            # Prefer the more available copy when two slices disagree during a move.
            if previous is None or (endpoint.ready and not previous.ready):
                found[key] = endpoint
    return sorted(found.values(), key=_order)


def _order(endpoint: Endpoint) -> tuple[int, str, int]:
    try:
        return int(ipaddress.IPv4Address(endpoint.ip)), "", endpoint.port
    except ValueError:
        return -1, endpoint.ip, endpoint.port


def usable_endpoints(endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    """Ready endpoints; if there are none, the terminating endpoints that still serve."""
    endpoints = list(endpoints)
    ready = [e for e in endpoints if e.ready]
    if ready:
        return ready
    return [e for e in endpoints if e.serving and e.terminating]


@dataclass
class _Sticky:
    endpoint: Endpoint
    last_used: float


@dataclass
class Balancer:
    """Round robin over one Service port's endpoints, with optional ClientIP affinity."""

    endpoints: list[Endpoint] = field(default_factory=list)
    affinity: bool = False
    affinity_timeout: float = DEFAULT_AFFINITY_TIMEOUT
    _next: int = 0
    _sticky: dict[str, _Sticky] = field(default_factory=dict)

    def update(self, endpoints: Iterable[Endpoint], *, affinity: bool = False,
               affinity_timeout: float = DEFAULT_AFFINITY_TIMEOUT) -> None:
        """Take a new endpoint set; only new connections see it.

        The round-robin position is kept (modulo the new size) and sticky clients stay
        with their backend while it remains usable, as the userspace proxier does.
        """
        fresh = list(endpoints)
        if not affinity:
            self._sticky.clear()
        elif fresh != self.endpoints:
            alive = set(fresh)
            self._sticky = {ip: s for ip, s in self._sticky.items() if s.endpoint in alive}
        self.endpoints = fresh
        self.affinity = affinity
        self.affinity_timeout = affinity_timeout
        self._next = self._next % len(fresh) if fresh else 0

    def pick(self, client_ip: str, now: float, *, reset_affinity: bool = False) -> Endpoint | None:
        """The backend for a new connection from ``client_ip``; ``None`` without endpoints.

        ``reset_affinity`` is for a retry after the previous choice refused: go on round
        robin and make the new choice the client's sticky one.
        """
        if not self.endpoints:
            return None
        if self.affinity and not reset_affinity:
            sticky = self._sticky.get(client_ip)
            if sticky is not None and now - sticky.last_used < self.affinity_timeout \
                    and sticky.endpoint in self.endpoints:
                sticky.last_used = now
                return sticky.endpoint
        endpoint = self.endpoints[self._next % len(self.endpoints)]
        self._next = (self._next + 1) % len(self.endpoints)
        if self.affinity:
            self._sticky[client_ip] = _Sticky(endpoint, now)
            if len(self._sticky) > 4096:
                self.expire(now)
        return endpoint

    def expire(self, now: float) -> None:
        """Forget sticky clients idle for longer than the timeout."""
        self._sticky = {ip: s for ip, s in self._sticky.items() if now - s.last_used < self.affinity_timeout}

    @property
    def sticky_clients(self) -> int:
        return len(self._sticky)


__all__ = ["DEFAULT_AFFINITY_TIMEOUT", "Balancer", "Endpoint", "endpoints_for_port", "usable_endpoints"]
