"""The scheduler as a controller: watch pods and nodes, place pending pods, bind them.

Pods for ``default-scheduler`` without ``spec.nodeName`` are queued; each is placed
with the framework over the informers' view plus pods this scheduler has bound but not
yet seen come back (the "assumed" pods, so two quick pods do not both take the last
slot). Binding goes through ``pods/binding``. A pod that fits nowhere gets
``PodScheduled=False`` (reason ``Unschedulable``) and a ``FailedScheduling`` Event, and
is retried when nodes or pods change.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from typing import Any, ClassVar

from atoll.api.errors import AlreadyExists, Conflict, NotFound
from atoll.client import Client, Resource
from atoll.cluster.scheduler.framework import Framework, NodeInfo
from atoll.cluster.scheduler.plugins import default_framework
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.informing import Informer, key_of, split_key

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = Resource("v1", "pods", True, "Pod")
NODES = Resource("v1", "nodes", False, "Node")
EVENTS = Resource("v1", "events", True, "Event")
SCHEDULER_NAME = "default-scheduler"
RETRY_UNSCHEDULABLE = 30.0


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_pending(pod: Obj) -> bool:
    spec, md = pod.get("spec") or {}, pod.get("metadata") or {}
    return (not spec.get("nodeName") and not md.get("deletionTimestamp")
            and (spec.get("schedulerName") or SCHEDULER_NAME) == SCHEDULER_NAME
            and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))


class SchedulerController(Controller):
    NAME: ClassVar[str] = "default-scheduler"
    workers = 1  # one decision at a time keeps the assumed-pod accounting simple and exact

    def __init__(self, client: Client, *, framework: Framework | None = None,
                 rng: random.Random | None = None) -> None:
        super().__init__()
        self.client = client
        self.framework = framework or default_framework(rng)
        self.pods = Informer(client, PODS)
        self.nodes = Informer(client, NODES)
        self._assumed: dict[str, tuple[str, Obj]] = {}
        self._infos: dict[str, NodeInfo] = {}
        """The scheduler cache: node name → node and the pods counted on it (bound or assumed)."""
        self._placed: dict[str, str] = {}
        """pod key → the node its requests are counted on."""
        self._binding: set[asyncio.Task[None]] = set()
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)
        self.informers += [self.pods, self.nodes]

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await super().run(stop)
        finally:
            # Bindings still in flight finish (or fail) before the scheduler is gone.
            if self._binding:
                await asyncio.wait(set(self._binding), timeout=10)
            for task in set(self._binding):
                task.cancel()

    # -- event handlers: only enqueue ------------------------------------------------------
    def _pending_keys(self) -> list[str]:
        return [key_of(p) for p in self.pods.lister.list() if is_pending(p)]

    def _count(self, key: str, pod: Obj, node: str | None) -> None:
        """Make ``pod``'s requests count on ``node`` (None: nowhere) in the cache."""
        previous = self._placed.pop(key, None)
        ns, name = split_key(key)
        if previous is not None and previous in self._infos:
            self._infos[previous].remove_pod(ns, name)
        if node is not None:
            self._placed[key] = node
            self._infos.setdefault(node, NodeInfo({"metadata": {"name": node}})).add_pod(pod)

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "DELETED" and old is not None:
            key = key_of(old)
            self._assumed.pop(key, None)
            self._count(key, old, None)
            if (old.get("spec") or {}).get("nodeName"):
                for k in self._pending_keys():  # capacity was freed
                    self.queue.add(k)
            return
        if new is None:
            return
        key = key_of(new)
        node = (new.get("spec") or {}).get("nodeName")
        terminal = (new.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if node:
            self._assumed.pop(key, None)
            self._count(key, new, None if terminal else node)
            if terminal and old is not None and (old.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                for k in self._pending_keys():
                    self.queue.add(k)
        elif is_pending(new) and key not in self._assumed:
            self.queue.add(key)

    def _on_node(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "DELETED" and old is not None:
            self._infos.pop(old["metadata"]["name"], None)
        elif new is not None:
            name = new["metadata"]["name"]
            info = self._infos.get(name)
            if info is None:
                self._infos[name] = NodeInfo(new)
            else:
                info.set_node(new)
        if event != "MODIFIED":
            for k in self._pending_keys():
                self.queue.add(k)

    # -- reconcile ---------------------------------------------------------------------------
    def node_infos(self) -> list[NodeInfo]:
        """Nodes the informer knows, with their counted pods (kept up to date by the handlers)."""
        known = {n["metadata"]["name"] for n in self.nodes.lister.list()}
        return [info for name, info in sorted(self._infos.items()) if name in known]

    async def reconcile(self, key: str) -> Result:
        pod = self.pods.lister.get(key)
        if pod is None or not is_pending(pod) or key in self._assumed:
            return Result()
        result = self.framework.schedule(pod, self.node_infos())
        if result.node is None:
            await self._unschedulable(pod, result.message or "0/0 nodes are available.")
            return Result(requeue_after=RETRY_UNSCHEDULABLE)
        # Assume the placement now and bind in the background (kube's binding cycle), so the
        # next pod is placed while this binding is in flight.
        self._assumed[key] = (result.node, pod)
        self._count(key, pod, result.node)
        task = asyncio.create_task(self._bind(key, pod, result.node), name=f"bind-{key}")
        self._binding.add(task)
        task.add_done_callback(self._binding.discard)
        return Result()

    async def _bind(self, key: str, pod: Obj, node: str) -> None:
        ns, name = split_key(key)
        try:
            await self.client.request("POST", PODS.path(ns, name, "binding"), body={
                "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
        except (Conflict, NotFound):
            self._forget_assumed(key)
            return  # bound elsewhere or gone meanwhile
        except Exception as exc:
            logger.info("binding %s to %s failed (%s); rescheduling", key, node, exc)
            self._forget_assumed(key)
            self.queue.add_rate_limited(key)
            return
        await self._event(pod, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {node}")

    def _forget_assumed(self, key: str) -> None:
        if self._assumed.pop(key, None) is not None:
            assumed_pod = self.pods.lister.get(key) or {"metadata": {}}
            self._count(key, assumed_pod, None)

    async def _unschedulable(self, pod: Obj, message: str) -> None:
        md = pod["metadata"]
        conditions = [c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") != "PodScheduled"]
        old = next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"),
                   None)
        if old and old.get("status") == "False" and old.get("message") == message:
            return
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                           "message": message, "lastProbeTime": None, "lastTransitionTime": _now()})
        try:
            await self.client.patch(PODS, md["name"], {"status": {"conditions": conditions}}, md.get("namespace"),
                                    subresource="status")
        except NotFound:
            return
        await self._event(pod, "Warning", "FailedScheduling", message)

    async def _event(self, pod: Obj, type_: str, reason: str, message: str) -> None:
        md = pod["metadata"]
        now = _now()
        event = {"apiVersion": "v1", "kind": "Event",
                 "metadata": {"generateName": f"{md['name']}.", "namespace": md.get("namespace")},
                 "involvedObject": {"kind": "Pod", "apiVersion": "v1", "name": md["name"],
                                    "namespace": md.get("namespace"), "uid": md.get("uid")},
                 "reason": reason, "message": message, "type": type_, "count": 1,
                 "firstTimestamp": now, "lastTimestamp": now,
                 "source": {"component": SCHEDULER_NAME}, "reportingComponent": SCHEDULER_NAME}
        try:
            await self.client.create(EVENTS, event)
        except (AlreadyExists, NotFound) as exc:
            logger.debug("event for %s not recorded: %s", md["name"], exc)
