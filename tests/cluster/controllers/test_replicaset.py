"""ReplicaSet controller with the scheduler and simulated nodes over a real API server."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from atoll.client import Client, Resource
from atoll.cluster.controllers.replicaset import PODS, REPLICASETS, ReplicaSetController, deletion_rank
from atoll.cluster.kubelet.simulated import NodeSpec, SimulatedNodes
from atoll.cluster.scheduler.controller import SchedulerController
from tests.conftest import RunningServer

NSS = Resource("v1", "namespaces", namespaced=False)


def p(name: str, *, node: str = "", ready: bool = False, created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    status = {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    return {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"nodeName": node}, "status": status}


@pytest.mark.parametrize(("pods", "first"), [
    ([p("a", node="n", ready=True), p("b")], "b"),                       # unscheduled first
    ([p("a", node="n", ready=True), p("b", node="n")], "b"),             # then not ready
    ([p("old", node="n", ready=True), p("new", node="n", ready=True, created="2026-02-01T00:00:00Z")], "new"),
])
def test_deletion_order(pods: list[dict[str, Any]], first: str) -> None:
    assert sorted(pods, key=deletion_rank)[0]["metadata"]["name"] == first


async def eventually(check: Any, timeout: float = 20.0) -> Any:
    async with asyncio.timeout(timeout):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.05)


async def test_replicaset_scales_reports_status_and_replaces_pods(apiserver: RunningServer) -> None:
    async with Client.from_kubeconfig(apiserver.kubeconfig) as client:
        await client.create(NSS, {"metadata": {"name": "rs"}})
        stop = asyncio.Event()
        sim = SimulatedNodes(client, [NodeSpec(f"rs-node-{i}") for i in range(2)], renew_interval=1)
        controllers = [SchedulerController(client), ReplicaSetController(client)]
        tasks = [asyncio.create_task(sim.run(stop))] + [asyncio.create_task(c.run(stop)) for c in controllers]
        try:
            rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web", "namespace": "rs"},
                  "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "c", "image": "echo"}]}}}}
            await client.create(REPLICASETS, rs)

            async def status_is(ready: int) -> bool:
                st = (await client.get(REPLICASETS, "web", "rs")).get("status") or {}
                return st.get("readyReplicas") == ready and st.get("availableReplicas") == ready \
                    and st.get("replicas") == ready

            await eventually(lambda: status_is(3))
            pods = (await client.list(PODS, "rs", label_selector="app=web"))["items"]
            assert len(pods) == 3 and all(x["metadata"]["name"].startswith("web-") for x in pods)
            assert all(x["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet" for x in pods)
            await client.patch(REPLICASETS, "web", {"spec": {"replicas": 5}}, "rs")
            await eventually(lambda: status_is(5))
            victim = pods[0]["metadata"]["name"]
            await client.delete(PODS, victim, "rs")

            async def replaced() -> bool:
                names = {x["metadata"]["name"] for x in (await client.list(PODS, "rs"))["items"]}
                return victim not in names and len(names) == 5

            await eventually(replaced)
            await client.patch(REPLICASETS, "web", {"spec": {"replicas": 1}}, "rs")
            await eventually(lambda: status_is(1))
            # An orphan with matching labels is adopted (and, being one too many, removed).
            await client.create(PODS, {"metadata": {"name": "stray", "namespace": "rs", "labels": {"app": "web"}},
                                       "spec": {"containers": [{"name": "c", "image": "echo"}]}})

            async def one_left() -> bool:
                return len((await client.list(PODS, "rs"))["items"]) == 1

            await eventually(one_left)
            st = (await client.get(REPLICASETS, "web", "rs"))["status"]
            assert st["observedGeneration"] == 3
        finally:
            stop.set()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(t, 10)


class RecordingClient:
    """Just enough of a Client for reconcile(): records writes, never shows them in the cache."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    async def create(self, res: Resource, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        self.created.append(obj)
        return obj

    async def patch(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {}

    async def delete(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {}


async def test_a_lagging_cache_never_makes_extra_pods() -> None:
    client = RecordingClient()
    ctl = ReplicaSetController(client)  # type: ignore[arg-type]
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "web", "namespace": "ns", "uid": "u1", "generation": 1},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                   "template": {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "c", "image": "echo"}]}}}}
    ctl.replicasets._source.cache["ns/web"] = rs
    await ctl.reconcile("ns/web")
    assert len(client.created) == 3
    # Another event before the informer saw the three pods: nothing more is created.
    await ctl.reconcile("ns/web")
    assert len(client.created) == 3
    # The informer sees them: the cache is trusted again, and it holds enough pods.
    for pod in client.created:
        pod = {**pod, "metadata": {**pod["metadata"], "uid": pod["metadata"]["name"]}}
        ctl.pods._source.cache[f"ns/{pod['metadata']['name']}"] = pod
        ctl.pods._emit("ADDED", None, pod)
    assert ctl.expectations.satisfied("ns/web")
    await ctl.reconcile("ns/web")
    assert len(client.created) == 3
