"""EndpointSlice controller: port resolution, endpoint conditions and slice packing, then the real thing."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from atoll.client import Client, Resource
from atoll.cluster.controllers.endpointslice import (
    ENDPOINTSLICES,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    PODS,
    SERVICE_NAME_LABEL,
    SERVICES,
    EndpointSliceController,
    desired_groups,
    endpoint_conditions,
    find_port,
    plan_slices,
    port_key,
    should_be_in_endpoints,
)
from atoll.cluster.kubelet.simulated import NodeSpec, SimulatedNodes
from tests.conftest import RunningServer, require_kubectl
from tests.waiting import eventually

Obj = dict[str, Any]
NSS = Resource("v1", "namespaces", namespaced=False)


def pod(name: str, *, ip: str = "10.0.0.1", ready: bool = True, ports: dict[str, int] | None = None,
        node: str = "n1", deleting: bool = False, phase: str = "Running", labels: dict[str, str] | None = None,
        protocol: str = "TCP") -> Obj:
    md: Obj = {"name": name, "namespace": "ns", "uid": f"uid-{name}", "labels": labels or {"app": "web"}}
    if deleting:
        md["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    container = {"name": "c", "ports": [{"name": k, "containerPort": v, "protocol": protocol}
                                        for k, v in (ports or {}).items()]}
    status: Obj = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    return {"metadata": md, "spec": {"nodeName": node, "containers": [container]}, "status": status}


def service(ports: list[Obj] | None = None, *, publish: bool = False, selector: dict[str, str] | None = None,
            cluster_ip: str = "10.96.0.10") -> Obj:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"} if selector is None else selector, "clusterIP": cluster_ip,
                     "ports": ports if ports is not None else [{"name": "http", "port": 80, "targetPort": "http",
                                                                "protocol": "TCP"}],
                     "publishNotReadyAddresses": publish}}


# -- pure logic --------------------------------------------------------------------------
@pytest.mark.parametrize(("svc_port", "pod_ports", "expected"), [
    ({"port": 80, "targetPort": 8080}, {}, 8080),                                   # a number as it is
    ({"port": 80}, {}, 80),                                                          # unset: the port
    ({"port": 80, "targetPort": "http"}, {"http": 8080}, 8080),                     # a name, looked up
    ({"port": 80, "targetPort": "http"}, {"metrics": 9090}, None),                  # a name not there
    ({"port": 53, "targetPort": "dns", "protocol": "UDP"}, {"dns": 5353}, None),    # the protocol must match
])
def test_find_port(svc_port: Obj, pod_ports: dict[str, int], expected: int | None) -> None:
    assert find_port(pod("p", ports=pod_ports), svc_port) == expected


def test_find_port_in_sidecar_init_container() -> None:
    p = pod("p")
    p["spec"]["initContainers"] = [{"name": "side", "restartPolicy": "Always",
                                    "ports": [{"name": "proxy", "containerPort": 15001}]},
                                   {"name": "init", "ports": [{"name": "once", "containerPort": 1}]}]
    assert find_port(p, {"port": 1, "targetPort": "proxy"}) == 15001
    assert find_port(p, {"port": 1, "targetPort": "once"}) is None


@pytest.mark.parametrize(("kwargs", "publish", "ready", "serving", "terminating"), [
    ({}, False, True, True, False),
    ({"ready": False}, False, False, False, False),
    ({"deleting": True}, False, False, True, True),                 # terminating: never ready ...
    ({"deleting": True}, True, True, True, True),                   # ... unless not-ready is published
    ({"ready": False}, True, True, False, False),
    ({"ready": False, "deleting": True}, False, False, False, True),
])
def test_endpoint_conditions(kwargs: Obj, publish: bool, ready: bool, serving: bool, terminating: bool) -> None:
    c = endpoint_conditions(pod("p", **kwargs), publish_not_ready=publish)
    assert (c.ready, c.serving, c.terminating) == (ready, serving, terminating)


@pytest.mark.parametrize(("kwargs", "terminating_ok", "included"), [
    ({}, False, True),
    ({"ip": ""}, False, False),                    # no IP yet
    ({"phase": "Succeeded"}, True, False),         # terminal
    ({"phase": "Failed"}, True, False),
    ({"deleting": True}, False, False),
    ({"deleting": True}, True, True),
    ({"ip": "fd00::1"}, False, False),             # IPv4 slices only
])
def test_should_be_in_endpoints(kwargs: Obj, terminating_ok: bool, included: bool) -> None:
    assert should_be_in_endpoints(pod("p", **kwargs), include_terminating=terminating_ok) is included


def test_named_ports_split_pods_into_port_groups_with_zone() -> None:
    pods = [pod("a", ip="10.0.0.1", ports={"http": 8080}), pod("b", ip="10.0.0.2", ports={"http": 8080}),
            pod("c", ip="10.0.0.3", ports={"http": 9090}, node="n2"), pod("d", ip="10.0.0.4", ports={})]
    groups = desired_groups(service(), pods, {"n1": "zone-a"})
    by_port = {k: sorted(e["targetRef"]["name"] for e in g.endpoints.values()) for k, g in groups.items()}
    assert by_port == {port_key([{"name": "http", "port": 8080}]): ["a", "b"],
                       port_key([{"name": "http", "port": 9090}]): ["c"],
                       (): ["d"]}                      # no port resolves: listed without ports, as kube does
    a = next(e for g in groups.values() for e in g.endpoints.values() if e["targetRef"]["name"] == "a")
    assert a["zone"] == "zone-a" and a["nodeName"] == "n1" and a["addresses"] == ["10.0.0.1"]
    c = next(e for g in groups.values() for e in g.endpoints.values() if e["targetRef"]["name"] == "c")
    assert "zone" not in c


def existing_slice(name: str, pods: list[Obj], port: int = 8080) -> Obj:
    svc = service()
    eps = next(iter(desired_groups(svc, pods, {}).values())).endpoints.values() if pods else []
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": "1",
                         "labels": {"team": "a", SERVICE_NAME_LABEL: "web", MANAGED_BY_LABEL: MANAGED_BY},
                         "ownerReferences": [{"kind": "Service", "uid": "svc-uid", "controller": True,
                                              "name": "web", "apiVersion": "v1"}]},
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}], "endpoints": list(eps)}


def pods_range(lo: int, hi: int, **kwargs: Any) -> list[Obj]:
    return [pod(f"p{i:03d}", ip=f"10.0.{i // 250}.{i % 250 + 1}", ports={"http": 8080}, **kwargs)
            for i in range(lo, hi)]


@pytest.mark.parametrize(("existing", "pods", "max_per", "expect"), [
    # (existing slices as (name, pod range)), desired pods range, max per slice,
    # expected (created slice sizes, updated slice names, deleted slice names)
    ([], (0, 5), 100, ([5], [], [])),
    ([], (0, 250), 100, ([100, 100, 50], [], [])),
    ([], (0, 0), 100, ([0], [], [])),                                    # the placeholder
    ([("s1", (0, 5))], (0, 5), 100, ([], [], [])),                       # nothing to do
    ([("s1", (0, 5))], (0, 6), 100, ([], ["s1"], [])),                   # the new one joins the slice
    ([("s1", (0, 5))], (1, 5), 100, ([], ["s1"], [])),                   # one removed in place
    ([("s1", (0, 5))], (5, 8), 100, ([], ["s1"], [])),                   # all replaced: the slice reused
    ([("s1", (0, 100))], (0, 101), 100, ([1], [], [])),                  # full: a new slice
    ([("s1", (0, 3)), ("s2", (3, 90))], (0, 95), 100, ([], ["s2"], [])),  # remainder into the fullest that fits
    ([("s1", (0, 99)), ("s2", (99, 100))], (0, 99), 100, ([], [], ["s2"])),
    ([("s1", (0, 4))], (0, 0), 100, ([], ["s1"], [])),                   # emptied: rewritten as placeholder
    ([("s1", (0, 4)), ("s2", (4, 8))], (0, 0), 100, ([], ["s1"], ["s2"])),
])
def test_plan_slices(existing: list[tuple[str, tuple[int, int]]], pods: tuple[int, int], max_per: int,
                     expect: tuple[list[int], list[str], list[str]]) -> None:
    svc = service()
    slices = [existing_slice(name, pods_range(*r)) for name, r in existing]
    plan = plan_slices(svc, slices, desired_groups(svc, pods_range(*pods), {}), max_per_slice=max_per)
    assert sorted((len(s["endpoints"]) for s in plan.create), reverse=True) == expect[0]
    assert sorted(s["metadata"]["name"] for s in plan.update) == expect[1]
    assert sorted(s["metadata"]["name"] for s in plan.delete) == expect[2]
    for s in plan.create:
        assert s["metadata"]["generateName"] == "web-"
        assert s["metadata"]["labels"][SERVICE_NAME_LABEL] == "web"
        assert s["metadata"]["ownerReferences"][0]["uid"] == "svc-uid"
    # Every desired endpoint ends up in exactly one slice.
    written = {s["metadata"].get("name"): s for s in slices}
    for s in plan.delete:
        written.pop(s["metadata"]["name"])
    for s in plan.update:
        written[s["metadata"]["name"]] = s
    names = [e["targetRef"]["name"] for s in [*written.values(), *plan.create] for e in s["endpoints"]]
    assert sorted(names) == sorted(p["metadata"]["name"] for p in pods_range(*pods))
    assert all(len(s["endpoints"]) <= max_per for s in [*written.values(), *plan.create])


def test_plan_rewrites_changed_conditions_in_place() -> None:
    svc = service()
    slices = [existing_slice("s1", pods_range(0, 3))]
    plan = plan_slices(svc, slices, desired_groups(svc, [*pods_range(0, 2), *pods_range(2, 3, ready=False)], {}))
    assert [s["metadata"]["name"] for s in plan.update] == ["s1"] and not plan.create and not plan.delete
    by_name = {e["targetRef"]["name"]: e["conditions"]["ready"] for e in plan.update[0]["endpoints"]}
    assert by_name == {"p000": True, "p001": True, "p002": False}


def test_plan_deletes_slices_of_another_service_with_the_same_name() -> None:
    svc = service()
    stale = existing_slice("old-owner", pods_range(0, 2))
    stale["metadata"]["ownerReferences"][0]["uid"] = "previous-service"
    plan = plan_slices(svc, [stale], desired_groups(svc, pods_range(0, 2), {}))
    # Not reused either: the garbage collector is deleting it with its old owner.
    assert [s["metadata"]["name"] for s in plan.delete] == ["old-owner"]
    assert [len(s["endpoints"]) for s in plan.create] == [2] and not plan.update


def test_pods_on_unknown_nodes_are_left_out_unless_published() -> None:
    pods = [pod("a", ports={"http": 8080}, node="n1"), pod("b", ip="10.0.0.2", ports={"http": 8080}, node="gone")]
    names = [e["targetRef"]["name"] for g in desired_groups(service(), pods, {}, nodes={"n1"}).values()
             for e in g.endpoints.values()]
    assert names == ["a"]
    published = desired_groups(service(publish=True), pods, {}, nodes={"n1"})
    assert sorted(e["targetRef"]["name"] for g in published.values() for e in g.endpoints.values()) == ["a", "b"]


def test_plan_deletes_slices_with_stale_ports_and_relabels() -> None:
    svc = service()
    old = existing_slice("old", pods_range(0, 2), port=7070)
    relabel = existing_slice("keep", pods_range(0, 2))
    relabel["metadata"]["labels"]["team"] = "b"
    plan = plan_slices(svc, [old, relabel], desired_groups(svc, pods_range(0, 2), {}))
    assert [s["metadata"]["name"] for s in plan.delete] == ["old"]
    assert [s["metadata"]["name"] for s in plan.update] == ["keep"]
    assert plan.update[0]["metadata"]["labels"]["team"] == "a"


# -- through the real API server ------------------------------------------------------------
async def test_endpointslices_follow_pods_over_the_api(apiserver: RunningServer) -> None:
    require_kubectl()
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(NSS, {"metadata": {"name": "eps"}})
        stop = asyncio.Event()
        sim = SimulatedNodes(client, [NodeSpec("eps-a", labels={"topology.kubernetes.io/zone": "zone-a"}),
                                      NodeSpec("eps-b")], renew_interval=5, pod_cidr="127.18.0.0/24")
        controller = EndpointSliceController(client, max_endpoints_per_slice=2)
        tasks = [asyncio.create_task(sim.run(stop)), asyncio.create_task(controller.run(stop))]
        try:
            svc = {"metadata": {"name": "web", "namespace": "eps", "labels": {"team": "a"}},
                   "spec": {"selector": {"app": "web"},
                            "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
            await client.create(SERVICES, svc)
            await client.create(SERVICES, {"metadata": {"name": "manual", "namespace": "eps"},
                                           "spec": {"ports": [{"port": 80}]}})
            for i, (node, number) in enumerate([("eps-a", 8080), ("eps-a", 8080), ("eps-b", 8080),
                                                ("eps-b", 9090)]):
                await client.create(PODS, {
                    "metadata": {"name": f"web-{i}", "namespace": "eps", "labels": {"app": "web"}},
                    "spec": {"nodeName": node, "containers": [
                        {"name": "c", "image": "echo", "ports": [{"name": "http", "containerPort": number}]}]}})

            async def slices() -> list[Obj]:
                items: list[Obj] = (await client.list(ENDPOINTSLICES, "eps",
                                                      label_selector=f"{SERVICE_NAME_LABEL}=web"))["items"]
                return items

            async def settled() -> list[Obj] | None:
                items = await slices()
                ready = [e for s in items for e in s.get("endpoints") or [] if e["conditions"]["ready"]]
                return items if len(ready) == 4 else None

            items = await eventually(settled, 20)
            by_port: dict[int, list[int]] = {}
            for s in items:
                by_port.setdefault(s["ports"][0]["port"], []).append(len(s["endpoints"]))
                assert s["metadata"]["labels"][MANAGED_BY_LABEL] == MANAGED_BY
                assert s["metadata"]["labels"]["team"] == "a"
                assert s["metadata"]["name"].startswith("web-")
                assert s["metadata"]["ownerReferences"][0]["kind"] == "Service"
                assert s["addressType"] == "IPv4"
            assert {k: sorted(v) for k, v in by_port.items()} == {8080: [1, 2], 9090: [1]}
            eps = {e["targetRef"]["name"]: e for s in items for e in s["endpoints"]}
            assert eps["web-0"]["zone"] == "zone-a" and eps["web-0"]["nodeName"] == "eps-a"
            assert "zone" not in eps["web-3"]
            assert all(e["addresses"][0].startswith("127.18.0.") for e in eps.values())
            # A Service without a selector gets no controller-made slices.
            manual = await client.list(ENDPOINTSLICES, "eps", label_selector=f"{SERVICE_NAME_LABEL}=manual")
            assert manual["items"] == []

            out = apiserver.kubectl("get", "endpointslices", "-n", "eps", "-l", f"{SERVICE_NAME_LABEL}=web").stdout
            assert "IPv4" in out and "8080" in out and "9090" in out
            assert eps["web-3"]["addresses"][0] in out

            # A deleted pod leaves; the others stay where they are (no churn).
            before = {s["metadata"]["name"] for s in items}
            await client.delete(PODS, "web-3", "eps")

            async def gone() -> list[Obj] | None:
                now = await slices()
                names = [e["targetRef"]["name"] for s in now for e in s.get("endpoints") or []]
                return now if sorted(names) == ["web-0", "web-1", "web-2"] else None

            after = await eventually(gone, 20)
            assert {s["metadata"]["name"] for s in after} < before
            # Relabelled out of the selector: removed.
            await client.patch(PODS, "web-2", {"metadata": {"labels": {"app": "other"}}}, "eps")

            async def two_left() -> bool:
                names = [e["targetRef"]["name"] for s in await slices() for e in s.get("endpoints") or []]
                return sorted(names) == ["web-0", "web-1"]

            await eventually(two_left, 20)
            # The Service goes: its slices go with it (ownerReference, garbage collector).
            await client.delete(SERVICES, "web", "eps")

            async def collected() -> bool:
                return not await slices()

            await eventually(collected, 20)
        finally:
            stop.set()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(t, 10)
