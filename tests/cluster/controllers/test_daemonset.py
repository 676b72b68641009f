"""DaemonSet controller: node eligibility, per-node and rolling-update decisions, then a real API server."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from atoll.client import Client, Resource
from atoll.cluster.controllers.daemonset import (
    DAEMONSETS,
    PODS,
    DaemonPod,
    DaemonSetController,
    NodeActions,
    daemon_pod_spec,
    manage_node,
    pin_to_node,
    rolling_update,
    scaled,
    should_run_on,
    target_node,
)
from atoll.cluster.controllers.history import REVISION_LABEL
from atoll.cluster.controllers.podgc import PodGCController
from atoll.cluster.kubelet.simulated import NODES, NodeSpec, SimulatedNodes
from atoll.cluster.scheduler.controller import SchedulerController
from tests.conftest import RunningServer, require_kubectl
from tests.waiting import eventually

NSS = Resource("v1", "namespaces", namespaced=False)


def node(name: str = "n1", *, labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None,
         unschedulable: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"taints": taints or []}
    if unschedulable:
        spec["unschedulable"] = True
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": spec}


NO_SCHEDULE = {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}
NO_EXECUTE = {"key": "dedicated", "value": "infra", "effect": "NoExecute"}
TOLERATE_INFRA = [{"key": "dedicated", "operator": "Equal", "value": "infra"}]
AFFINITY = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}]}}}


@pytest.mark.parametrize(("n", "spec", "expected"), [
    (node(), {}, (True, True)),
    (node(labels={"role": "db"}), {"nodeSelector": {"role": "db"}}, (True, True)),
    (node(labels={"role": "web"}), {"nodeSelector": {"role": "db"}}, (False, False)),
    (node(labels={"zone": "b"}), {"affinity": AFFINITY}, (True, True)),
    (node(labels={"zone": "c"}), {"affinity": AFFINITY}, (False, False)),
    (node(taints=[NO_SCHEDULE]), {}, (False, True)),          # keeps a pod it already runs
    (node(taints=[NO_EXECUTE]), {}, (False, False)),          # evicts it
    (node(taints=[NO_SCHEDULE, NO_EXECUTE]), {"tolerations": TOLERATE_INFRA}, (True, True)),
    (node("n1"), {"nodeName": "n2"}, (False, False)),
    # kube's default daemon tolerations cover cordoned and not-ready nodes.
    (node(taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}], unschedulable=True),
     daemon_pod_spec({}), (True, True)),
    (node(taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]), daemon_pod_spec({}), (True, True)),
    (node(taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]), daemon_pod_spec({}),
     (False, True)),
    (node(taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
     daemon_pod_spec({"hostNetwork": True}), (True, True)),
])
def test_should_run_on(n: dict[str, Any], spec: dict[str, Any], expected: tuple[bool, bool]) -> None:
    assert should_run_on(n, spec) == expected


def test_default_tolerations_are_added_once() -> None:
    spec = daemon_pod_spec({"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                             "effect": "NoExecute", "tolerationSeconds": 5}]})
    keys = [(t["key"], t["effect"]) for t in spec["tolerations"]]
    assert len(keys) == len(set(keys)) == 6
    assert spec["tolerations"][0]["tolerationSeconds"] == 5


@pytest.mark.parametrize(("spec", "terms"), [
    ({}, [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
    ({"affinity": AFFINITY}, [{"matchExpressions": AFFINITY["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"],
        "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]),
])
def test_pin_to_node(spec: dict[str, Any], terms: list[dict[str, Any]]) -> None:
    pinned = pin_to_node(spec, "n1")
    got = pinned["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert got == terms
    assert target_node({"spec": pinned}) == "n1"
    assert target_node({"spec": {**pinned, "nodeName": "n9"}}) == "n9"


def dp(name: str, hash_: str = "new", *, phase: str = "Running", ready: bool = True, available: bool | None = None,
       terminating: bool = False, created: str = "") -> DaemonPod:
    return DaemonPod(name=name, hash=hash_, phase=phase, ready=ready,
                     available=ready if available is None else available, terminating=terminating,
                     created=created or name)


@pytest.mark.parametrize(("pods", "kw", "expected"), [
    ([], {"should_run": True, "should_continue": True}, NodeActions(create=True)),
    ([], {"should_run": False, "should_continue": True}, NodeActions()),
    ([dp("a")], {"should_run": True, "should_continue": True}, NodeActions()),
    ([dp("a", terminating=True)], {"should_run": True, "should_continue": True}, NodeActions()),  # wait for it
    ([dp("a")], {"should_run": False, "should_continue": False}, NodeActions(delete=("a",))),
    ([dp("a")], {"should_run": False, "should_continue": True}, NodeActions()),
    ([dp("a", phase="Failed")], {"should_run": True, "should_continue": True},
     NodeActions(delete=("a",), failed=("a",))),
    ([dp("a", phase="Failed")], {"should_run": True, "should_continue": True, "failed_allowed": False},
     NodeActions()),
    ([dp("a", created="1"), dp("b", created="2")], {"should_run": True, "should_continue": True},
     NodeActions(delete=("b",))),
    # Surging: keep a not-yet-ready new pod and a ready old one; otherwise only the new one.
    ([dp("old", "old"), dp("new", ready=False)], {"should_run": True, "should_continue": True, "surge": True,
                                                 "hash_": "new"}, NodeActions()),
    ([dp("old", "old"), dp("new")], {"should_run": True, "should_continue": True, "surge": True, "hash_": "new"},
     NodeActions(delete=("old",))),
])
def test_manage_node(pods: list[DaemonPod], kw: dict[str, Any], expected: NodeActions) -> None:
    assert manage_node(pods, **kw) == expected


@pytest.mark.parametrize(("nodes", "kw", "expected"), [
    # maxSurge 0: delete up to maxUnavailable old pods; unavailable old pods always; new unavailable ones count.
    ({"a": (True, [dp("a", "old")]), "b": (True, [dp("b", "old")]), "c": (True, [dp("c", "old")])},
     {"max_unavailable": 1, "max_surge": 0}, (["a"], [])),
    ({"a": (True, [dp("a", "old")]), "b": (True, [dp("b", "old")]), "c": (True, [dp("c", "old")])},
     {"max_unavailable": 2, "max_surge": 0}, (["a", "b"], [])),
    ({"a": (True, [dp("a", ready=False)]), "b": (True, [dp("b", "old")])},
     {"max_unavailable": 1, "max_surge": 0}, ([], [])),
    ({"a": (True, [dp("a", "old", ready=False)]), "b": (True, [dp("b", "old")])},
     {"max_unavailable": 1, "max_surge": 0}, (["a"], [])),
    ({"a": (True, [dp("a")]), "b": (True, [dp("b")])}, {"max_unavailable": 1, "max_surge": 0}, ([], [])),
    # maxSurge: a new pod next to the old one, the old one deleted once the new one is available.
    ({"a": (True, [dp("a", "old")]), "b": (True, [dp("b", "old")])}, {"max_unavailable": 0, "max_surge": 1},
     ([], ["a"])),
    ({"a": (True, [dp("a", "old"), dp("a2", ready=False)]), "b": (True, [dp("b", "old")])},
     {"max_unavailable": 0, "max_surge": 1}, ([], [])),
    ({"a": (True, [dp("a", "old"), dp("a2")]), "b": (True, [dp("b", "old")])},
     {"max_unavailable": 0, "max_surge": 1}, (["a"], ["b"])),
    ({"a": (True, [dp("a", "old", ready=False)]), "b": (True, [dp("b", "old")])},
     {"max_unavailable": 0, "max_surge": 1}, ([], ["a", "b"])),
    ({"a": (False, [dp("a", "old")])}, {"max_unavailable": 0, "max_surge": 1}, (["a"], [])),
])
def test_rolling_update(nodes: dict[str, tuple[bool, list[DaemonPod]]], kw: dict[str, Any],
                        expected: tuple[list[str], list[str]]) -> None:
    assert rolling_update(nodes, hash_="new", **kw) == expected


@pytest.mark.parametrize(("value", "total", "expected"), [(1, 10, 1), ("25%", 10, 3), ("0%", 10, 0), (None, 5, 0)])
def test_scaled(value: Any, total: int, expected: int) -> None:
    assert scaled(value, total) == expected


def daemonset(name: str, ns: str, *, image: str = "v1", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}, **spec}}


async def test_daemonset_follows_nodes_updates_and_reports_status(apiserver: RunningServer) -> None:
    require_kubectl()
    ns = "ds"
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(NSS, {"metadata": {"name": ns}})
        stop, late_stop = asyncio.Event(), asyncio.Event()
        specs = [NodeSpec("ds-a", labels={"role": "worker"}), NodeSpec("ds-b", labels={"role": "worker"}),
                 NodeSpec("ds-c", labels={"role": "worker"}, taints=({"key": "dedicated", "value": "infra",
                                                                     "effect": "NoSchedule"},)),
                 NodeSpec("ds-other")]
        sim = SimulatedNodes(client, specs, renew_interval=1)
        late = SimulatedNodes(client, [NodeSpec("ds-d", labels={"role": "worker"})], renew_interval=1)
        controllers = [SchedulerController(client), DaemonSetController(client, failed_pod_backoff=(0.1, 1.0)),
                       PodGCController(client, interval=0.2, quarantine=0.2)]  # collects pods of deleted nodes
        tasks = [asyncio.create_task(sim.run(stop))] + [asyncio.create_task(c.run(stop)) for c in controllers]
        try:
            agent = daemonset("agent", ns)
            agent["spec"]["template"]["spec"]["nodeSelector"] = {"role": "worker"}
            await client.create(DAEMONSETS, agent)

            async def status(**want: Any) -> dict[str, Any] | None:
                ds = await client.get(DAEMONSETS, "agent", ns)
                st = ds.get("status") or {}
                ok = st.get("observedGeneration") == ds["metadata"]["generation"]
                return st if ok and all(st.get(k) == v for k, v in want.items()) else None

            async def placement() -> dict[str, str]:
                pods = (await client.list(PODS, ns, label_selector="app=agent"))["items"]
                return {p["spec"].get("nodeName", ""): p["metadata"]["labels"][REVISION_LABEL] for p in pods
                        if not p["metadata"].get("deletionTimestamp")}

            await eventually(lambda: status(desiredNumberScheduled=2, numberReady=2, numberAvailable=2,
                                            updatedNumberScheduled=2, currentNumberScheduled=2,
                                            numberMisscheduled=0), timeout=30)
            out = await asyncio.to_thread(apiserver.kubectl, "rollout", "status", "daemonset/agent", "-n", ns,
                                          "--timeout=30s", timeout=40)
            assert "successfully rolled out" in out.stdout
            assert set(await placement()) == {"ds-a", "ds-b"}  # not the tainted ds-c, not the unlabelled one
            pod = (await client.list(PODS, ns, label_selector="app=agent"))["items"][0]
            keys = {t["key"] for t in pod["spec"]["tolerations"]}
            assert "node.kubernetes.io/unschedulable" in keys and "node.kubernetes.io/not-ready" in keys

            # A node joining gets a pod.
            tasks.append(asyncio.create_task(late.run(late_stop)))
            await eventually(lambda: status(desiredNumberScheduled=3, numberReady=3), timeout=30)
            assert set(await placement()) == {"ds-a", "ds-b", "ds-d"}

            # A rolling update (maxUnavailable 1) replaces every pod; rollout status waits for it.
            await client.patch(DAEMONSETS, "agent", {"spec": {"template": {"spec": {"containers": [
                {"name": "c", "image": "v2"}]}}}}, ns, patch_type="strategic")
            out = await asyncio.to_thread(apiserver.kubectl, "rollout", "status", "daemonset/agent", "-n", ns,
                                          "--timeout=40s", timeout=50)
            assert "successfully rolled out" in out.stdout
            hashes = await eventually(lambda: _single_revision(placement), timeout=20)
            assert len(hashes) == 1
            images = {p["spec"]["containers"][0]["image"]
                      for p in (await client.list(PODS, ns, label_selector="app=agent"))["items"]}
            assert images == {"v2"}
            history = await asyncio.to_thread(apiserver.kubectl, "rollout", "history", "daemonset/agent", "-n", ns)
            assert [line.split()[0] for line in history.stdout.splitlines()[2:] if line.strip()] == ["1", "2"]
            await asyncio.to_thread(apiserver.kubectl, "rollout", "undo", "daemonset/agent", "-n", ns)
            await asyncio.to_thread(apiserver.kubectl, "rollout", "status", "daemonset/agent", "-n", ns,
                                    "--timeout=40s", timeout=50)

            async def images_are(wanted: set[str]) -> bool:
                pods = (await client.list(PODS, ns, label_selector="app=agent"))["items"]
                return {p["spec"]["containers"][0]["image"] for p in pods
                        if not p["metadata"].get("deletionTimestamp")} == wanted

            await eventually(lambda: images_are({"v1"}), timeout=20)

            # A failed daemon pod is replaced.
            victim = next(p for p in (await client.list(PODS, ns, label_selector="app=agent"))["items"]
                          if p["spec"].get("nodeName") == "ds-a")
            await client.patch(PODS, victim["metadata"]["name"], {"status": {"phase": "Failed"}}, ns,
                               subresource="status")

            async def replaced() -> bool:
                pods = (await client.list(PODS, ns, label_selector="app=agent"))["items"]
                on_a = [p for p in pods if p["spec"].get("nodeName") == "ds-a"]
                return len(on_a) == 1 and on_a[0]["metadata"]["uid"] != victim["metadata"]["uid"] \
                    and (on_a[0].get("status") or {}).get("phase") == "Running"

            await eventually(replaced, timeout=20)

            # A node leaving takes its pod with it; a node labelled out of the selector loses its pod.
            late_stop.set()
            await client.delete(NODES, "ds-d")
            await client.patch(NODES, "ds-b", {"metadata": {"labels": {"role": None}}})
            await eventually(lambda: status(desiredNumberScheduled=1, numberReady=1, numberMisscheduled=0),
                             timeout=30)

            async def only_on_a() -> bool:
                return set(await placement()) == {"ds-a"}

            await eventually(only_on_a, timeout=20)
            events = Resource("v1", "events", True, "Event")
            reasons = {e["reason"] for e in (await client.list(events, ns))["items"]
                       if e["involvedObject"].get("kind") == "DaemonSet"}
            assert {"SuccessfulCreate", "SuccessfulDelete", "FailedDaemonPod"} <= reasons
        finally:
            stop.set()
            late_stop.set()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(t, 10)
            for spec in specs:
                with contextlib.suppress(Exception):
                    await client.delete(NODES, spec.name)


async def _single_revision(placement: Any) -> set[str] | None:
    hashes = set((await placement()).values())
    return hashes if len(hashes) == 1 else None


async def test_daemonset_surge_update(apiserver: RunningServer) -> None:
    ns = "ds-surge"
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(NSS, {"metadata": {"name": ns}})
        stop = asyncio.Event()
        specs = [NodeSpec(f"{ns}-{i}", labels={"pool": ns}) for i in range(3)]
        sim = SimulatedNodes(client, specs, renew_interval=1)
        controllers = [SchedulerController(client), DaemonSetController(client)]
        tasks = [asyncio.create_task(sim.run(stop))] + [asyncio.create_task(c.run(stop)) for c in controllers]
        try:
            ds = daemonset("surge", ns, updateStrategy={"type": "RollingUpdate",
                                                        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
            ds["spec"]["template"]["spec"]["nodeSelector"] = {"pool": ns}
            await client.create(DAEMONSETS, ds)

            async def status(**want: Any) -> dict[str, Any] | None:
                obj = await client.get(DAEMONSETS, "surge", ns)
                st = obj.get("status") or {}
                ok = st.get("observedGeneration") == obj["metadata"]["generation"]
                return st if ok and all(st.get(k) == v for k, v in want.items()) else None

            await eventually(lambda: status(desiredNumberScheduled=3, numberAvailable=3, updatedNumberScheduled=3),
                             timeout=30)
            await client.patch(DAEMONSETS, "surge", {"spec": {"template": {"metadata": {"labels": {
                "app": "surge", "v": "2"}}}}}, ns, patch_type="strategic")
            seen_max = 0

            async def done() -> dict[str, Any] | None:
                nonlocal seen_max
                live = [p for p in (await client.list(PODS, ns))["items"] if not p["metadata"].get("deletionTimestamp")]
                seen_max = max(seen_max, len(live))
                st = await status(desiredNumberScheduled=3, numberAvailable=3, updatedNumberScheduled=3)
                return st if st and len(live) == 3 and all(p["metadata"]["labels"].get("v") == "2" for p in live) \
                    else None

            await eventually(done, timeout=30)
            assert seen_max <= 4  # maxSurge 1: never more than one extra pod
        finally:
            stop.set()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(t, 10)
            for spec in specs:
                with contextlib.suppress(Exception):
                    await client.delete(NODES, spec.name)


async def test_daemonset_on_delete(apiserver: RunningServer) -> None:
    ns = "ds-ondelete"
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(NSS, {"metadata": {"name": ns}})
        stop = asyncio.Event()
        specs = [NodeSpec(f"{ns}-{i}", labels={"pool": ns}) for i in range(2)]
        sim = SimulatedNodes(client, specs, renew_interval=1)
        controllers = [SchedulerController(client), DaemonSetController(client)]
        tasks = [asyncio.create_task(sim.run(stop))] + [asyncio.create_task(c.run(stop)) for c in controllers]
        try:
            # An orphan that matches the selector on one node is adopted, not duplicated.
            orphan = await client.create(PODS, {"metadata": {"name": "stray", "namespace": ns, "labels": {"app": "od"}},
                                                "spec": {"nodeName": f"{ns}-0",
                                                         "containers": [{"name": "c", "image": "v1"}]}})
            ds = daemonset("od", ns, updateStrategy={"type": "OnDelete"})
            ds["spec"]["template"]["spec"]["nodeSelector"] = {"pool": ns}
            await client.create(DAEMONSETS, ds)

            async def status(**want: Any) -> dict[str, Any] | None:
                obj = await client.get(DAEMONSETS, "od", ns)
                st = obj.get("status") or {}
                ok = st.get("observedGeneration") == obj["metadata"]["generation"]
                return st if ok and all(st.get(k) == v for k, v in want.items()) else None

            # The adopted pod has no revision label: it counts as not updated (OnDelete leaves it be).
            await eventually(lambda: status(desiredNumberScheduled=2, numberAvailable=2, updatedNumberScheduled=1),
                             timeout=30)
            stray = await client.get(PODS, "stray", ns)
            assert stray["metadata"]["uid"] == orphan["metadata"]["uid"]
            assert stray["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
            assert len((await client.list(PODS, ns))["items"]) == 2
            await client.patch(DAEMONSETS, "od", {"spec": {"template": {"metadata": {"labels": {
                "app": "od", "v": "2"}}}}}, ns, patch_type="strategic")
            await eventually(lambda: status(numberAvailable=2, updatedNumberScheduled=0), timeout=20)
            await asyncio.sleep(0.5)  # nothing is replaced on its own
            pods = (await client.list(PODS, ns))["items"]
            assert len(pods) == 2 and all("v" not in p["metadata"]["labels"] for p in pods)
            await client.delete(PODS, pods[0]["metadata"]["name"], ns)
            await eventually(lambda: status(numberAvailable=2, updatedNumberScheduled=1), timeout=20)
        finally:
            stop.set()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(t, 10)
            for spec in specs:
                with contextlib.suppress(Exception):
                    await client.delete(NODES, spec.name)
