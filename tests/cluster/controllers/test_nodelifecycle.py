"""Node lifecycle controller: health, taints and taint-based eviction, on a fake clock and for real."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from typing import Any

import pytest

from atoll.api.errors import NotFound
from atoll.client import Client, Resource
from atoll.cluster.controllers.nodelifecycle import (
    LEASES,
    NODES,
    NOT_READY,
    PODS,
    STOPPED_POSTING,
    UNREACHABLE,
    UNSCHEDULABLE,
    NodeHealth,
    NodeLifecycleController,
    desired_taints,
    eviction_delay,
    fully_disrupted,
    observe,
    reconcile_taints,
    rfc3339,
    silent_conditions,
    tolerates,
)
from atoll.cluster.kubelet.simulated import NodeSpec, SimulatedNodes
from atoll.machinery.informing import Informer
from tests.conftest import RunningServer
from tests.waiting import eventually

Obj = dict[str, Any]
NSS = Resource("v1", "namespaces", namespaced=False)
EVENTS = Resource("v1", "events", True, "Event")
T0 = 1_800_000_000.0


def node(name: str = "n1", *, ready: str | None = "True", heartbeat: str = "2026-01-01T00:00:00Z",
         taints: list[Obj] | None = None, unschedulable: bool = False, **conditions: str) -> Obj:
    conds = [{"type": t, "status": s} for t, s in conditions.items()]
    if ready is not None:
        conds.append({"type": "Ready", "status": ready, "reason": "KubeletReady", "lastHeartbeatTime": heartbeat,
                      "lastTransitionTime": "2026-01-01T00:00:00Z"})
    spec: Obj = {"taints": taints} if taints else {}
    if unschedulable:
        spec["unschedulable"] = True
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "1",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": spec, "status": {"conditions": conds}}


def lease(renew: str) -> Obj:
    return {"metadata": {"name": "n1", "namespace": "kube-node-lease"}, "spec": {"renewTime": renew}}


# -- pure logic --------------------------------------------------------------------------
@pytest.mark.parametrize(("obj", "expected"), [
    (node(), set()),
    (node(ready="False"), {(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")}),
    (node(ready="Unknown"), {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")}),
    (node(ready=None), set()),                                                         # no verdict yet
    (node(MemoryPressure="True", DiskPressure="False"), {("node.kubernetes.io/memory-pressure", "NoSchedule")}),
    (node(PIDPressure="True"), {("node.kubernetes.io/pid-pressure", "NoSchedule")}),
    (node(NetworkUnavailable="True"), {("node.kubernetes.io/network-unavailable", "NoSchedule")}),
    (node(unschedulable=True), {(UNSCHEDULABLE, "NoSchedule")}),
])
def test_desired_taints(obj: Obj, expected: set[tuple[str, str]]) -> None:
    assert desired_taints(obj) == expected
    assert desired_taints(obj, evicting=False) == {t for t in expected if t[1] != "NoExecute"}


@pytest.mark.parametrize(("nodes", "expected"), [
    ([], False),
    ([node("a")], False),
    ([node("a", ready="Unknown")], True),
    ([node("a", ready="Unknown"), node("b", ready="False"), node("c", ready=None)], True),
    ([node("a", ready="Unknown"), node("b")], False),
    # a node excluded from disruption checks does not count either way
    ([node("a", ready="Unknown"), {**node("b"), "metadata": {"name": "b", "labels": {
        "node.kubernetes.io/exclude-disruption": ""}}}], True),
])
def test_fully_disrupted(nodes: list[Obj], expected: bool) -> None:
    assert fully_disrupted(nodes) is expected


FOREIGN = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.mark.parametrize(("current", "desired", "expected"), [
    ([], set(), None),
    ([FOREIGN], set(), None),                                                    # not ours: left alone
    ([FOREIGN], {(UNREACHABLE, "NoExecute"), (UNREACHABLE, "NoSchedule")},
     [FOREIGN, {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": rfc3339(T0)},
      {"key": UNREACHABLE, "effect": "NoSchedule"}]),
    ([FOREIGN, {"key": UNREACHABLE, "effect": "NoExecute"}], set(), [FOREIGN]),   # ours: removed
    ([{"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": "x"}], {(NOT_READY, "NoExecute")},
     [{"key": NOT_READY, "effect": "NoExecute", "timeAdded": rfc3339(T0)}]),      # unreachable -> not-ready
    ([{"key": UNSCHEDULABLE, "effect": "NoSchedule"}], {(UNSCHEDULABLE, "NoSchedule")}, None),
])
def test_reconcile_taints(current: list[Obj], desired: set[tuple[str, str]], expected: list[Obj] | None) -> None:
    assert reconcile_taints(current, desired, T0) == expected


UNREACHABLE_NE = {"key": UNREACHABLE, "effect": "NoExecute"}


@pytest.mark.parametrize(("toleration", "taint", "expected"), [
    ({"key": UNREACHABLE, "operator": "Exists"}, UNREACHABLE_NE, True),
    ({"key": UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"}, UNREACHABLE_NE, False),
    ({"operator": "Exists"}, UNREACHABLE_NE, True),                                  # everything
    ({"key": "", "operator": "Equal"}, UNREACHABLE_NE, False),
    ({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoExecute"}, True),   # Equal by default
    ({"key": "k", "value": "w"}, {"key": "k", "value": "v", "effect": "NoExecute"}, False),
    ({"key": "other", "operator": "Exists"}, UNREACHABLE_NE, False),
])
def test_tolerates(toleration: Obj, taint: Obj, expected: bool) -> None:
    assert tolerates(toleration, taint) is expected


def tol(key: str = UNREACHABLE, seconds: int | None = None) -> Obj:
    t: Obj = {"key": key, "operator": "Exists", "effect": "NoExecute"}
    if seconds is not None:
        t["tolerationSeconds"] = seconds
    return t


@pytest.mark.parametrize(("taints", "tolerations", "expected"), [
    ([], [], None),                                                        # nothing to evict for
    ([{"key": "x", "effect": "NoSchedule"}], [], None),                    # only NoExecute evicts
    ([UNREACHABLE_NE], [], 0.0),                                           # untolerated: at once
    ([UNREACHABLE_NE], [tol(seconds=300)], 300.0),
    ([UNREACHABLE_NE], [tol()], None),                                     # no seconds: for ever
    ([UNREACHABLE_NE], [tol(seconds=-5)], 0.0),                            # negative: at once
    ([UNREACHABLE_NE, {"key": "k", "effect": "NoExecute"}], [tol(seconds=300)], 0.0),    # one untolerated
    ([UNREACHABLE_NE, {"key": "k", "effect": "NoExecute"}], [tol(seconds=300), tol("k", 60)], 60.0),  # smallest
    ([UNREACHABLE_NE, {"key": "k", "effect": "NoExecute"}], [tol(), tol("k", 60)], 60.0),
    ([UNREACHABLE_NE], [{"operator": "Exists"}, tol(seconds=5)], None),    # the first match is the one used
])
def test_eviction_delay(taints: list[Obj], tolerations: list[Obj], expected: float | None) -> None:
    assert eviction_delay(taints, tolerations) == expected


HB1, HB2 = "2026-01-01T00:00:00Z", "2026-01-01T00:00:10Z"
R1, R2 = "2026-01-01T00:00:00.000000Z", "2026-01-01T00:00:05.000000Z"


@pytest.mark.parametrize(("saved", "heartbeat", "renew", "probe"), [
    (None, HB1, R1, T0 + 100),                                             # first sight: a full grace period
    (NodeHealth(T0, HB1, R1), HB1, R1, T0),                                # nothing new
    (NodeHealth(T0, HB1, R1), HB2, R1, T0 + 100),                          # a new heartbeat
    (NodeHealth(T0, HB1, R1), HB1, R2, T0 + 100),                          # a renewed lease
    (NodeHealth(T0, HB1, R2), HB1, R1, T0),                                # an older lease counts for nothing
    (NodeHealth(T0, HB1, ""), HB1, R1, T0 + 100),                          # a first lease
])
def test_observe(saved: NodeHealth | None, heartbeat: str, renew: str, probe: float) -> None:
    assert observe(saved, node(heartbeat=heartbeat), lease(renew), T0 + 100).probe_time == probe


def test_observe_times_a_node_that_never_posted_from_its_creation() -> None:
    created = node(ready=None)
    created["metadata"]["creationTimestamp"] = rfc3339(T0)
    assert observe(None, created, None, T0 + 100).probe_time == T0


def test_silent_conditions() -> None:
    n = node(MemoryPressure="False")
    conds = silent_conditions(n, T0)
    assert conds is not None
    by_type = {c["type"]: c for c in conds}
    assert by_type["Ready"]["status"] == "Unknown" and by_type["Ready"]["reason"] == "NodeStatusUnknown"
    assert by_type["Ready"]["message"] == STOPPED_POSTING
    assert by_type["Ready"]["lastHeartbeatTime"] == "2026-01-01T00:00:00Z"      # kept: the last real one
    assert by_type["Ready"]["lastTransitionTime"] == rfc3339(T0)
    assert by_type["DiskPressure"]["reason"] == "NodeStatusNeverUpdated"
    assert silent_conditions({**n, "status": {"conditions": conds}}, T0 + 5) is None   # already Unknown


# -- the reconciler, on a fake client and a fake clock -------------------------------------
class FakeClient:
    """Records writes and applies node/pod merge patches to the controller's caches."""

    def __init__(self) -> None:
        self.controller: NodeLifecycleController | None = None
        self.calls: list[tuple[str, str, str, Any]] = []

    def _cache(self, res: Resource) -> Informer | None:
        assert self.controller is not None
        return {"nodes": self.controller.nodes, "pods": self.controller.pods}.get(res.plural)

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None, *,
                    subresource: str = "", **_: Any) -> Obj:
        self.calls.append(("patch", res.plural + (f"/{subresource}" if subresource else ""), name, patch))
        informer = self._cache(res)
        if informer is None:
            return {"metadata": {"name": name}}
        key = f"{namespace}/{name}" if namespace else name
        obj = copy.deepcopy(informer.lister.get(key))
        assert obj is not None
        for section in ("spec", "status"):
            for k, v in (patch.get(section) or {}).items():
                obj.setdefault(section, {})[k] = v
        informer.lister._cache[key] = obj
        return obj

    async def create(self, res: Resource, obj: Obj, namespace: str | None = None, **_: Any) -> Obj:
        self.calls.append(("create", res.plural, obj.get("reason", ""), obj))
        return {"metadata": {"name": f"ev-{len(self.calls)}"}}

    async def delete(self, res: Resource, name: str, namespace: str | None = None, **_: Any) -> Obj:
        self.calls.append(("delete", res.plural, name, None))
        informer = self._cache(res)
        if informer is not None:
            informer.lister._cache.pop(f"{namespace}/{name}", None)
        return {}

    def writes(self, kind: str, plural: str) -> list[tuple[str, Any]]:
        return [(c[2], c[3]) for c in self.calls if c[0] == kind and c[1] == plural]


def fake_pod(name: str, tolerations: list[Obj], node_name: str = "n1") -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "1"},
            "spec": {"nodeName": node_name, "tolerations": tolerations},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}


class Harness:
    def __init__(self) -> None:
        self.now = T0
        self.client = FakeClient()
        self.ctl = NodeLifecycleController(self.client, monitor_period=5, grace_period=40,  # type: ignore[arg-type]
                                           clock=lambda: self.now)
        self.client.controller = self.ctl

    def put(self, informer: Informer, key: str, obj: Obj, old: Obj | None = None) -> None:
        informer.lister._cache[key] = obj
        for h in informer._handlers:
            h("ADDED" if old is None else "MODIFIED", old, obj)

    def add_pod(self, pod: Obj) -> None:
        self.put(self.ctl.pods, f"ns/{pod['metadata']['name']}", pod)


async def test_silent_node_is_tainted_and_its_pods_evicted_on_time() -> None:
    h = Harness()
    h.put(h.ctl.nodes, "n1", node())
    h.put(h.ctl.nodes, "n2", node("n2"))                                  # one healthy node: not a full outage
    h.put(h.ctl.leases, "kube-node-lease/n1", lease(R1))
    h.add_pod(fake_pod("intolerant", []))
    h.add_pod(fake_pod("patient", [tol(seconds=300)]))
    h.add_pod(fake_pod("stubborn", [tol()]))
    h.add_pod(fake_pod("elsewhere", [], node_name="n2"))
    result = await h.ctl.reconcile("n1")
    assert result.requeue_after == 5                                       # healthy: nothing written but
    assert [(c[0], c[2]) for c in h.client.calls] == [("create", "RegisteredNode")]   # the registration event

    h.now += 41                                                            # silent past the grace period
    result = await h.ctl.reconcile("n1")
    status = h.client.writes("patch", "nodes/status")
    assert len(status) == 1
    ready = next(c for c in status[0][1]["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "Unknown" and ready["reason"] == "NodeStatusUnknown"
    taints = h.ctl.nodes.lister.get("n1")["spec"]["taints"]  # type: ignore[index]
    assert {(t["key"], t["effect"]) for t in taints} == {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")}
    reasons = [c[2] for c in h.client.calls if c[0] == "create"]
    assert "NodeNotReady" in reasons and "TaintManagerEviction" in reasons
    not_ready = {name for name, p in h.client.writes("patch", "pods/status")
                 if any(c["type"] == "Ready" and c["status"] == "False" for c in p["status"]["conditions"])}
    assert not_ready == {"intolerant", "patient", "stubborn"}
    assert [name for name, _ in h.client.writes("delete", "pods")] == ["intolerant"]
    disruption = [p for name, p in h.client.writes("patch", "pods/status") if name == "intolerant"
                  and any(c["type"] == "DisruptionTarget" for c in p["status"]["conditions"])]
    assert disruption and disruption[0]["status"]["conditions"][-1]["reason"] == "DeletionByTaintManager"
    assert result.requeue_after == 5                                       # min(monitor, 300 s left)

    h.now += 200
    await h.ctl.reconcile("n1")
    assert [name for name, _ in h.client.writes("delete", "pods")] == ["intolerant"]   # not yet
    h.now += 100
    await h.ctl.reconcile("n1")
    assert [name for name, _ in h.client.writes("delete", "pods")] == ["intolerant", "patient"]
    h.now += 10_000
    await h.ctl.reconcile("n1")
    assert [name for name, _ in h.client.writes("delete", "pods")] == ["intolerant", "patient"]  # stubborn stays


async def test_recovery_removes_taints_and_cancels_evictions() -> None:
    h = Harness()
    h.put(h.ctl.nodes, "n1", node())
    h.put(h.ctl.nodes, "n2", node("n2"))
    h.add_pod(fake_pod("patient", [tol(seconds=300)]))
    await h.ctl.reconcile("n1")
    h.now += 41
    await h.ctl.reconcile("n1")
    assert h.ctl.nodes.lister.get("n1")["spec"]["taints"]  # type: ignore[index]
    h.now += 10
    # The kubelet comes back: a new heartbeat with Ready True (its own status write keeps the taints).
    back = node(heartbeat=HB2, taints=h.ctl.nodes.lister.get("n1")["spec"]["taints"])  # type: ignore[index]
    h.put(h.ctl.nodes, "n1", back, old=h.ctl.nodes.lister.get("n1"))
    await h.ctl.reconcile("n1")
    assert not h.ctl.nodes.lister.get("n1")["spec"].get("taints")  # type: ignore[index]
    messages = [c[3]["message"] for c in h.client.calls if c[0] == "create"]
    assert "Cancelling deletion of Pod ns/patient" in messages
    h.now += 1000
    await h.ctl.reconcile("n1")
    assert h.client.writes("delete", "pods") == []


async def test_full_disruption_stops_evictions_until_a_node_is_back() -> None:
    h = Harness()
    h.put(h.ctl.nodes, "n1", node())
    h.add_pod(fake_pod("intolerant", []))
    await h.ctl.reconcile("n1")
    h.now += 41
    await h.ctl.reconcile("n1")                                            # the only node goes silent
    n1 = h.ctl.nodes.lister.get("n1")
    assert n1 is not None and h.ctl.disrupted
    assert {(t["key"], t["effect"]) for t in n1["spec"]["taints"]} == {(UNREACHABLE, "NoSchedule")}
    assert h.client.writes("delete", "pods") == []
    h.put(h.ctl.nodes, "n2", node("n2"))                                   # a Ready node appears
    h.now += 1
    await h.ctl.reconcile("n1")
    assert not h.ctl.disrupted
    n1 = h.ctl.nodes.lister.get("n1")
    assert n1 is not None and (UNREACHABLE, "NoExecute") in {(t["key"], t["effect"]) for t in n1["spec"]["taints"]}
    assert [name for name, _ in h.client.writes("delete", "pods")] == ["intolerant"]


@pytest.mark.parametrize(("start", "expected"), [
    (node(unschedulable=True), {(UNSCHEDULABLE, "NoSchedule")}),
    (node(ready="False"), {(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")}),
    (node(taints=[{"key": UNSCHEDULABLE, "effect": "NoSchedule"}]), set()),     # uncordoned
])
async def test_taints_follow_spec_and_kubelet_conditions(start: Obj, expected: set[tuple[str, str]]) -> None:
    h = Harness()
    h.put(h.ctl.nodes, "n1", start)
    h.put(h.ctl.nodes, "n2", node("n2"))
    await h.ctl.reconcile("n1")
    taints = h.ctl.nodes.lister.get("n1")["spec"].get("taints") or []  # type: ignore[index]
    assert {(t["key"], t["effect"]) for t in taints} == expected
    assert h.client.writes("patch", "nodes/status") == []                  # the kubelet's own verdict stands


# -- through the real API server -------------------------------------------------------------
async def test_dead_kubelet_over_the_api(apiserver: RunningServer) -> None:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(NSS, {"metadata": {"name": "nl"}})
        stop, dying_stop = asyncio.Event(), asyncio.Event()
        live = SimulatedNodes(client, [NodeSpec("nl-live")], renew_interval=0.3, pod_cidr="127.20.0.0/24")
        dying = SimulatedNodes(client, [NodeSpec("nl-dying")], renew_interval=0.3, pod_cidr="127.20.1.0/24")
        controller = NodeLifecycleController(client, monitor_period=0.3, grace_period=1.5)
        tasks = [asyncio.create_task(live.run(stop)), asyncio.create_task(controller.run(stop))]
        dying_task = asyncio.create_task(dying.run(dying_stop))
        revived: asyncio.Task[None] | None = None
        try:
            await eventually(lambda: _get(client, LEASES, "nl-dying", "kube-node-lease"), 10)
            pods = {"quick": [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                               "tolerationSeconds": 1}],
                    "forever": [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}]}
            for name, tolerations in pods.items():
                await client.create(PODS, {"metadata": {"name": name, "namespace": "nl"},
                                           "spec": {"nodeName": "nl-dying", "tolerations": tolerations,
                                                    "containers": [{"name": "c", "image": "echo"}]}})
            await client.create(PODS, {"metadata": {"name": "safe", "namespace": "nl"},
                                       "spec": {"nodeName": "nl-live", "containers": [{"name": "c", "image": "e"}]}})

            async def running() -> bool:
                items = (await client.list(PODS, "nl"))["items"]
                return len(items) == 3 and all(p.get("status", {}).get("phase") == "Running" for p in items)

            await eventually(running, 10)
            dying_stop.set()
            await asyncio.wait_for(dying_task, 10)

            async def unreachable() -> Obj | None:
                n = await client.get(NODES, "nl-dying")
                keys = {(t["key"], t["effect"]) for t in n.get("spec", {}).get("taints") or []}
                return n if {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")} <= keys else None

            n = await eventually(unreachable, 15)
            ready = next(c for c in n["status"]["conditions"] if c["type"] == "Ready")
            assert (ready["status"], ready["reason"], ready["message"]) == ("Unknown", "NodeStatusUnknown",
                                                                            STOPPED_POSTING)

            async def quick_evicted() -> Obj | None:
                p = await _get(client, PODS, "quick", "nl")
                return p if p is None or p["metadata"].get("deletionTimestamp") else None

            quick = await eventually(quick_evicted, 15)
            assert quick is None or any(c["type"] == "DisruptionTarget" for c in quick["status"]["conditions"])
            forever = await client.get(PODS, "forever", "nl")
            assert not forever["metadata"].get("deletionTimestamp")
            assert next(c for c in forever["status"]["conditions"] if c["type"] == "Ready")["status"] == "False"
            safe = await client.get(PODS, "safe", "nl")
            assert next(c for c in safe["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
            assert not (await client.get(NODES, "nl-live")).get("spec", {}).get("taints")
            events = (await client.list(EVENTS, "nl"))["items"] + (await client.list(EVENTS, "default"))["items"]
            reasons = {(e["reason"], e["message"]) for e in events}
            assert ("TaintManagerEviction", "Marking for deletion Pod nl/quick") in reasons
            assert ("NodeNotReady", "Node nl-dying status is now: NodeNotReady") in reasons

            # The kubelet comes back (a fresh process re-registers and posts Ready): the taints go.
            revived = asyncio.create_task(SimulatedNodes(client, [NodeSpec("nl-dying")], renew_interval=0.3,
                                                         pod_cidr="127.20.2.0/24").run(stop))

            async def recovered() -> bool:
                n = await client.get(NODES, "nl-dying")
                return not n.get("spec", {}).get("taints")

            await eventually(recovered, 15)
            # kubectl cordon / uncordon: the unschedulable taint follows spec.unschedulable.
            apiserver.kubectl("cordon", "nl-live")

            async def cordoned(want: bool) -> bool:
                n = await client.get(NODES, "nl-live")
                has = any(t["key"] == UNSCHEDULABLE for t in n.get("spec", {}).get("taints") or [])
                return has is want

            await eventually(lambda: cordoned(True), 10)
            apiserver.kubectl("uncordon", "nl-live")
            await eventually(lambda: cordoned(False), 10)
            # Anyone's NoExecute taint evicts what does not tolerate it (and stays: it is not ours).
            apiserver.kubectl("taint", "nodes", "nl-live", "dedicated=infra:NoExecute")

            async def safe_gone() -> bool:
                return await _get(client, PODS, "safe", "nl") is None

            await eventually(safe_gone, 10)
            taints = (await client.get(NODES, "nl-live"))["spec"]["taints"]
            assert [(t["key"], t["effect"]) for t in taints] == [("dedicated", "NoExecute")]
        finally:
            stop.set()
            dying_stop.set()
            for t in [*tasks, dying_task, *([revived] if revived else [])]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(t, 10)


async def _get(client: Client, res: Resource, name: str, namespace: str | None = None) -> Obj | None:
    try:
        obj: Obj = await client.get(res, name, namespace)
        return obj
    except NotFound:
        return None
