"""The scheduler as a controller: watch pods and nodes, place pending pods, bind them.

Pods for ``default-scheduler`` without ``spec.nodeName`` are queued; each is placed
with the framework over the informers' view plus pods this scheduler has bound but not
yet seen come back (the "assumed" pods, so two quick pods do not both take the last
slot). Binding goes through ``pods/binding``. A pod that fits nowhere gets
``PodScheduled=False`` (reason ``Unschedulable``) and a ``FailedScheduling`` Event, and
is retried when nodes or pods change.
"""

from __future__ import annotations

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
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)
        self.informers += [self.pods, self.nodes]

    # -- event handlers: only enqueue ------------------------------------------------------
    def _pending_keys(self) -> list[str]:
        return [key_of(p) for p in self.pods.lister.list() if is_pending(p)]

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if new is not None:
            key = key_of(new)
            if (new.get("spec") or {}).get("nodeName"):
                self._assumed.pop(key, None)
            elif is_pending(new):
                self.queue.add(key)
        if event == "DELETED" and old is not None:
            self._assumed.pop(key_of(old), None)
            if (old.get("spec") or {}).get("nodeName"):
                for k in self._pending_keys():  # capacity was freed
                    self.queue.add(k)

    def _on_node(self, event: str, old: Obj | None, new: Obj | None) -> None:
        del event, old, new
        for k in self._pending_keys():
            self.queue.add(k)

    # -- reconcile ---------------------------------------------------------------------------
    def node_infos(self) -> list[NodeInfo]:
        infos = {n["metadata"]["name"]: NodeInfo(n) for n in self.nodes.lister.list()}
        for pod in self.pods.lister.list():
            node = (pod.get("spec") or {}).get("nodeName")
            phase = (pod.get("status") or {}).get("phase")
            if node in infos and phase not in ("Succeeded", "Failed"):
                infos[node].add_pod(pod)
        for _key, (node, pod) in self._assumed.items():
            if node in infos:
                infos[node].add_pod(pod)
        return sorted(infos.values(), key=lambda i: i.name)

    async def reconcile(self, key: str) -> Result:
        pod = self.pods.lister.get(key)
        if pod is None or not is_pending(pod) or key in self._assumed:
            return Result()
        result = self.framework.schedule(pod, self.node_infos())
        ns, name = split_key(key)
        if result.node is None:
            await self._unschedulable(pod, result.message or "0/0 nodes are available.")
            return Result(requeue_after=RETRY_UNSCHEDULABLE)
        try:
            await self.client.request("POST", PODS.path(ns, name, "binding"), body={
                "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns},
                "target": {"apiVersion": "v1", "kind": "Node", "name": result.node}})
        except (Conflict, NotFound):
            return Result()  # bound elsewhere or gone meanwhile
        self._assumed[key] = (result.node, pod)
        await self._event(pod, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {result.node}")
        return Result()

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
