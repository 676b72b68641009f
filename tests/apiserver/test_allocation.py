"""Service cluster IP and node port allocation: the allocators, the admission step, the real server."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import pytest

from atoll.api.builtin import new_registry
from atoll.api.errors import AlreadyExists, InternalError, Invalid
from atoll.apiserver.allocation import (
    AlreadyAllocated,
    NodePortAllocator,
    NotInRange,
    RangeAllocator,
    RangeFull,
    ServiceAllocation,
    ServiceIPAllocator,
    band_offset,
    parse_port_range,
)
from atoll.apiserver.registry import DeleteOptions, ObjectRegistry, RequestContext
from atoll.client import Client, Resource
from atoll.storage.memory import MemoryStore
from tests.conftest import RunningServer, require_kubectl, start_apiserver, stop_process

SERVICES = Resource("v1", "services", kind="Service")
ENDPOINTS = Resource("v1", "endpoints", kind="Endpoints")
SLICES = Resource("discovery.k8s.io/v1", "endpointslices", kind="EndpointSlice")
NSS = Resource("v1", "namespaces", namespaced=False)
CIDR = ipaddress.ip_network("127.80.0.0/16")


# -- allocators (pure) --------------------------------------------------------------------

@pytest.mark.parametrize(("size", "minimum", "maximum", "step", "expected"), [
    (65536, 16, 256, 16, 256),   # a /16 of service IPs: kube's upper band starts at 256
    (256, 16, 256, 16, 16),      # a /24: the minimum
    (8, 16, 256, 16, 0),         # too small to split
    (2768, 16, 128, 32, 86),     # the default node port range (KEP-3668)
    (100, 16, 128, 32, 16),
    (100000, 16, 128, 32, 128),  # capped
])
def test_band_offset(size: int, minimum: int, maximum: int, step: int, expected: int) -> None:
    assert band_offset(size, minimum=minimum, maximum=maximum, step=step) == expected


@pytest.mark.parametrize(("size", "offset", "reserved", "taken", "expected"), [
    (10, 4, (), [], [4, 5, 6, 7, 8, 9, 0, 1, 2, 3]),       # upper band first, then the lower one
    (10, 4, (0,), [], [4, 5, 6, 7, 8, 9, 1, 2, 3]),        # reserved never handed out dynamically
    (10, 4, (), [5, 6, 1], [4, 7, 8, 9, 0, 2, 3]),         # requested values are skipped
    (4, 0, (), [], [0, 1, 2, 3]),
])
def test_range_allocator_next_free_order_and_exhaustion(size: int, offset: int, reserved: tuple[int, ...],
                                                        taken: list[int], expected: list[int]) -> None:
    r = RangeAllocator(size, offset=offset, reserved=reserved)
    for t in taken:
        r.allocate(t)
    assert [r.allocate_next() for _ in expected] == expected
    with pytest.raises(RangeFull, match=r"^range is full$"):
        r.allocate_next()
    assert r.free == 0


def test_range_allocator_release_and_cursor() -> None:
    r = RangeAllocator(6, offset=2)
    assert [r.allocate_next() for _ in range(3)] == [2, 3, 4]
    assert r.release(3) and not r.release(3)
    # The cursor goes on: a freed value is not handed out again at once.
    assert r.allocate_next() == 5
    assert r.allocate_next() == 3
    assert r.allocate_next(dry_run=True) == 0 and 0 not in r
    r.allocate(0)
    with pytest.raises(AlreadyAllocated):
        r.allocate(0)


@pytest.mark.parametrize(("ip", "error"), [
    ("127.80.0.10", None),
    ("127.80.255.254", None),                     # the last usable address
    ("127.80.0.1", None),                         # reserved for kubernetes, but may be asked for
    ("127.80.0.0", "the provided IP (127.80.0.0) is not in the valid range. The range of valid IPs is "
                   "127.80.0.0/16"),             # network address
    ("127.80.255.255", "is not in the valid range"),  # broadcast
    ("127.81.0.1", "is not in the valid range"),
    ("10.0.0.1", "is not in the valid range"),
])
def test_service_ip_requested(ip: str, error: str | None) -> None:
    ips = ServiceIPAllocator("127.80.0.0/16")
    if error is None:
        ips.allocate(ip)
        assert ips.has(ip)
        with pytest.raises(AlreadyAllocated, match=r"^provided IP is already allocated$"):
            ips.allocate(ip)
    else:
        with pytest.raises(NotInRange, match=re.escape(error)):
            ips.allocate(ip)


def test_service_ips_skip_first_and_exhaust_a_small_range() -> None:
    ips = ServiceIPAllocator("127.90.0.0/29")   # 8 addresses: .1-.6 usable, .1 reserved
    assert ips.first == "127.90.0.1"
    got = [ips.allocate_next() for _ in range(5)]
    assert sorted(got) == [f"127.90.0.{i}" for i in range(2, 7)]
    with pytest.raises(RangeFull):
        ips.allocate_next()
    assert ips.release("127.90.0.4")
    assert ips.allocate_next() == "127.90.0.4"


def test_service_ip_dynamic_from_the_upper_band() -> None:
    ips = ServiceIPAllocator("127.80.0.0/16")
    assert ips.allocate_next() == "127.80.1.1"   # offset 256 above the first address


@pytest.mark.parametrize(("text", "expected"), [
    ("30000-32767", (30000, 32767)), ("30000+2767", (30000, 32767)), ("31000", (31000, 31000)),
    ("bad", None), ("0-10", None), ("200-100", None), ("1-70000", None),
])
def test_parse_port_range(text: str, expected: tuple[int, int] | None) -> None:
    if expected is None:
        with pytest.raises(ValueError):
            parse_port_range(text)
    else:
        assert parse_port_range(text) == expected


@pytest.mark.parametrize(("port", "error"), [
    (30000, None), (32767, None),
    (29999, "provided port is not in the valid range. The range of valid ports is 30000-32767"),
    (32768, "provided port is not in the valid range"),
])
def test_node_port_requested(port: int, error: str | None) -> None:
    ports = NodePortAllocator("30000-32767")
    if error is None:
        ports.allocate(port)
        with pytest.raises(AlreadyAllocated, match=r"^provided port is already allocated$"):
            ports.allocate(port)
    else:
        with pytest.raises(NotInRange, match=re.escape(error)):
            ports.allocate(port)


def test_node_ports_dynamic_upper_band_then_full() -> None:
    ports = NodePortAllocator("30000-30019")   # 20 ports: offset 16
    assert [ports.allocate_next() for _ in range(4)] == [30016, 30017, 30018, 30019]
    assert ports.allocate_next() == 30000
    for _ in range(15):
        ports.allocate_next()
    with pytest.raises(RangeFull):
        ports.allocate_next()


# -- the admission step over an in-memory registry --------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def svc(name: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("ports", [{"port": 80, "targetPort": 8080}])
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": spec}


async def registry(cidr: str = "127.90.0.0/28", ports: str = "30000-30009",
                   clock: Clock | None = None) -> tuple[ObjectRegistry, ServiceAllocation]:
    objects = ObjectRegistry(MemoryStore(), new_registry())
    alloc = ServiceAllocation(objects, service_cidr=cidr, node_port_range=ports, repair_interval=60,
                              clock=clock or Clock())
    objects.admission.append(alloc)
    objects.after_write.append(alloc.after_write)
    ns = objects.resources.get("", "v1", "namespaces")
    assert ns is not None
    await objects.create(ns, None, {"metadata": {"name": "default"}}, RequestContext())
    return objects, alloc


def services_info(objects: ObjectRegistry) -> Any:
    return objects.resources.get("", "v1", "services")


@pytest.mark.parametrize(("spec", "check"), [
    ({}, lambda s: s["clusterIP"] != "None" and s["clusterIPs"] == [s["clusterIP"]]
     and s["ipFamilies"] == ["IPv4"] and s["ipFamilyPolicy"] == "SingleStack"),
    ({"clusterIP": "None"}, lambda s: s["clusterIP"] == "None"),
    ({"type": "ExternalName", "externalName": "example.com", "ports": []}, lambda s: "clusterIP" not in s),
    ({"type": "NodePort"}, lambda s: 30000 <= s["ports"][0]["nodePort"] <= 30009),
    ({"type": "NodePort", "ports": [{"name": "a", "port": 53, "protocol": "TCP"},
                                    {"name": "b", "port": 53, "protocol": "UDP"}]},
     lambda s: s["ports"][0]["nodePort"] == s["ports"][1]["nodePort"]),          # same port shares one
    ({"type": "NodePort", "ports": [{"name": "a", "port": 53, "protocol": "TCP"},
                                    {"name": "b", "port": 53, "protocol": "UDP", "nodePort": 30004}]},
     lambda s: s["ports"][0]["nodePort"] == s["ports"][1]["nodePort"] == 30004),  # ... the one asked for later
    ({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": False},
     lambda s: "nodePort" not in s["ports"][0]),
    ({"type": "LoadBalancer", "externalTrafficPolicy": "Local"},
     lambda s: s["healthCheckNodePort"] != s["ports"][0]["nodePort"] and s["healthCheckNodePort"] >= 30000),
])
async def test_create_allocates(spec: dict[str, Any], check: Any) -> None:
    objects, _ = await registry()
    created = await objects.create(services_info(objects), "default", svc("s", **spec), RequestContext())
    assert check(created["spec"]), created["spec"]


@pytest.mark.parametrize(("first", "second", "message"), [
    ({"clusterIP": "127.90.0.5"}, {"clusterIP": "127.90.0.5"},
     'spec.clusterIPs: Invalid value: []string{"127.90.0.5"}: failed to allocate IP 127.90.0.5: '
     "provided IP is already allocated"),
    ({}, {"clusterIP": "127.91.0.5"}, "not in the valid range"),
    ({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30003}]},
     {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30003}]},
     "spec.ports[0].nodePort: Invalid value: 30003: provided port is already allocated"),
    ({}, {"type": "NodePort", "ports": [{"port": 80, "nodePort": 31000}]},
     "provided port is not in the valid range. The range of valid ports is 30000-30009"),
    ({}, {"ipFamilyPolicy": "RequireDualStack"}, "this cluster is not configured for dual-stack services"),
])
async def test_create_rejects(first: dict[str, Any], second: dict[str, Any], message: str) -> None:
    objects, alloc = await registry()
    info = services_info(objects)
    await objects.create(info, "default", svc("one", **first), RequestContext())
    used = (alloc.ips.bitmap.used, alloc.ports.bitmap.used)
    with pytest.raises(Invalid) as err:
        await objects.create(info, "default", svc("two", **second), RequestContext())
    assert message in str(err.value)
    assert (alloc.ips.bitmap.used, alloc.ports.bitmap.used) == used   # nothing half-taken is kept


async def test_exhaustion_is_a_clear_error_and_delete_frees() -> None:
    objects, alloc = await registry(cidr="127.90.0.0/29")
    info = services_info(objects)
    for i in range(5):
        await objects.create(info, "default", svc(f"s{i}"), RequestContext())
    with pytest.raises(InternalError, match="failed to allocate a serviceIP: range is full"):
        await objects.create(info, "default", svc("full"), RequestContext())
    victim = (await objects.get(info, "default", "s2"))["spec"]["clusterIP"]
    await objects.delete(info, "default", "s2", DeleteOptions(), RequestContext())
    assert not alloc.ips.has(victim)
    again = await objects.create(info, "default", svc("again"), RequestContext())
    assert again["spec"]["clusterIP"] == victim


async def test_dry_run_and_duplicate_names_take_nothing() -> None:
    objects, alloc = await registry()
    info = services_info(objects)
    dry = await objects.create(info, "default", svc("dry", type="NodePort"), RequestContext(dry_run=True))
    assert dry["spec"]["clusterIP"] and dry["spec"]["ports"][0]["nodePort"]
    assert alloc.ips.bitmap.used == 0 and alloc.ports.bitmap.used == 0
    await objects.create(info, "default", svc("same"), RequestContext())
    with pytest.raises(AlreadyExists):
        await objects.create(info, "default", svc("same"), RequestContext())
    assert alloc.ips.bitmap.used == 1


async def test_type_changes_allocate_and_release_on_commit() -> None:
    objects, alloc = await registry()
    info = services_info(objects)
    created = await objects.create(info, "default", svc("t"), RequestContext())
    ip = created["spec"]["clusterIP"]
    np = await objects.patch(info, "default", "t", "merge", json.dumps({"spec": {"type": "NodePort"}}).encode(),
                             RequestContext())
    port = np["spec"]["ports"][0]["nodePort"]
    assert np["spec"]["clusterIP"] == ip and alloc.ports.has(port)
    # Adding a port allocates one more node port; removing it releases it.
    two = await objects.patch(info, "default", "t", "merge", json.dumps({"spec": {"ports": [
        {"name": "a", "port": 80, "targetPort": 8080, "nodePort": port},
        {"name": "b", "port": 81, "targetPort": 8081}]}}).encode(), RequestContext())
    extra = two["spec"]["ports"][1]["nodePort"]
    assert alloc.ports.has(extra) and extra != port
    await objects.patch(info, "default", "t", "merge", json.dumps({"spec": {"ports": [
        {"name": "a", "port": 80, "targetPort": 8080, "nodePort": port}]}}).encode(), RequestContext())
    assert not alloc.ports.has(extra) and alloc.ports.has(port)
    # To ExternalName (clearing what it may not have) releases the address and the node port.
    ext = {"spec": {"type": "ExternalName", "externalName": "example.com", "clusterIP": None, "clusterIPs": None,
                    "ipFamilies": None, "ipFamilyPolicy": None, "externalTrafficPolicy": None,
                    "internalTrafficPolicy": None, "ports": [{"name": "a", "port": 80, "targetPort": 8080}]}}
    await objects.patch(info, "default", "t", "merge", json.dumps(ext).encode(), RequestContext())
    assert not alloc.ips.has(ip) and not alloc.ports.has(port)
    back = await objects.patch(info, "default", "t", "merge", json.dumps(
        {"spec": {"type": "ClusterIP", "externalName": None}}).encode(), RequestContext())
    assert alloc.ips.has(back["spec"]["clusterIP"])


async def test_cluster_ip_is_immutable() -> None:
    objects, alloc = await registry()
    info = services_info(objects)
    await objects.create(info, "default", svc("imm"), RequestContext())
    with pytest.raises(Invalid, match=r"spec\.clusterIPs\[0\]: Invalid value: .*may not change once set"):
        await objects.patch(info, "default", "imm", "merge",
                            json.dumps({"spec": {"clusterIP": "127.90.0.9", "clusterIPs": ["127.90.0.9"]}}).encode(),
                            RequestContext())
    assert not alloc.ips.has("127.90.0.9")


async def test_restart_derives_from_store_and_repair_frees_leaks() -> None:
    clock = Clock()
    objects, alloc = await registry(clock=clock)
    info = services_info(objects)
    held = {(await objects.create(info, "default", svc(f"r{i}"), RequestContext()))["spec"]["clusterIP"]
            for i in range(3)}
    # A second allocator over the same store (a restarted server) sees what is held.
    fresh = ServiceAllocation(objects, service_cidr="127.90.0.0/28", node_port_range="30000-30009",
                              repair_interval=60, clock=clock)
    await fresh.load()
    assert set(fresh.ips.allocated()) == held
    # A leak (admitted, never written) survives one repair interval, then goes.
    leaked = alloc.ips.allocate_next()
    alloc._touched_ips[leaked] = clock.now
    assert await alloc.repair() == (0, 0)
    clock.now += 61
    assert await alloc.repair() == (1, 0)
    assert not alloc.ips.has(leaked) and all(alloc.ips.has(ip) for ip in held)


async def test_concurrent_creates_in_process_get_distinct_addresses() -> None:
    objects, _ = await registry(cidr="127.90.0.0/24")
    info = services_info(objects)
    made = await asyncio.gather(*(objects.create(info, "default", svc(f"c{i}"), RequestContext())
                                  for i in range(100)))
    ips = [m["spec"]["clusterIP"] for m in made]
    assert len(set(ips)) == 100


# -- over the real API server --------------------------------------------------------------

async def test_kubernetes_service_and_endpoints(apiserver: RunningServer) -> None:
    port = int(apiserver.url.rsplit(":", 1)[1])
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        kube = await client.get(SERVICES, "kubernetes", "default")
        assert kube["spec"]["clusterIP"] == "127.80.0.1"
        assert kube["spec"]["ports"] == [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]
        ep = await client.get(ENDPOINTS, "kubernetes", "default")
        assert ep["subsets"] == [{"addresses": [{"ip": "127.0.0.1"}],
                                  "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]
        sl = await client.get(SLICES, "kubernetes", "default")
        assert sl["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
        assert sl["endpoints"][0]["addresses"] == ["127.0.0.1"] and sl["ports"][0]["port"] == port


def test_kubectl_create_expose_and_errors(apiserver: RunningServer) -> None:
    require_kubectl()
    k = apiserver.kubectl
    k("create", "namespace", "alloc-kubectl")
    k("-n", "alloc-kubectl", "create", "service", "clusterip", "web", "--tcp=80:8080")
    web = json.loads(k("-n", "alloc-kubectl", "get", "svc", "web", "-o", "json").stdout)["spec"]
    assert ipaddress.ip_address(web["clusterIP"]) in CIDR and web["clusterIPs"] == [web["clusterIP"]]
    assert web["ipFamilies"] == ["IPv4"] and web["ipFamilyPolicy"] == "SingleStack"
    k("-n", "alloc-kubectl", "create", "deployment", "app", "--image=nginx")
    k("-n", "alloc-kubectl", "expose", "deployment", "app", "--port=80", "--target-port=8080", "--type=NodePort")
    app = json.loads(k("-n", "alloc-kubectl", "get", "svc", "app", "-o", "json").stdout)["spec"]
    assert 30000 <= app["ports"][0]["nodePort"] <= 32767 and app["clusterIP"] != web["clusterIP"]
    table = k("-n", "alloc-kubectl", "get", "svc").stdout
    assert web["clusterIP"] in table and f"80:{app['ports'][0]['nodePort']}/TCP" in table
    k("-n", "alloc-kubectl", "create", "service", "clusterip", "headless", "--clusterip=None")
    headless = json.loads(k("-n", "alloc-kubectl", "get", "svc", "headless", "-o", "json").stdout)["spec"]
    assert headless["clusterIP"] == "None"
    dup = k("-n", "alloc-kubectl", "create", "service", "clusterip", "dup", "--tcp=80:80",
            f"--clusterip={web['clusterIP']}", check=False)
    assert dup.returncode != 0 and "provided IP is already allocated" in dup.stderr
    out = k("-n", "alloc-kubectl", "create", "service", "clusterip", "out", "--tcp=80:80", "--clusterip=10.0.0.1",
            check=False)
    assert "is not in the valid range. The range of valid IPs is 127.80.0.0/16" in out.stderr
    np = k("-n", "alloc-kubectl", "create", "service", "nodeport", "np", "--tcp=80:80",
           f"--node-port={app['ports'][0]['nodePort']}", check=False)
    assert "spec.ports[0].nodePort" in np.stderr and "provided port is already allocated" in np.stderr
    # Deleting frees the address for a request of it.
    k("-n", "alloc-kubectl", "delete", "svc", "web")
    k("-n", "alloc-kubectl", "create", "service", "clusterip", "web2", "--tcp=80:80",
      f"--clusterip={web['clusterIP']}")


async def test_fifty_concurrent_creates_over_http(apiserver: RunningServer) -> None:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(NSS, {"metadata": {"name": "alloc-concurrent"}})
        bodies = [{"metadata": {"name": f"c{i}"}, "spec": {"type": "NodePort" if i % 2 else "ClusterIP",
                                                            "ports": [{"port": 80}]}} for i in range(50)]
        made = await asyncio.gather(*(client.create(SERVICES, b, "alloc-concurrent") for b in bodies))
        ips = [m["spec"]["clusterIP"] for m in made]
        ports = [m["spec"]["ports"][0]["nodePort"] for m in made if m["spec"]["type"] == "NodePort"]
        assert len(set(ips)) == 50 and all(ipaddress.ip_address(ip) in CIDR for ip in ips)
        assert len(set(ports)) == 25
        listed = (await client.list(SERVICES))["items"]
        all_ips = [s["spec"]["clusterIP"] for s in listed if s["spec"].get("clusterIP") not in (None, "None")]
        assert len(all_ips) == len(set(all_ips))


async def test_restart_does_not_reuse(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    server = start_apiserver(state)
    try:
        async with Client.from_kubeconfig(server.kubeconfig) as client:
            first = [(await client.create(SERVICES, {"metadata": {"name": f"a{i}"},
                                                     "spec": {"type": "NodePort", "ports": [{"port": 80}]}},
                                          "default"))["spec"] for i in range(5)]
            # Free one, so that the cursor position is not what protects the rest.
            await client.delete(SERVICES, "a0", "default")
    finally:
        stop_process(server.process)
    server = start_apiserver(state)
    try:
        async with Client.from_kubeconfig(server.kubeconfig) as client:
            second = [(await client.create(SERVICES, {"metadata": {"name": f"b{i}"},
                                                      "spec": {"type": "NodePort", "ports": [{"port": 80}]}},
                                           "default"))["spec"] for i in range(5)]
            kept_ips = {s["clusterIP"] for s in first[1:]}
            kept_ports = {s["ports"][0]["nodePort"] for s in first[1:]}
            assert not kept_ips & {s["clusterIP"] for s in second}
            assert not kept_ports & {s["ports"][0]["nodePort"] for s in second}
            # The kubernetes Service follows the server to its new port.
            port = int(server.url.rsplit(":", 1)[1])
            kube = await client.get(SERVICES, "kubernetes", "default")
            assert kube["spec"]["ports"][0]["targetPort"] == port
            assert (await client.get(ENDPOINTS, "kubernetes", "default"))["subsets"][0]["ports"][0]["port"] == port
    finally:
        stop_process(server.process)
