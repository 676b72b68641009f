"""Scheduler plugins and the framework, table-driven."""

from __future__ import annotations

import random
from typing import Any

import pytest

from atoll.cluster.scheduler.framework import CycleContext, NodeInfo
from atoll.cluster.scheduler.plugins import (
    BalancedAllocation,
    NodeAffinity,
    NodeName,
    NodeResourcesFit,
    NodeUnschedulable,
    PodTopologySpread,
    TaintToleration,
    default_framework,
)
from atoll.cluster.scheduler.resources import Resources, pod_requests

Obj = dict[str, Any]


def node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: int = 110, labels: dict | None = None,
         taints: list | None = None, unschedulable: bool = False) -> Obj:
    spec: Obj = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec,
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": str(pods)}}}


def pod(name: str = "p", *, cpu: str = "", memory: str = "", labels: dict | None = None, **spec: Any) -> Obj:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    container: Obj = {"name": "c", "image": "i", "resources": {"requests": requests} if requests else {}}
    return {"metadata": {"name": name, "namespace": "ns", "labels": labels or {}},
            "spec": {"containers": [container], **spec}}


def run_filter(plugin: Any, p: Obj, n: Obj, existing: list[Obj] | None = None) -> tuple[bool, tuple[str, ...]]:
    info = NodeInfo.build(n, existing or [])
    status = plugin.filter(CycleContext.for_pod(p, [info]), info)
    return status.ok, status.reasons


@pytest.mark.parametrize(("p", "expected"), [
    (pod(cpu="500m", memory="1Gi"), Resources(500, 1024**3, 1)),
    (pod(), Resources(0, 0, 1)),
    ({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}, {"resources": {"requests": {"cpu": "250m"}}}],
               "initContainers": [{"resources": {"requests": {"cpu": "2"}}}], "overhead": {"cpu": "100m"}}},
     Resources(2100, 0, 1)),
])
def test_pod_requests(p: Obj, expected: Resources) -> None:
    assert pod_requests(p) == expected


@pytest.mark.parametrize(("plugin", "p", "n", "existing", "ok", "reasons"), [
    (NodeResourcesFit(), pod(cpu="1"), node("n", cpu="2"), [pod("a", cpu="500m")], True, ()),
    (NodeResourcesFit(), pod(cpu="2"), node("n", cpu="2"), [pod("a", cpu="500m")], False, ("Insufficient cpu",)),
    (NodeResourcesFit(), pod(memory="2Gi"), node("n", memory="1Gi"), [], False, ("Insufficient memory",)),
    (NodeResourcesFit(), pod(), node("n", pods=1), [pod("a")], False, ("Too many pods",)),
    (NodeName(), pod(nodeName="n"), node("n"), [], True, ()),
    (NodeName(), pod(nodeName="m"), node("n"), [], False, ("node(s) didn't match the requested node name",)),
    (NodeUnschedulable(), pod(), node("n", unschedulable=True), [], False, ("node(s) were unschedulable",)),
    (NodeUnschedulable(), pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                            "effect": "NoSchedule"}]), node("n", unschedulable=True), [], True, ()),
    (NodeAffinity(), pod(nodeSelector={"zone": "a"}), node("n", labels={"zone": "a"}), [], True, ()),
    (NodeAffinity(), pod(nodeSelector={"zone": "a"}), node("n", labels={"zone": "b"}), [], False,
     ("node(s) didn't match Pod's node affinity/selector",)),
    (NodeAffinity(), pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]},
                              {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}]}}}),
     node("n", labels={"zone": "b"}), [], True, ()),
    (NodeAffinity(), pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["8"]}]}]}}}),
     node("n", labels={"cores": "4"}), [], False, ("node(s) didn't match Pod's node affinity/selector",)),
    (NodeAffinity(), pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}]}}}),
     node("n"), [], True, ()),
    (TaintToleration(), pod(), node("n", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]), [],
     False, ("node(s) had untolerated taint {dedicated: gpu}",)),
    (TaintToleration(), pod(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "gpu"}]),
     node("n", taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]), [], True, ()),
    (TaintToleration(), pod(), node("n", taints=[{"key": "soft", "effect": "PreferNoSchedule"}]), [], True, ()),
    (TaintToleration(), pod(tolerations=[{"operator": "Exists"}]),
     node("n", taints=[{"key": "x", "effect": "NoExecute"}]), [], True, ()),
])
def test_filters(plugin: Any, p: Obj, n: Obj, existing: list[Obj], ok: bool, reasons: tuple[str, ...]) -> None:
    assert run_filter(plugin, p, n, existing) == (ok, reasons)


def spread_pod(name: str, **kw: Any) -> Obj:
    return pod(name, labels={"app": "web"}, topologySpreadConstraints=[
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": {"app": "web"}}}], **kw)


def test_topology_spread_filter() -> None:
    a = NodeInfo.build(node("a", labels={"zone": "z1"}), [spread_pod("w1"), spread_pod("w2")])
    b = NodeInfo.build(node("b", labels={"zone": "z2"}), [spread_pod("w3")])
    c = NodeInfo.build(node("c", labels={}), [])
    ctx = CycleContext.for_pod(spread_pod("new"), [a, b, c])
    plugin = PodTopologySpread()
    assert not plugin.filter(ctx, a).ok  # z1 would have 3 vs min 1
    assert plugin.filter(ctx, b).ok
    assert not plugin.filter(ctx, c).ok  # no zone label


def test_scores_prefer_free_and_balanced_nodes() -> None:
    busy = NodeInfo.build(node("busy", cpu="4", memory="8Gi"), [pod("x", cpu="3", memory="1Gi")])
    idle = NodeInfo.build(node("idle", cpu="4", memory="8Gi"))
    ctx = CycleContext.for_pod(pod(cpu="500m", memory="1Gi"), [busy, idle])
    assert NodeResourcesFit().score(ctx, idle) > NodeResourcesFit().score(ctx, busy)
    assert BalancedAllocation().score(ctx, idle) > BalancedAllocation().score(ctx, busy)


def test_framework_picks_a_feasible_node_and_explains_failures() -> None:
    nodes = [NodeInfo.build(node("small", cpu="1")), NodeInfo.build(node("tainted", taints=[
        {"key": "k", "effect": "NoSchedule"}])), NodeInfo.build(node("big", cpu="8"))]
    fw = default_framework(random.Random(1))
    assert fw.schedule(pod(cpu="2"), nodes).node == "big"
    result = fw.schedule(pod(cpu="16"), nodes)
    assert result.node is None
    assert result.message == ("0/3 nodes are available: 2 Insufficient cpu, "
                              "1 node(s) had untolerated taint {k}.")


def test_framework_spreads_replicas_across_zones() -> None:
    fw = default_framework(random.Random(7))
    infos = [NodeInfo.build(node(f"n{i}", labels={"zone": f"z{i % 3}"})) for i in range(6)]
    zones = []
    for i in range(9):
        p = spread_pod(f"web-{i}", cpu="100m")
        chosen = fw.schedule(p, infos).node
        assert chosen is not None
        info = next(n for n in infos if n.name == chosen)
        info.add_pod(p)
        zones.append(info.labels["zone"])
    assert sorted(zones.count(z) for z in ("z0", "z1", "z2")) == [3, 3, 3]


@pytest.mark.parametrize(("total", "expected"), [(50, 50), (100, 100), (500, 230), (5000, 500), (20000, 1000)])
def test_adaptive_sampling(total: int, expected: int) -> None:
    assert default_framework().feasible_to_find(total) == expected


def test_sampling_rotates_through_nodes() -> None:
    fw = default_framework(random.Random(3))
    infos = [NodeInfo.build(node(f"n{i:04d}")) for i in range(1000)]
    chosen = {fw.schedule(pod(f"p{i}"), infos).node for i in range(20)}
    assert len(chosen) > 1 and fw.schedule(pod("x"), infos).feasible == fw.feasible_to_find(1000)
