"""Simulated nodes, KWOK-style: real Node and Lease objects, pods that run without processes.

One :class:`SimulatedNodes` drives many nodes from one process, so a single machine can
hold thousands of nodes and tens of thousands of pods. Pods bound to its nodes move
through stages with configurable delays (Pending → Running with an IP → Ready; pods
of Jobs complete), and pods being deleted are confirmed gone, as a kubelet does.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
from dataclasses import dataclass, field
from typing import Any

from atoll.api.errors import AlreadyExists, Conflict, NotFound
from atoll.client import Client, Resource
from atoll.machinery.informing import Informer, key_of

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
NODES = Resource("v1", "nodes", False, "Node")
PODS = Resource("v1", "pods", True, "Pod")
LEASES = Resource("coordination.k8s.io/v1", "leases", True, "Lease")
KUBELET_VERSION = "v1.32.0-atoll"


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class NodeSpec:
    name: str
    cpu: str = "4"
    memory: str = "16Gi"
    pods: int = 110
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Obj, ...] = ()
    address: str = "127.0.0.1"


@dataclass(frozen=True)
class Stages:
    """Delays (seconds) of the simulated pod lifecycle."""

    start: float = 0.0
    """From binding to Running with an IP and Ready."""
    complete: float = 0.0
    """For pods with restartPolicy Never/OnFailure (Jobs): from Running to Succeeded."""


def node_object(spec: NodeSpec) -> Obj:
    capacity = {"cpu": spec.cpu, "memory": spec.memory, "pods": str(spec.pods)}
    labels = {"kubernetes.io/hostname": spec.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
              "type": "simulated", **spec.labels}
    obj: Obj = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": spec.name, "labels": labels,
                             "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
                "spec": {"taints": list(spec.taints)} if spec.taints else {}}
    obj["status"] = node_status(spec, capacity)
    return obj


def node_status(spec: NodeSpec, capacity: dict[str, str] | None = None) -> Obj:
    capacity = capacity or {"cpu": spec.cpu, "memory": spec.memory, "pods": str(spec.pods)}
    t = now()
    ready = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
             "lastHeartbeatTime": t, "lastTransitionTime": t}
    pressure = [{"type": c, "status": "False", "reason": f"KubeletHas{r}", "message": m, "lastHeartbeatTime": t,
                 "lastTransitionTime": t} for c, r, m in (
        ("MemoryPressure", "SufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "NoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "SufficientPID", "kubelet has sufficient PID available"))]
    return {"capacity": capacity, "allocatable": dict(capacity), "conditions": [*pressure, ready],
            "addresses": [{"type": "InternalIP", "address": spec.address}, {"type": "Hostname", "address": spec.name}],
            "nodeInfo": {"kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": KUBELET_VERSION,
                         "operatingSystem": "linux", "architecture": "amd64", "containerRuntimeVersion": "simulated://1",
                         "osImage": "Atoll simulated node", "kernelVersion": "", "machineID": spec.name,
                         "systemUUID": spec.name, "bootID": spec.name},
            "phase": "Running"}


class PodIPs:
    """Hands out pod IPs from a loopback range, one per pod, reused after deletion."""

    def __init__(self, cidr: str = "127.16.0.0/16") -> None:
        self._net = ipaddress.ip_network(cidr)
        self._hosts = self._net.hosts()
        self._free: list[str] = []
        self._by_pod: dict[str, str] = {}

    def allocate(self, uid: str) -> str:
        if uid in self._by_pod:
            return self._by_pod[uid]
        ip = self._free.pop() if self._free else str(next(self._hosts))
        self._by_pod[uid] = ip
        return ip

    def release(self, uid: str) -> None:
        ip = self._by_pod.pop(uid, None)
        if ip is not None:
            self._free.append(ip)


class SimulatedNodes:
    def __init__(self, client: Client, nodes: list[NodeSpec], *, stages: Stages | None = None,
                 pod_cidr: str = "127.16.0.0/16", lease_seconds: int = 40, renew_interval: float = 10.0) -> None:
        self.client = client
        self.specs = {n.name: n for n in nodes}
        self.stages = stages or Stages()
        self.ips = PodIPs(pod_cidr)
        self.lease_seconds = lease_seconds
        self.renew_interval = renew_interval
        self.pods = Informer(client, PODS)
        self.pods.add_handler(self._on_pod)
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._handled: dict[str, str] = {}
        """pod key → the last stage applied ("running", "succeeded")."""
        self._complete_at: dict[str, float] = {}
        """pod key → when (loop time) a run-to-completion pod succeeds."""

    async def register(self) -> None:
        sem = asyncio.Semaphore(32)

        async def one(spec: NodeSpec) -> None:
            async with sem:
                obj = node_object(spec)
                try:
                    created = await self.client.create(NODES, obj)
                except AlreadyExists:
                    created = await self.client.get(NODES, spec.name)
                created["status"] = obj["status"]
                await self.client.replace_status(NODES, created)

        await asyncio.gather(*(one(s) for s in self.specs.values()))

    async def renew_leases(self) -> None:
        sem = asyncio.Semaphore(32)

        async def one(name: str) -> None:
            async with sem:
                lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                         "metadata": {"name": name, "namespace": "kube-node-lease"},
                         "spec": {"holderIdentity": name, "leaseDurationSeconds": self.lease_seconds,
                                  "renewTime": micro_now()}}
                await self.client.apply(LEASES, lease, force=True, field_manager="atoll-kubelet")

        await asyncio.gather(*(one(n) for n in self.specs))

    def _on_pod(self, event: str, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        if obj is None or (obj.get("spec") or {}).get("nodeName") not in self.specs:
            return
        if event == "DELETED":
            self.ips.release(obj["metadata"].get("uid", ""))
            self._handled.pop(key_of(obj), None)
            self._complete_at.pop(key_of(obj), None)
            return
        self._queue.put_nowait(key_of(obj))

    async def _sync_pod(self, key: str) -> None:
        pod = self.pods.lister.get(key)
        if pod is None:
            return
        md, spec = pod["metadata"], pod.get("spec") or {}
        ns, name = md.get("namespace"), md["name"]
        if md.get("deletionTimestamp"):
            # The containers "stop" at once: confirm the deletion, as a kubelet does.
            with contextlib.suppress(NotFound, Conflict):
                await self.client.delete(PODS, name, ns, grace_period_seconds=0, uid=md.get("uid"))
            return
        stage = self._handled.get(key)
        phase = (pod.get("status") or {}).get("phase")
        if stage is None and phase not in ("Running", "Succeeded", "Failed"):
            if self.stages.start:
                await asyncio.sleep(self.stages.start)
            self._handled[key] = "running"
            await self._set_status(pod, "Running")
            if spec.get("restartPolicy") in ("Never", "OnFailure"):
                loop = asyncio.get_running_loop()
                self._complete_at[key] = loop.time() + self.stages.complete
                loop.call_later(self.stages.complete, self._queue.put_nowait, key)
        elif stage == "running" and spec.get("restartPolicy") in ("Never", "OnFailure") and phase == "Running" \
                and asyncio.get_running_loop().time() >= self._complete_at.get(key, 0.0):
            # Only the timer completes a pod: other events (our own status write) come earlier.
            self._complete_at.pop(key, None)
            self._handled[key] = "succeeded"
            await self._set_status(pod, "Succeeded")

    async def _set_status(self, pod: Obj, phase: str) -> None:
        md = pod["metadata"]
        t = now()
        ip = self.ips.allocate(md.get("uid", ""))
        running = phase == "Running"
        containers = []
        for c in (pod.get("spec") or {}).get("containers") or []:
            state = ({"running": {"startedAt": t}} if running else
                     {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": t, "finishedAt": t}})
            containers.append({"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": running,
                               "started": running, "restartCount": 0, "state": state,
                               "containerID": f"simulated://{md.get('uid', '')}-{c['name']}"})
        ready = "True" if running else "False"
        status = {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}],
                  "hostIP": self.specs[(pod.get("spec") or {})["nodeName"]].address, "startTime": t,
                  "qosClass": "BestEffort", "containerStatuses": containers,
                  "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
                                 {"type": "Initialized", "status": "True", "lastTransitionTime": t},
                                 {"type": "ContainersReady", "status": ready, "lastTransitionTime": t},
                                 {"type": "Ready", "status": ready, "lastTransitionTime": t}]}
        with contextlib.suppress(NotFound):
            await self.client.patch(PODS, md["name"], {"status": status}, md.get("namespace"), subresource="status")

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            try:
                await self._sync_pod(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.info("simulated kubelet: pod %s: %s; retrying", key, exc)
                asyncio.get_running_loop().call_later(0.5, self._queue.put_nowait, key)

    async def run(self, stop: asyncio.Event, *, workers: int = 8) -> None:
        await self.register()
        tasks = [asyncio.create_task(self.pods.run(stop), name="simulated-kubelet-pods")]
        tasks += [asyncio.create_task(self._worker(), name="simulated-kubelet-worker") for _ in range(workers)]
        try:
            while not stop.is_set():
                try:
                    await self.renew_leases()
                except Exception as exc:
                    logger.warning("simulated kubelet: lease renewal failed: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.renew_interval)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
