"""Pod garbage collector: pods that no kubelet will ever finish off.

kube-controller-manager's PodGC (pkg/controller/podgc), run every ``interval`` seconds:

* **orphaned** pods, bound to a node that no longer exists (after the node has been
  missing for a quarantine period, so a node being re-registered is not mistaken for a
  deleted one), are force-deleted, with a ``DisruptionTarget`` condition first;
* **terminating pods on out-of-service nodes** (taint ``node.kubernetes.io/out-of-service``
  with effect NoExecute, set by an operator who knows the node is gone) are force-deleted;
* **unscheduled terminating** pods (deletion requested, no node) are force-deleted;
* **terminated** pods (Succeeded/Failed) beyond ``terminated_threshold`` are deleted,
  oldest first (kube's default threshold is 12,500).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from atoll.api.errors import Conflict, NotFound
from atoll.client import Client, Resource
from atoll.machinery.informing import Informer, key_of

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = Resource("v1", "pods", True, "Pod")
NODES = Resource("v1", "nodes", False, "Node")
OUT_OF_SERVICE = "node.kubernetes.io/out-of-service"
TERMINATED_THRESHOLD = 12_500
QUARANTINE = 40.0
INTERVAL = 20.0


@dataclass(frozen=True, slots=True)
class Collection:
    pod: str
    """namespace/name"""
    reason: str
    force: bool
    message: str


def _terminated(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _out_of_service(node: Obj) -> bool:
    return any(t.get("key") == OUT_OF_SERVICE and t.get("effect") == "NoExecute"
               for t in (node.get("spec") or {}).get("taints") or [])


def plan(pods: list[Obj], nodes: dict[str, Obj], missing_since: dict[str, float], now: float, *,
         quarantine: float = QUARANTINE, terminated_threshold: int = TERMINATED_THRESHOLD) -> list[Collection]:
    """What to collect, given the pods, the existing nodes and since when each absent node has been missing."""
    out: list[Collection] = []
    chosen: set[str] = set()

    def take(pod: Obj, reason: str, force: bool, message: str) -> None:
        key = key_of(pod)
        if key not in chosen:
            chosen.add(key)
            out.append(Collection(key, reason, force, message))

    terminated = sorted((p for p in pods if _terminated(p) and not p["metadata"].get("deletionTimestamp")),
                        key=lambda p: str(p["metadata"].get("creationTimestamp") or ""))
    for pod in terminated[: max(0, len(terminated) - terminated_threshold)]:
        take(pod, "TerminatedPodsOverThreshold", False, "PodGC: too many terminated pods")
    for pod in pods:
        md, node = pod["metadata"], (pod.get("spec") or {}).get("nodeName")
        if node:
            if node not in nodes:
                since = missing_since.get(node)
                if since is not None and now - since >= quarantine:
                    take(pod, "DeletionByPodGC", True, f"PodGC: node {node} no longer exists")
            elif md.get("deletionTimestamp") and _out_of_service(nodes[node]):
                take(pod, "DeletionByPodGC", True, f"PodGC: node {node} is out of service")
        elif md.get("deletionTimestamp"):
            take(pod, "DeletionByPodGC", True, "PodGC: unscheduled pod being deleted")
    return out


class PodGCController:
    NAME: ClassVar[str] = "pod-garbage-collector"

    def __init__(self, client: Client, *, interval: float = INTERVAL, quarantine: float = QUARANTINE,
                 terminated_threshold: int = TERMINATED_THRESHOLD,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.interval = interval
        self.quarantine = quarantine
        self.terminated_threshold = terminated_threshold
        self._clock = clock
        self.pods = Informer(client, PODS)
        self.nodes = Informer(client, NODES)
        self._missing_since: dict[str, float] = {}

    def _track_missing(self, pods: list[Obj], nodes: dict[str, Obj]) -> None:
        now = self._clock()
        referenced = {str(n) for p in pods if (n := (p.get("spec") or {}).get("nodeName"))}
        self._missing_since = {n: self._missing_since.get(n, now) for n in referenced if n not in nodes}

    async def collect_once(self) -> list[Collection]:
        pods = self.pods.lister.list()
        nodes = {n["metadata"]["name"]: n for n in self.nodes.lister.list()}
        self._track_missing(pods, nodes)
        done = []
        for c in plan(pods, nodes, self._missing_since, self._clock(), quarantine=self.quarantine,
                      terminated_threshold=self.terminated_threshold):
            pod = self.pods.lister.get(c.pod)
            if pod is None:
                continue
            md = pod["metadata"]
            try:
                if c.force:
                    condition = {"type": "DisruptionTarget", "status": "True", "reason": c.reason,
                                 "message": c.message}
                    with contextlib.suppress(NotFound, Conflict):
                        await self.client.patch(PODS, md["name"], {"status": {"conditions": [condition]}},
                                                md.get("namespace"), subresource="status",
                                                patch_type="strategic")
                await self.client.delete(PODS, md["name"], md.get("namespace"), uid=md.get("uid"),
                                         grace_period_seconds=0 if c.force else None)
                logger.info("podgc: deleted %s (%s)", c.pod, c.message)
                done.append(c)
            except (NotFound, Conflict):
                continue
        return done

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(inf.run(stop), name=f"podgc-{inf.resource.plural}")
                 for inf in (self.pods, self.nodes)]
        try:
            synced = asyncio.gather(self.pods.synced.wait(), self.nodes.synced.wait())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait([synced, stopped], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
            synced.cancel()
            stopped.cancel()
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)
                if stop.is_set():
                    break
                try:
                    await self.collect_once()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    logger.warning("podgc: pass failed: %s", exc)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
