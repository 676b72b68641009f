"""Backend selection: endpoints out of EndpointSlices, round robin, ClientIP affinity, fallbacks."""

from __future__ import annotations

from typing import Any

import pytest

from atoll.cluster.proxy.backends import Balancer, Endpoint, endpoints_for_port, usable_endpoints


def ep(ip: str, **conditions: bool) -> dict[str, Any]:
    return {"addresses": [ip], "conditions": conditions}


def eps(*endpoints: dict[str, Any], ports: list[dict[str, Any]] | None = None,
        address_type: str = "IPv4") -> dict[str, Any]:
    return {"addressType": address_type, "endpoints": list(endpoints),
            "ports": ports if ports is not None else [{"name": "", "port": 8080, "protocol": "TCP"}]}


@pytest.mark.parametrize(("slices", "port_name", "expected"), [
    # ready absent means ready; sorted by address
    ([eps(ep("127.16.0.3"), ep("127.16.0.1"))], "", [("127.16.0.1", 8080), ("127.16.0.3", 8080)]),
    # the port is matched by name (and protocol); the slice's number is the resolved target port
    ([eps(ep("127.16.0.1"), ports=[{"name": "http", "port": 9000, "protocol": "TCP"},
                                   {"name": "dns", "port": 53, "protocol": "UDP"}])], "http",
     [("127.16.0.1", 9000)]),
    ([eps(ep("127.16.0.1"), ports=[{"name": "dns", "port": 53, "protocol": "UDP"}])], "dns", []),
    ([eps(ep("127.16.0.1"), ports=[{"name": "other", "port": 1, "protocol": "TCP"}])], "http", []),
    # the same endpoint in two slices (a move in progress) counts once
    ([eps(ep("127.16.0.1")), eps(ep("127.16.0.1"), ep("127.16.0.2"))], "",
     [("127.16.0.1", 8080), ("127.16.0.2", 8080)]),
    # IPv6 and FQDN slices are not for this proxy
    ([eps(ep("::1"), address_type="IPv6"), eps(ep("a.example"), address_type="FQDN")], "", []),
    # a slice port without a number falls back to the Service's numeric targetPort
    ([eps(ep("127.16.0.1"), ports=[{"name": "", "protocol": "TCP"}])], "", [("127.16.0.1", 7070)]),
])
def test_endpoints_for_port(slices: list[dict[str, Any]], port_name: str, expected: list[tuple[str, int]]) -> None:
    got = endpoints_for_port(slices, port_name, "TCP", default_port=7070)
    assert [(e.ip, e.port) for e in got] == expected


@pytest.mark.parametrize(("conditions", "expected"), [
    ([{}, {"ready": False}], ["a"]),                                          # only ready ones
    ([{"ready": True}, {"ready": False, "serving": True, "terminating": True}], ["a"]),  # ready wins
    ([{"ready": False, "serving": True, "terminating": True},
      {"ready": False, "serving": False, "terminating": True}], ["a"]),       # fallback: serving+terminating
    ([{"ready": False}, {"ready": False, "serving": True}], []),              # not terminating: no fallback
    ([], []),
])
def test_usable_endpoints(conditions: list[dict[str, bool]], expected: list[str]) -> None:
    names = "abcdef"
    endpoints = [Endpoint(f"127.16.0.{i + 1}", 80, ready=c.get("ready", True), serving=c.get("serving", True),
                          terminating=c.get("terminating", False)) for i, c in enumerate(conditions)]
    got = usable_endpoints(endpoints)
    assert [names[int(e.ip.rsplit(".", 1)[1]) - 1] for e in got] == expected


A, B, C = (Endpoint(f"127.16.0.{i}", 8080) for i in (1, 2, 3))


@pytest.mark.parametrize(("affinity", "clients", "expected"), [
    (False, ["x", "x", "x", "x", "y", "y"], [A, B, C, A, B, C]),   # round robin, whoever asks
    (True, ["x", "x", "y", "y", "z", "x"], [A, A, B, B, C, A]),    # sticky per client IP
])
def test_balancer_order(affinity: bool, clients: list[str], expected: list[Endpoint]) -> None:
    b = Balancer()
    b.update([A, B, C], affinity=affinity)
    assert [b.pick(c, 100.0) for c in clients] == expected


def test_affinity_timeout_and_reset() -> None:
    b = Balancer()
    b.update([A, B, C], affinity=True, affinity_timeout=10)
    assert b.pick("x", 0.0) == A
    assert b.pick("x", 9.0) == A         # last use refreshes the timer
    assert b.pick("x", 18.0) == A
    assert b.pick("x", 28.5) == B        # idle for longer than the timeout: round robin again
    assert b.pick("x", 29.0, reset_affinity=True) == C   # a retry after a refusal moves on
    assert b.pick("x", 29.5) == C        # ... and sticks to the new choice
    b.expire(100.0)
    assert b.sticky_clients == 0


def test_update_keeps_position_and_live_sticky_clients() -> None:
    b = Balancer()
    b.update([A, B, C], affinity=True)
    assert [b.pick(c, 0.0) for c in ("x", "y", "z")] == [A, B, C]
    b.update([A, C], affinity=True)       # B leaves: y is re-balanced, x and z stay
    assert b.pick("x", 1.0) == A and b.pick("z", 1.0) == C
    assert b.pick("y", 1.0) in (A, C)
    b.update([], affinity=True)
    assert b.pick("x", 2.0) is None
    b.update([A, B], affinity=False)
    assert b.sticky_clients == 0 and [b.pick("x", 3.0) for _ in range(3)] == [A, B, A]


# -- what the proxy listens on, from its caches (no sockets) -----------------------------------

def _proxy_with(service: dict[str, Any], slices: list[dict[str, Any]]) -> Any:
    from atoll.client import Client
    from atoll.cluster.proxy import ServiceProxy
    from atoll.machinery.informing import Lister

    proxy = ServiceProxy(Client(server="https://127.0.0.1:1"), node_address="127.0.0.9")
    proxy.services.lister = Lister({"ns/s": service})
    for i, eps_ in enumerate(slices):
        eps_ = {**eps_, "metadata": {"namespace": "ns", "name": f"s-{i}",
                                     "labels": {"kubernetes.io/service-name": "s"}}}
        proxy._slice_changed("ADDED", None, eps_)
    return proxy


def _svc(**spec: Any) -> dict[str, Any]:
    spec.setdefault("clusterIP", "127.80.9.1")
    spec.setdefault("ports", [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}])
    return {"metadata": {"namespace": "ns", "name": "s"}, "spec": spec}


HTTP = [{"name": "http", "port": 8080, "protocol": "TCP"}]


@pytest.mark.parametrize(("service", "slices", "listen"), [
    (_svc(), [eps(ep("127.16.0.1"), ports=HTTP)], {("127.80.9.1", 80)}),
    (_svc(), [], set()),                                                      # no endpoints: refused
    (_svc(), [eps(ep("127.16.0.1", ready=False), ports=HTTP)], set()),
    (_svc(type="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30001, "protocol": "TCP"}]),
     [eps(ep("127.16.0.1"), ports=HTTP)], {("127.80.9.1", 80), ("127.0.0.9", 30001)}),
    (_svc(clusterIP="None"), [eps(ep("127.16.0.1"), ports=HTTP)], set()),     # headless: DNS only
    (_svc(type="ExternalName", externalName="x.example", clusterIP=None), [], set()),
    (_svc(ports=[{"name": "http", "port": 53, "protocol": "UDP"}]),
     [eps(ep("127.16.0.1"), ports=[{"name": "http", "port": 53, "protocol": "UDP"}])], set()),  # UDP: out of scope
])
def test_what_the_proxy_listens_on(service: dict[str, Any], slices: list[dict[str, Any]],
                                   listen: set[tuple[str, int]]) -> None:
    proxy = _proxy_with(service, slices)
    _balancers, wanted = proxy.service_desired(("ns", "s"))
    assert set(wanted) == listen
