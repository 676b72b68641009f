"""The scheduler as a controller: watch pods and nodes, place pending pods, bind them.

Pods for ``default-scheduler`` without ``spec.nodeName`` are queued; each is placed
with the framework over the informers' view plus pods this scheduler has bound but not
yet seen come back (the "assumed" pods, so two quick pods do not both take the last
slot). Binding goes through ``pods/binding``, in the background and with a bounded
number in flight (kube's binding cycle), so the next pod is placed while earlier
bindings travel. A pod that fits nowhere gets ``PodScheduled=False`` (reason
``Unschedulable``) and a ``FailedScheduling`` Event, and is retried when nodes or pods
change.

The scheduler cache is incremental: the informer handlers keep one :class:`NodeInfo`
per node up to date, and the name-ordered node list the framework walks is rebuilt only
when nodes come or go, not for every pod. Bursts of changes that free capacity (a
relist of 5,000 nodes, say) requeue the pending pods once, not once per event.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from atoll.api.errors import Conflict, NotFound
from atoll.client import Client, Resource
from atoll.cluster.scheduler.framework import Framework, NodeInfo
from atoll.cluster.scheduler.plugins import default_framework
from atoll.cluster.scheduler.recording import EventSink
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.events import EventRecorder
from atoll.machinery.informing import Informer, key_of, split_key

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = Resource("v1", "pods", True, "Pod")
NODES = Resource("v1", "nodes", False, "Node")
EVENTS = Resource("v1", "events", True, "Event")
SCHEDULER_NAME = "default-scheduler"
RETRY_UNSCHEDULABLE = 30.0
BINDING_SAMPLES = 20_000
BIND_CONCURRENCY = 64
"""Bindings in flight at once: enough for the API server to batch its writes, few enough for the pool."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_pending(pod: Obj) -> bool:
    spec, md = pod.get("spec") or {}, pod.get("metadata") or {}
    return (not spec.get("nodeName") and not md.get("deletionTimestamp")
            and (spec.get("schedulerName") or SCHEDULER_NAME) == SCHEDULER_NAME
            and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))


@dataclass
class SchedulerMetrics:
    """What kube-scheduler exports as metrics (attempts by result, algorithm and binding time).

    Kept as plain counters so a benchmark or a test can read where the time goes.
    """

    attempts: int = 0
    scheduled: int = 0
    unschedulable: int = 0
    bind_errors: int = 0
    algorithm_seconds: float = 0.0
    """Time in the framework (filter and score), summed over attempts."""
    binding_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=BINDING_SAMPLES))
    """The latest successful ``pods/binding`` requests, from sending to the answer."""
    bound: int = 0
    last_bound_at: float = 0.0
    """``time.perf_counter()`` when the latest binding succeeded."""
    max_in_flight: int = 0


class SchedulerController(Controller):
    NAME: ClassVar[str] = "default-scheduler"
    workers = 1  # one decision at a time keeps the assumed-pod accounting simple and exact

    def __init__(self, client: Client, *, framework: Framework | None = None,
                 rng: random.Random | None = None, bind_concurrency: int = BIND_CONCURRENCY) -> None:
        super().__init__()
        self.client = client
        self.framework = framework or default_framework(rng)
        self.pods = Informer(client, PODS)
        self.nodes = Informer(client, NODES)
        self.events = EventRecorder(client, SCHEDULER_NAME)
        self.event_sink = EventSink(self.events)
        """``Scheduled`` events go through this buffer, so bindings never wait for them."""
        self.metrics = SchedulerMetrics()
        self._assumed: dict[str, tuple[str, Obj]] = {}
        self._infos: dict[str, NodeInfo] = {}
        """The scheduler cache: node name → node and the pods counted on it (bound or assumed)."""
        self._snapshot: list[NodeInfo] | None = None
        """The nodes the informer knows, ordered by name; None when nodes came or went since."""
        self._placed: dict[str, str] = {}
        """pod key → the node its requests are counted on."""
        self._requeue_pending = False
        self._binding: set[asyncio.Task[None]] = set()
        self._bind_slots = asyncio.Semaphore(bind_concurrency)
        self._in_flight = 0
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)
        self.informers += [self.pods, self.nodes]

    async def run(self, stop: asyncio.Event) -> None:
        events_stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.event_sink.run(events_stop), name=f"{self.NAME}-events")
            try:
                await super().run(stop)
            finally:
                # Bindings still in flight finish (or fail) before the scheduler is gone; then
                # their events are flushed.
                if self._binding:
                    await asyncio.wait(set(self._binding), timeout=10)
                for task in set(self._binding):
                    task.cancel()
                events_stop.set()

    # -- event handlers: only enqueue ------------------------------------------------------
    def _pending_keys(self) -> list[str]:
        return [key_of(p) for p in self.pods.lister.list() if is_pending(p)]

    def _requeue_all_pending(self) -> None:
        """Queue every pending pod, once per burst of events (capacity may have appeared).

        A relist delivers thousands of node events in one go; walking all pods for each
        would be quadratic, and the queue would drop the duplicates anyway.
        """
        if self._requeue_pending:
            return
        self._requeue_pending = True
        try:
            asyncio.get_running_loop().call_soon(self._flush_requeue)
        except RuntimeError:  # no loop (a handler driven synchronously): do it now
            self._flush_requeue()

    def _flush_requeue(self) -> None:
        self._requeue_pending = False
        for k in self._pending_keys():
            self.queue.add(k)

    def _count(self, key: str, pod: Obj, node: str | None) -> None:
        """Make ``pod``'s requests count on ``node`` (None: nowhere) in the cache."""
        previous = self._placed.get(key)
        if previous is not None and previous != node:
            del self._placed[key]
            info = self._infos.get(previous)
            if info is not None:
                ns, name = split_key(key)
                info.remove_pod(ns, name)
        if node is not None:
            self._placed[key] = node
            info = self._infos.get(node)
            if info is None:
                info = self._infos[node] = NodeInfo({"metadata": {"name": node}})
                self._snapshot = None
            info.add_pod(pod)  # replaces the pod's earlier version on the same node

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "DELETED" and old is not None:
            key = key_of(old)
            self._assumed.pop(key, None)
            self._count(key, old, None)
            if (old.get("spec") or {}).get("nodeName"):
                self._requeue_all_pending()  # capacity was freed
            return
        if new is None:
            return
        key = key_of(new)
        node = (new.get("spec") or {}).get("nodeName")
        if node:
            terminal = (new.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            self._assumed.pop(key, None)
            self._count(key, new, None if terminal else node)
            if terminal and old is not None and (old.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                self._requeue_all_pending()
        elif is_pending(new) and key not in self._assumed:
            self.queue.add(key)

    def _on_node(self, event: str, old: Obj | None, new: Obj | None) -> None:
        if event == "DELETED" and old is not None:
            self._infos.pop(old["metadata"]["name"], None)
            self._snapshot = None
        elif new is not None:
            name = new["metadata"]["name"]
            info = self._infos.get(name)
            if info is None:
                self._infos[name] = NodeInfo(new)
            else:
                info.set_node(new)
        if event != "MODIFIED":
            self._snapshot = None
            self._requeue_all_pending()

    # -- reconcile ---------------------------------------------------------------------------
    def node_infos(self) -> list[NodeInfo]:
        """Nodes the informer knows, by name, with their counted pods (kept up to date by the handlers).

        The list is cached between node arrivals and departures; the NodeInfos in it are
        the live cache entries, so pod changes show without rebuilding it.
        """
        if self._snapshot is None:
            known = self.nodes.lister
            self._snapshot = [info for name, info in sorted(self._infos.items()) if known.get(name) is not None]
        return self._snapshot

    async def reconcile(self, key: str) -> Result:
        pod = self.pods.lister.get(key)
        if pod is None or not is_pending(pod) or key in self._assumed:
            return Result()
        metrics = self.metrics
        metrics.attempts += 1
        started = time.perf_counter()
        result = self.framework.schedule(pod, self.node_infos())
        metrics.algorithm_seconds += time.perf_counter() - started
        if result.node is None:
            metrics.unschedulable += 1
            await self._unschedulable(pod, result.message or "0/0 nodes are available.")
            return Result(requeue_after=RETRY_UNSCHEDULABLE)
        metrics.scheduled += 1
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
        async with self._bind_slots:
            self._in_flight += 1
            self.metrics.max_in_flight = max(self.metrics.max_in_flight, self._in_flight)
            started = time.perf_counter()
            try:
                await self.client.request("POST", PODS.path(ns, name, "binding"), body={
                    "apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns},
                    "target": {"apiVersion": "v1", "kind": "Node", "name": node}})
            except (Conflict, NotFound):
                self.metrics.bind_errors += 1
                self._forget_assumed(key)
                return  # bound elsewhere or gone meanwhile
            except Exception as exc:
                self.metrics.bind_errors += 1
                logger.info("binding %s to %s failed (%s); rescheduling", key, node, exc)
                self._forget_assumed(key)
                self.queue.add_rate_limited(key)
                return
            finally:
                self._in_flight -= 1
            done = time.perf_counter()
            self.metrics.binding_seconds.append(done - started)
            self.metrics.bound += 1
            self.metrics.last_bound_at = done
        self.event_sink.emit(self._involved(pod), "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {node}")

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
        # Rare and explaining a visible condition: written at once, not buffered.
        await self.events.record(self._involved(pod), "Warning", "FailedScheduling", message)

    @staticmethod
    def _involved(pod: Obj) -> Obj:
        """The pod with its kind: items of a list carry none, and the Event's involvedObject needs it."""
        return {**pod, "kind": "Pod", "apiVersion": "v1"}
