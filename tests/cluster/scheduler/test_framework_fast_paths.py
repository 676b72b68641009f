"""The framework's fast paths (PreFilter/PreScore skips, batch filters and scores, chunked
sampling) decide exactly as the plain algorithm does: every filter on each node in turn,
first rejection wins, stop at the ``feasible_to_find``-th fit, score every feasible node
with every plugin, pick among the best by name with the same random draw."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from atoll.cluster.scheduler.framework import CycleContext, Framework, NodeInfo, ScheduleResult
from atoll.cluster.scheduler.plugins import (
    BalancedAllocation,
    NodeAffinity,
    NodeResourcesFit,
    NodeUnschedulable,
    PodTopologySpread,
    TaintToleration,
    default_framework,
)
from atoll.cluster.scheduler.resources import Resources

Obj = dict[str, Any]


class Reference:
    """The scheduling algorithm written the obvious way, over the same plugins' per-node methods."""

    def __init__(self, fw: Framework, rng: random.Random) -> None:
        self.fw = fw
        self.rng = rng
        self.next_start = 0

    def schedule(self, pod: Obj, nodes: list[NodeInfo]) -> ScheduleResult:
        ctx = CycleContext.for_pod(pod, nodes)
        feasible: list[NodeInfo] = []
        reasons: Counter[str] = Counter()
        wanted = self.fw.feasible_to_find(len(nodes))
        start = self.next_start % len(nodes) if nodes else 0
        checked = 0
        for i in range(len(nodes)):
            node = nodes[(start + i) % len(nodes)]
            checked += 1
            status = next((s for s in (p.filter(ctx, node) for p in self.fw.filters) if not s.ok), None)
            if status is None:
                feasible.append(node)
                if len(feasible) >= wanted:
                    break
            else:
                reasons.update(status.reasons)
        self.next_start = start + checked
        if not feasible:
            detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
            return ScheduleResult(None, f"0/{len(nodes)} nodes are available" + (f": {detail}." if detail else "."),
                                  dict(reasons))
        if len(feasible) == 1:
            return ScheduleResult(feasible[0].name, feasible=1)
        ctx.scored = feasible
        totals = {n.name: sum(w * p.score(ctx, n) for p, w in self.fw.scorers) for n in feasible}
        best = max(totals.values())
        return ScheduleResult(self.rng.choice(sorted(n for n, s in totals.items() if s == best)), scores=totals,
                              feasible=len(feasible))


def random_node(rng: random.Random, i: int) -> Obj:
    spec: Obj = {}
    roll = rng.random()
    if roll < 0.1:
        spec["taints"] = [{"key": "dedicated", "value": rng.choice(["gpu", "db"]), "effect": "NoSchedule"}]
    elif roll < 0.25:
        spec["taints"] = [{"key": "soft", "effect": "PreferNoSchedule"}]
    elif roll < 0.3:
        spec["unschedulable"] = True
    labels = {"zone": f"z{i % 3}", "disk": rng.choice(["ssd", "hdd"])}
    if rng.random() < 0.05:
        del labels["zone"]
    return {"metadata": {"name": f"n{i:04d}", "labels": labels}, "spec": spec,
            "status": {"allocatable": {"cpu": rng.choice(["1", "2", "4"]), "memory": rng.choice(["1Gi", "4Gi"]),
                                       "pods": str(rng.choice([3, 8, 110]))}}}


def random_pod(rng: random.Random, i: int) -> Obj:
    spec: Obj = {"containers": [{"name": "c", "resources": {"requests": {
        "cpu": rng.choice(["100m", "250m", "500m", "1"]), "memory": rng.choice(["64Mi", "256Mi", "1Gi"])}}}]}
    roll = rng.random()
    if roll < 0.1:
        spec["nodeSelector"] = {"disk": "ssd"}
    elif roll < 0.2:
        spec["affinity"] = {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z0", "z1"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "disk", "operator": "In",
                                                                     "values": ["ssd"]}]}}]}}
    elif roll < 0.3:
        spec["topologySpreadConstraints"] = [{"maxSkew": 1, "topologyKey": "zone",
                                              "whenUnsatisfiable": rng.choice(["DoNotSchedule", "ScheduleAnyway"]),
                                              "labelSelector": {"matchLabels": {"app": "web"}}}]
    if rng.random() < 0.2:
        spec["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    if rng.random() < 0.1:
        spec["tolerations"] = [{"key": "soft", "operator": "Exists", "effect": "PreferNoSchedule"}]
    if rng.random() < 0.02:
        spec["nodeName"] = f"n{rng.randrange(40):04d}"
    return {"metadata": {"name": f"p{i}", "namespace": "ns", "labels": {"app": rng.choice(["web", "db"])}},
            "spec": spec}


@pytest.mark.parametrize(("seed", "nodes", "pods"), [(1, 5, 40), (2, 60, 200), (3, 250, 300), (4, 1000, 120)])
def test_fast_paths_decide_as_the_plain_algorithm(seed: int, nodes: int, pods: int) -> None:
    rng = random.Random(seed)
    infos = [NodeInfo(random_node(rng, i)) for i in range(nodes)]
    by_name = {n.name: n for n in infos}
    fw = default_framework(random.Random(seed))
    ref = Reference(default_framework(), random.Random(seed))
    outcomes: Counter[str] = Counter()
    for i in range(pods):
        p = random_pod(rng, i)
        expected = ref.schedule(p, infos)
        got = fw.schedule(p, infos)
        assert got == expected, f"pod {i}"
        if got.node is not None:
            by_name[got.node].add_pod(p)
        outcomes["bound" if got.node else "unschedulable"] += 1
    assert outcomes["bound"] > 0
    if nodes < 100:  # small clusters fill up: rejections for lack of room are exercised too
        assert outcomes["unschedulable"] > 0


@pytest.mark.parametrize(("plugin", "p"), [
    (NodeResourcesFit(), {"spec": {"containers": [{"resources": {"requests": {"cpu": "1500m", "memory": "3Gi"}}}]}}),
    (NodeResourcesFit(), {"spec": {"containers": [{}]}}),
    (TaintToleration(), {"spec": {"tolerations": [{"key": "dedicated", "value": "gpu", "operator": "Equal"}]}}),
    (NodeUnschedulable(), {"spec": {}}),
    (NodeAffinity(), {"spec": {"nodeSelector": {"disk": "ssd"}}}),
    (PodTopologySpread(), {"metadata": {"namespace": "ns", "labels": {"app": "web"}},
                           "spec": {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
                                                                   "labelSelector": {"matchLabels": {"app": "web"}}}]}}),
])
def test_batch_filter_matches_per_node_filter(plugin: Any, p: Obj) -> None:
    rng = random.Random(9)
    infos = [NodeInfo(random_node(rng, i), [random_pod(rng, i * 10 + j) for j in range(rng.randrange(4))])
             for i in range(80)]
    p = {"metadata": {"name": "x", "namespace": "ns"}, **p}
    one = {i: s for i, n in enumerate(infos) if not (s := plugin.filter(CycleContext.for_pod(p, infos), n)).ok}
    batch = getattr(plugin, "filter_nodes", None)
    if batch is not None:
        assert batch(CycleContext.for_pod(p, infos), infos) == one
    assert one or isinstance(plugin, NodeAffinity | PodTopologySpread)  # the table rejects some nodes


@pytest.mark.parametrize("plugin", [NodeResourcesFit(), BalancedAllocation(), TaintToleration()])
def test_batch_scores_match_per_node_scores(plugin: Any) -> None:
    rng = random.Random(5)
    infos = [NodeInfo(random_node(rng, i), [random_pod(rng, i * 10 + j) for j in range(rng.randrange(5))])
             for i in range(60)]
    p = random_pod(rng, 999)
    ctx = CycleContext.for_pod(p, infos)
    ctx.scored = infos
    assert plugin.score_nodes(ctx, infos) == [plugin.score(ctx, n) for n in infos]
    assert all(0 <= s <= 100 for s in plugin.score_nodes(ctx, infos))


def test_pre_filter_skips_only_what_has_nothing_to_check() -> None:
    ctx = CycleContext.for_pod({"spec": {"containers": [{}]}}, [])
    assert not NodeAffinity().pre_filter(ctx).ok and NodeAffinity().pre_filter(ctx).code.value == "Skip"
    assert PodTopologySpread().pre_filter(ctx).code.value == "Skip"
    assert TaintToleration().pre_filter(ctx).ok  # taints can reject any pod: never skipped
    empty_terms = CycleContext.for_pod({"spec": {"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}}}, [])
    assert NodeAffinity().pre_filter(empty_terms).ok  # an empty term list matches nothing: it must run


def test_sampling_in_chunks_stops_where_the_plain_loop_stops() -> None:
    """Infeasible nodes in the first chunk make the next chunks small; the rotation point is the same."""
    infos = [NodeInfo({"metadata": {"name": f"n{i:04d}"}, "spec": {"unschedulable": i % 3 == 0},
                       "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}}) for i in range(500)]
    fw, ref = default_framework(random.Random(1)), Reference(default_framework(), random.Random(1))
    for i in range(12):
        p = {"metadata": {"name": f"p{i}", "namespace": "ns"}, "spec": {"containers": [{}]}}
        assert fw.schedule(p, infos) == ref.schedule(p, infos)
        assert fw._next_start == ref.next_start


def test_node_info_counts_each_pod_once() -> None:
    def pod(name: str, cpu: str) -> Obj:
        return {"metadata": {"name": name, "namespace": "ns"},
                "spec": {"containers": [{"resources": {"requests": {"cpu": cpu}}}]}}

    info = NodeInfo({"metadata": {"name": "n", "labels": {"a": "b"}}, "spec": {"taints": [{"key": "k"}]},
                     "status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "10"}}})
    assert (info.name, info.labels, info.allocatable, len(info.taints)) == ("n", {"a": "b"}, Resources(2000, 1024**3, 10),
                                                                            1)
    info.add_pod(pod("a", "500m"))
    info.add_pod(pod("b", "250m"))
    info.add_pod(pod("a", "100m"))  # a newer version of the same pod replaces the old one
    assert info.requested == Resources(350, 0, 2)
    assert [p["metadata"]["name"] for p in info.pods] == ["b", "a"]
    assert info.remove_pod("ns", "a") and not info.remove_pod("ns", "a")
    assert info.requested == Resources(250, 0, 1)
    info.set_node({"metadata": {"name": "n"}, "spec": {"unschedulable": True},
                   "status": {"allocatable": {"cpu": "1", "pods": "5"}}})
    assert info.unschedulable and info.taints == [] and info.allocatable == Resources(1000, 0, 5)
    assert info.requested == Resources(250, 0, 1)  # the node changed, its pods did not
