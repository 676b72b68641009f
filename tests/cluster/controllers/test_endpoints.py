"""Endpoints controller: subsets from pods (kube's repacking), then through the API server and kubectl."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from atoll.api.errors import NotFound
from atoll.client import Client, Resource
from atoll.cluster.controllers.endpoints import (
    ENDPOINTS,
    EndpointsController,
    desired_subsets,
    endpoints_labels,
    subsets_equal,
    truncate,
)
from atoll.cluster.controllers.endpointslice import (
    PODS,
    SERVICES,
    TRIGGER_TIME_ANNOTATION,
    EndpointSliceController,
)
from atoll.cluster.kubelet.simulated import NodeSpec, SimulatedNodes
from tests.cluster.controllers.test_endpointslice import pod, service
from tests.conftest import RunningServer, require_kubectl
from tests.waiting import eventually

Obj = dict[str, Any]
NSS = Resource("v1", "namespaces", namespaced=False)


def summary(subsets: list[Obj]) -> list[tuple[list[str], list[str], list[int]]]:
    return [([a["targetRef"]["name"] for a in s.get("addresses") or []],
             [a["targetRef"]["name"] for a in s.get("notReadyAddresses") or []],
             [p["port"] for p in s.get("ports") or []]) for s in subsets]


@pytest.mark.parametrize(("pods", "svc", "expected"), [
    # ready and not-ready pods with the same port share one subset
    ([pod("a", ip="10.0.0.2", ports={"http": 80}), pod("b", ip="10.0.0.1", ports={"http": 80}, ready=False)],
     service(), [(["a"], ["b"], [80])]),
    # addresses are sorted by IP
    ([pod("a", ip="10.0.0.9", ports={"http": 80}), pod("b", ip="10.0.0.10", ports={"http": 80})],
     service(), [(["a", "b"], [], [80])]),
    # different numbers for a named port: different subsets
    ([pod("a", ip="10.0.0.1", ports={"http": 80}), pod("b", ip="10.0.0.2", ports={"http": 81})],
     service(), [(["a"], [], [80]), (["b"], [], [81])]),
    # a pod without the named port is left out (kube skips the port, and so the pod)
    ([pod("a", ip="10.0.0.1", ports={"grpc": 80})], service(), []),
    # terminating pods are left out ...
    ([pod("a", ports={"http": 80}, deleting=True)], service(), []),
    # ... unless not-ready addresses are published: then everything is "ready"
    ([pod("a", ports={"http": 80}, deleting=True), pod("b", ip="10.0.0.2", ports={"http": 80}, ready=False)],
     service(publish=True), [(["a", "b"], [], [80])]),
    # terminal and IP-less pods never appear
    ([pod("a", phase="Succeeded", ports={"http": 80}), pod("b", ip="", ports={"http": 80})], service(), []),
    # two service ports: each pod lists both in one subset
    ([pod("a", ports={"http": 80, "metrics": 9090})],
     service([{"name": "http", "port": 80, "targetPort": "http"}, {"name": "m", "port": 90, "targetPort": "metrics"}]),
     [(["a"], [], [80, 9090])]),
    # headless without ports: addresses only
    ([pod("a")], service([], cluster_ip="None"), [(["a"], [], [])]),
    # not headless and no ports: nothing
    ([pod("a")], service([]), []),
])
def test_desired_subsets(pods: list[Obj], svc: Obj, expected: list[tuple[list[str], list[str], list[int]]]) -> None:
    got = desired_subsets(svc, pods)
    assert summary(got) == expected


def test_address_fields_and_hostname() -> None:
    p = pod("a", ports={"http": 80})
    p["spec"].update(hostname="a", subdomain="web")
    addr = desired_subsets(service(), [p])[0]["addresses"][0]
    assert addr == {"ip": "10.0.0.1", "nodeName": "n1", "hostname": "a",
                    "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"}}
    assert desired_subsets(service(), [p])[0]["ports"] == [{"name": "http", "port": 80, "protocol": "TCP"}]


@pytest.mark.parametrize(("ready", "not_ready", "limit", "kept", "truncated"), [
    (3, 2, 10, (3, 2), False),
    (8, 4, 10, (8, 2), True),       # ready addresses are kept first
    (12, 4, 10, (10, 0), True),
])
def test_truncate(ready: int, not_ready: int, limit: int, kept: tuple[int, int], truncated: bool) -> None:
    pods = [pod(f"r{i}", ip=f"10.0.0.{i + 1}", ports={"http": 80}) for i in range(ready)]
    pods += [pod(f"n{i}", ip=f"10.0.1.{i + 1}", ports={"http": 80}, ready=False) for i in range(not_ready)]
    out, cut = truncate(desired_subsets(service(), pods), limit)
    assert cut is truncated
    assert (sum(len(s.get("addresses") or []) for s in out), sum(len(s.get("notReadyAddresses") or [])
                                                                   for s in out)) == kept


def test_truncate_shares_the_cut_out_in_proportion() -> None:
    pods = [pod(f"a{i}", ip=f"10.0.0.{i + 1}", ports={"http": 80}) for i in range(6)]
    pods += [pod(f"b{i}", ip=f"10.0.1.{i + 1}", ports={"http": 81}) for i in range(3)]
    out, cut = truncate(desired_subsets(service(), pods), 6)
    assert cut and [len(s["addresses"]) for s in out] == [4, 2]      # ceil(6/9*6) = 4, then the 2 left


def test_subsets_equal_ignores_order_and_defaults() -> None:
    subsets = desired_subsets(service(), [pod("a", ip="10.0.0.1", ports={"http": 80}),
                                          pod("b", ip="10.0.0.2", ports={"http": 80})])
    shuffled = [{**subsets[0], "addresses": list(reversed(subsets[0]["addresses"]))}]
    assert subsets_equal(subsets, shuffled)
    assert not subsets_equal(subsets, [{**subsets[0], "addresses": subsets[0]["addresses"][:1]}])


@pytest.mark.parametrize(("cluster_ip", "labels", "expected"), [
    ("10.96.0.1", {"a": "b"}, {"a": "b"}),
    ("None", {"a": "b"}, {"a": "b", "service.kubernetes.io/headless": ""}),
    ("10.96.0.1", {"service.kubernetes.io/headless": ""}, {}),
])
def test_endpoints_labels(cluster_ip: str, labels: dict[str, str], expected: dict[str, str]) -> None:
    svc = service(cluster_ip=cluster_ip)
    svc["metadata"]["labels"] = labels
    assert endpoints_labels(svc) == expected


# -- through the real API server ------------------------------------------------------------
async def test_endpoints_over_the_api_and_kubectl(apiserver: RunningServer) -> None:
    require_kubectl()
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(NSS, {"metadata": {"name": "ep"}})
        stop = asyncio.Event()
        sim = SimulatedNodes(client, [NodeSpec("ep-node")], renew_interval=5, pod_cidr="127.19.0.0/24")
        # Left behind by Services deleted while no controller ran: removed at start (but not a leader record).
        for name, annotations in (("orphan", {}), ("lock", {"control-plane.alpha.kubernetes.io/leader": "{}"})):
            await client.create(ENDPOINTS, {"metadata": {"name": name, "namespace": "ep", "annotations": annotations},
                                            "subsets": []})
        controllers = [EndpointsController(client), EndpointSliceController(client)]
        tasks = [asyncio.create_task(sim.run(stop))] + [asyncio.create_task(c.run(stop)) for c in controllers]
        try:
            await client.create(SERVICES, {
                "metadata": {"name": "web", "namespace": "ep", "labels": {"team": "a"}},
                "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
            for i in range(2):
                await client.create(PODS, {"metadata": {"name": f"web-{i}", "namespace": "ep",
                                                        "labels": {"app": "web"}},
                                           "spec": {"nodeName": "ep-node",
                                                    "containers": [{"name": "c", "image": "echo"}]}})

            async def endpoints(count: int) -> Obj | None:
                try:
                    ep = await client.get(ENDPOINTS, "web", "ep")
                except NotFound:
                    return None
                ready = [a for s in ep.get("subsets") or [] for a in s.get("addresses") or []]
                return ep if len(ready) == count else None

            ep = await eventually(lambda: endpoints(2), 20)
            with pytest.raises(NotFound):
                await client.get(ENDPOINTS, "orphan", "ep")
            assert await client.get(ENDPOINTS, "lock", "ep")
            assert ep["metadata"]["labels"] == {"team": "a"}
            assert ep["metadata"]["annotations"][TRIGGER_TIME_ANNOTATION].endswith("Z")
            assert ep["subsets"][0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
            ips = [a["ip"] for a in ep["subsets"][0]["addresses"]]
            assert all(ip.startswith("127.19.0.") for ip in ips)

            got = apiserver.kubectl("get", "endpoints", "web", "-n", "ep").stdout
            assert f"{ips[0]}:8080" in got and f"{ips[1]}:8080" in got
            # kubectl 1.32 describes a Service's endpoints from its EndpointSlices.
            described = apiserver.kubectl("describe", "service", "web", "-n", "ep").stdout
            endpoint_line = next(line for line in described.splitlines() if line.startswith("Endpoints:"))
            assert f"{ips[0]}:8080" in endpoint_line and f"{ips[1]}:8080" in endpoint_line, described

            # Deleted by hand while the Service stays: recreated.
            await client.delete(ENDPOINTS, "web", "ep")
            await eventually(lambda: endpoints(2), 20)
            # A pod that stops being ready moves to notReadyAddresses.
            p0 = await client.get(PODS, "web-0", "ep")
            conds = [{**c, "status": "False"} if c["type"] == "Ready" else c for c in p0["status"]["conditions"]]
            await client.patch(PODS, "web-0", {"status": {"conditions": conds}}, "ep", subresource="status")

            async def not_ready() -> bool:
                ep = await endpoints(1)
                return ep is not None and [a["targetRef"]["name"] for s in ep["subsets"]
                                           for a in s.get("notReadyAddresses") or []] == ["web-0"]

            await eventually(not_ready, 20)
            # The Service goes: so do its Endpoints.
            await client.delete(SERVICES, "web", "ep")

            async def deleted() -> bool:
                try:
                    await client.get(ENDPOINTS, "web", "ep")
                except NotFound:
                    return True
                return False

            await eventually(deleted, 20)
        finally:
            stop.set()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(t, 10)
