"""Cluster status controller: probe each member, fill ``Cluster.status``, taint clusters that fail.

Karmada's ``pkg/controllers/status/cluster_status_controller.go`` with its condition cache,
plus the taints of ``pkg/controllers/cluster``:

* every ``interval`` seconds each member's ``/readyz`` is probed (``/healthz`` when
  ``/readyz`` is not served); no answer is ``Ready=False/ClusterNotReachable``, an answer
  other than 200 ``Ready=False/ClusterNotReady``, 200 ``Ready=True/ClusterReady``;
* a change of the observed condition is published only once it has lasted the threshold
  (``failure_threshold`` towards not-ready, ``success_threshold`` back to ready), so one
  lost probe does not flap the cluster — the defaults are well below Karmada's 30 s/30 s
  so that failover in a demo takes seconds;
* while Ready, ``kubernetesVersion``, ``apiEnablements`` (discovery, with the
  ``CompleteAPIEnablements`` condition; each group version's resources are listed again
  when the served group versions change or every ``discovery_interval``), ``nodeSummary`` and ``resourceSummary``
  (allocatable from nodes; allocated = requests of bound pods that are not finished;
  allocating = requests of pods not bound yet) are collected; nodes and pods come from
  informers on the member, so a big member costs one watch, not a list per probe;
* a deleted Cluster (finalizer ``karmada.io/cluster-controller``) has its Works deleted,
  then its execution namespace, before the finalizer is removed (Karmada's cluster
  controller), so ``kubectl delete cluster`` unjoins as ``unjoin`` does;
* ``Ready=False`` taints the Cluster ``cluster.karmada.io/not-ready`` (or
  ``cluster.karmada.io/unreachable`` when it does not answer) with ``NoSchedule`` — the
  scheduler stops placing there — and ``NoExecute`` (Karmada's taint manager evicts
  replicas from a cluster tainted so, unless tolerated); ``Ready=True`` removes them.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import aiohttp

from atoll.api.errors import APIError, Conflict, NotFound
from atoll.api.meta import parse_quantity
from atoll.client import Client, Resource
from atoll.federation import kinds
from atoll.federation.clusters.clients import MemberClients, MemberConfigError, MemberInformers
from atoll.federation.clusters.registry import CLUSTER_FINALIZER, NAMESPACES
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.events import EventRecorder
from atoll.machinery.informing import Handler, Informer

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
NODES = Resource("v1", "nodes", False, "Node")
PODS = Resource("v1", "pods", True, "Pod")

CLUSTER_READY = "ClusterReady"
CLUSTER_HEALTHY = "cluster is healthy and ready to accept workloads"
CLUSTER_NOT_READY = "ClusterNotReady"
CLUSTER_UNHEALTHY = "cluster is reachable but health endpoint responded without ok"
CLUSTER_NOT_REACHABLE = "ClusterNotReachable"
CLUSTER_NOT_REACHABLE_MSG = "cluster is not reachable"
STATUS_COLLECTION_FAILED = "StatusCollectionFailed"

TAINT_NOT_READY = "cluster.karmada.io/not-ready"
TAINT_UNREACHABLE = "cluster.karmada.io/unreachable"
NO_SCHEDULE, NO_EXECUTE = "NoSchedule", "NoExecute"

BINARY_RESOURCES = ("memory", "ephemeral-storage", "storage")


def now_rfc3339(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- conditions ------------------------------------------------------------------------------

def condition(type_: str, status: str, reason: str, message: str) -> Obj:
    return {"type": type_, "status": status, "reason": reason, "message": message}


def ready_condition(online: bool, healthy: bool) -> Obj:
    """Karmada's ``generateReadyCondition``."""
    if not online:
        return condition(kinds.CLUSTER_READY, "False", CLUSTER_NOT_REACHABLE, CLUSTER_NOT_REACHABLE_MSG)
    if not healthy:
        return condition(kinds.CLUSTER_READY, "False", CLUSTER_NOT_READY, CLUSTER_UNHEALTHY)
    return condition(kinds.CLUSTER_READY, "True", CLUSTER_READY, CLUSTER_HEALTHY)


def find_condition(conditions: Iterable[Obj] | None, type_: str) -> Obj | None:
    return next((c for c in conditions or () if c.get("type") == type_), None)


def set_condition(conditions: list[Obj] | None, new: Obj, now: str) -> list[Obj]:
    """``meta.SetStatusCondition``: replace by type; ``lastTransitionTime`` moves only with ``status``."""
    out = [dict(c) for c in conditions or []]
    for i, c in enumerate(out):
        if c.get("type") == new["type"]:
            merged = {**c, **new}
            merged["lastTransitionTime"] = (c.get("lastTransitionTime") or now) if c.get("status") == new[
                "status"] else now
            out[i] = merged
            return out
    out.append({**new, "lastTransitionTime": now})
    return out


@dataclass
class _Observed:
    status: str
    since: float


class ConditionCache:
    """Karmada's ``clusterConditionStore``: hold the published Ready status until a change has lasted.

    The first observation of a cluster is published at once; afterwards a flip between
    ready and not ready is published only after ``success_threshold`` (towards ready) or
    ``failure_threshold`` (towards not ready) seconds of seeing it.
    """

    def __init__(self, *, success_threshold: float, failure_threshold: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.success_threshold = success_threshold
        self.failure_threshold = failure_threshold
        self.clock = clock
        self._seen: dict[str, _Observed] = {}

    def adjust(self, name: str, current: Obj | None, observed: Obj) -> Obj:
        """The Ready condition to publish, given the published one and the one just observed."""
        now = self.clock()
        saved = self._seen.get(name)
        if saved is None:
            self._seen[name] = _Observed(observed["status"], now)
            return observed
        if current is None:
            return observed
        if saved.status != observed["status"]:
            saved = self._seen[name] = _Observed(observed["status"], now)
        threshold = self.success_threshold if observed["status"] == "True" else self.failure_threshold
        flipping = (observed["status"] == "True") != (current.get("status") == "True")
        if flipping and now < saved.since + threshold:
            return {k: current[k] for k in ("type", "status", "reason", "message") if k in current}
        return observed

    def forget(self, name: str) -> None:
        self._seen.pop(name, None)


# -- taints ------------------------------------------------------------------------------------

def desired_taints(current: list[Obj] | None, ready: Obj | None, now: str, *, no_execute: bool = True) -> list[Obj]:
    """The Cluster's taints after its Ready condition: not-ready/unreachable added or removed.

    Other taints (a user's) are kept in place; a kept taint keeps its ``timeAdded``.
    """
    ours = {TAINT_NOT_READY, TAINT_UNREACHABLE}
    taints = [dict(t) for t in current or []]
    keep = [t for t in taints if t.get("key") not in ours]
    if ready is not None and ready.get("status") == "True":
        return keep
    key = TAINT_UNREACHABLE if ready is not None and ready.get("reason") == CLUSTER_NOT_REACHABLE else TAINT_NOT_READY
    effects = (NO_SCHEDULE, NO_EXECUTE) if no_execute else (NO_SCHEDULE,)
    out = list(keep)
    for effect in effects:
        existing = next((t for t in taints if t.get("key") == key and t.get("effect") == effect), None)
        out.append(existing if existing is not None else {"key": key, "effect": effect, "timeAdded": now})
    return out


def taints_message(taints: list[Obj]) -> str:
    return ", ".join(f"{t.get('key')}:{t.get('effect')}" for t in taints) or "none"


# -- summaries ------------------------------------------------------------------------------------

def node_ready(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def node_summary(nodes: Iterable[Obj]) -> Obj:
    nodes = list(nodes)
    return {"totalNum": len(nodes), "readyNum": sum(1 for n in nodes if node_ready(n))}


def _q(value: Any) -> Fraction:
    if isinstance(value, Fraction):
        return value
    try:
        return parse_quantity(value)
    except ValueError:
        return Fraction(0)


def _add(total: dict[str, Fraction], requests: Any) -> None:
    for name, value in (requests or {}).items():
        total[name] = total.get(name, Fraction(0)) + _q(value)


def pod_requests(pod: Obj) -> dict[str, Fraction]:
    """A pod's effective requests: sum of containers, at least the largest init container, plus overhead."""
    spec = pod.get("spec") or {}
    total: dict[str, Fraction] = {}
    for c in spec.get("containers") or []:
        _add(total, (c.get("resources") or {}).get("requests"))
    for c in spec.get("initContainers") or []:
        for name, value in ((c.get("resources") or {}).get("requests") or {}).items():
            total[name] = max(total.get(name, Fraction(0)), _q(value))
    _add(total, spec.get("overhead"))
    return total


def format_quantity(name: str, value: Fraction) -> str:
    """A quantity in kube's canonical form (``1500m``, ``2``, ``16Gi``, ``1k``)."""
    binary = name in BINARY_RESOURCES or name.startswith("hugepages-")
    if value.denominator != 1:
        milli = value * 1000
        if milli.denominator == 1:
            return f"{milli.numerator}m"
        return f"{int(-(-value.numerator * 1000 // value.denominator))}m"  # rounded up, as kube does
    n = value.numerator
    if n == 0:
        return "0"
    if binary and abs(n) >= 1024:
        for suffix, factor in (("Ei", 2**60), ("Pi", 2**50), ("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20),
                               ("Ki", 2**10)):
            if n % factor == 0:
                return f"{n // factor}{suffix}"
        return str(n)
    for suffix, factor in (("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if n % factor == 0:
            return f"{n // factor}{suffix}"
    return str(n)


def _resource_list(total: dict[str, Fraction]) -> Obj | None:
    out = {k: format_quantity(k, v) for k, v in sorted(total.items()) if v > 0}
    return out or None


def resource_summary(nodes: Iterable[Obj], pods: Iterable[Obj]) -> Obj:
    """Karmada's ``getResourceSummary``: allocatable, allocating (unbound pods), allocated (bound, not finished)."""
    allocatable: dict[str, Fraction] = {}
    for node in nodes:
        _add(allocatable, (node.get("status") or {}).get("allocatable"))
    allocating: dict[str, Fraction] = {}
    allocated: dict[str, Fraction] = {}
    pending = bound = 0
    for pod in pods:
        spec, phase = pod.get("spec") or {}, (pod.get("status") or {}).get("phase")
        if not spec.get("nodeName"):
            _add(allocating, pod_requests(pod))
            pending += 1
        elif phase not in ("Succeeded", "Failed"):
            _add(allocated, pod_requests(pod))
            bound += 1
    if pending:
        allocating["pods"] = allocating.get("pods", Fraction(0)) + pending
    if bound:
        allocated["pods"] = allocated.get("pods", Fraction(0)) + bound
    summary: Obj = {}
    for key, total in (("allocatable", allocatable), ("allocating", allocating), ("allocated", allocated)):
        listed = _resource_list(total)
        if listed is not None:
            summary[key] = listed
    return summary


def api_enablements(documents: Iterable[tuple[str, list[Obj]]]) -> list[Obj]:
    """``(groupVersion, discovery resources)`` pairs as ``status.apiEnablements`` (no subresources, sorted)."""
    out = []
    for group_version, resources in documents:
        listed = sorted(({"name": r["name"], "kind": r.get("kind", "")} for r in resources
                         if r.get("name") and "/" not in r["name"]), key=lambda r: r["name"])
        out.append({"groupVersion": group_version, "resources": listed})
    return sorted(out, key=lambda e: e["groupVersion"])


# -- probing ------------------------------------------------------------------------------------

async def _health_status(client: Client, path: str, timeout: float) -> int:
    extra: dict[str, Any] = {"server_hostname": client.config.tls_server_name} if client.config.tls_server_name else {}
    async with client.session.get(path, timeout=aiohttp.ClientTimeout(total=timeout), **extra) as resp:
        await resp.read()
        return resp.status


async def probe(client: Client, *, timeout: float = 5.0) -> tuple[bool, bool]:
    """(online, healthy): ``/readyz``, or ``/healthz`` on a member that does not serve ``/readyz``."""
    try:
        code = await _health_status(client, "/readyz", timeout)
        if code == 404:
            code = await _health_status(client, "/healthz", timeout)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        logger.debug("probe of %s failed: %s", client.server, exc)
        return False, False
    return True, code == 200


async def group_versions(client: Client) -> tuple[list[str], bool]:
    """Every group version the member serves (``/api`` and ``/apis``), and whether both answered."""
    versions: list[str] = []
    complete = True
    try:
        core = await client.request("GET", "/api")
        versions += [str(v) for v in (core or {}).get("versions") or []]
    except APIError:
        complete = False
    try:
        groups = await client.request("GET", "/apis")
        for group in (groups or {}).get("groups") or []:
            versions += [str(v["groupVersion"]) for v in group.get("versions") or [] if v.get("groupVersion")]
    except APIError:
        complete = False
    return versions, complete


async def discover(client: Client, versions: list[str]) -> tuple[list[Obj], bool]:
    """The member's API enablements for ``versions`` and whether every group version answered."""

    async def one(gv: str) -> tuple[str, list[Obj]] | None:
        path = f"/api/{gv}" if "/" not in gv else f"/apis/{gv}"
        try:
            doc = await client.request("GET", path)
        except APIError:
            return None
        return gv, list((doc or {}).get("resources") or [])

    results = await asyncio.gather(*(one(gv) for gv in versions))
    docs = [r for r in results if r is not None]
    return api_enablements(docs), len(docs) == len(versions)


@dataclass
class _Discovery:
    at: float
    versions: tuple[str, ...]
    enablements: list[Obj]
    complete: bool


# -- the controller --------------------------------------------------------------------------------

class ClusterStatusController(Controller):
    """Probes members and publishes ``Cluster.status`` and the not-ready/unreachable taints.

    Wiring: ``ClusterStatusController(fed_client, MemberClients(fed_client))``, then
    ``await controller.run(stop)``. The same ``MemberClients`` can serve the execution and
    work status controllers.
    """

    NAME: ClassVar[str] = "cluster-status-controller"

    def __init__(self, client: Client, members: MemberClients, *, interval: float = 2.0,
                 failure_threshold: float = 6.0, success_threshold: float = 2.0,
                 clock: Callable[[], float] = time.monotonic, probe_timeout: float = 3.0,
                 no_execute_taints: bool = True, discovery_interval: float = 30.0) -> None:
        super().__init__()
        self.client = client
        self.members = members
        self.interval = interval
        self.probe_timeout = probe_timeout
        self.no_execute_taints = no_execute_taints
        self.discovery_interval = discovery_interval
        self._discovery: dict[str, _Discovery] = {}
        self.conditions = ConditionCache(success_threshold=success_threshold, failure_threshold=failure_threshold,
                                         clock=clock)
        self.events = EventRecorder(client, self.NAME)
        self.clusters = self.watch(Informer(client, kinds.CLUSTERS), key_for=self._changed)
        self.member_informers = MemberInformers(members, self._member_handler)
        self._last_spec: dict[str, str] = {}

    def _changed(self, cluster: Obj) -> list[str]:
        # Our own status writes come back as events: only spec changes (and adds/deletes) need a
        # reconcile now, the periodic requeue takes care of the rest.
        name = str(cluster["metadata"]["name"])
        signature = repr((cluster.get("spec"), (cluster.get("metadata") or {}).get("deletionTimestamp")))
        if self._last_spec.get(name) == signature and cluster.get("status"):
            return []
        self._last_spec[name] = signature
        return [name]

    def _member_handler(self, _cluster: str, _resource: Resource) -> Handler:
        def handler(_event: str, _old: Obj | None, _new: Obj | None) -> None:
            return None  # nodes and pods are read from the cache at each probe

        return handler

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await super().run(stop)
        finally:
            await self.member_informers.close()

    async def reconcile(self, key: str) -> Result:
        cluster = self.clusters.lister.get(key)
        if cluster is None:
            self.conditions.forget(key)
            self._discovery.pop(key, None)
            self._last_spec.pop(key, None)
            await self.member_informers.stop_cluster(key)
            await self.members.remove(key)
            return Result()
        cluster = copy.deepcopy(cluster)
        status = cluster.get("status") or {}
        current = find_condition(status.get("conditions"), kinds.CLUSTER_READY)
        try:
            member = await self.members.for_cluster(cluster)
        except MemberConfigError as exc:
            observed = condition(kinds.CLUSTER_READY, "False", STATUS_COLLECTION_FAILED,
                                 f"failed to create a ClusterClient: {exc}")
            await self._publish(cluster, status, self.conditions.adjust(key, current, observed))
            if (cluster.get("metadata") or {}).get("deletionTimestamp"):
                return await self._remove(cluster)
            return Result(requeue_after=self.interval)
        online, healthy = await probe(member, timeout=self.probe_timeout)
        ready = self.conditions.adjust(key, current, ready_condition(online, healthy))
        new_status = copy.deepcopy(status)
        extra: list[Obj] = []
        requeue = self.interval
        if online and healthy and ready["status"] == "True":
            try:
                version = await member.version()
                new_status["kubernetesVersion"] = str(version.get("gitVersion") or "")
            except APIError as exc:
                logger.info("cluster %s: no version: %s", key, exc)
            enablements, complete = await self._enablements(key, member)
            if enablements:
                new_status["apiEnablements"] = enablements
            if not enablements:
                extra.append(condition(kinds.CLUSTER_COMPLETE_API_ENABLEMENTS, "False", "Empty",
                                       "collected empty APIEnablements from the cluster"))
            elif not complete:
                extra.append(condition(kinds.CLUSTER_COMPLETE_API_ENABLEMENTS, "False", "Partial",
                                       f"might collect partial APIEnablements({len(enablements)}) from the "
                                       "cluster"))
            else:
                extra.append(condition(kinds.CLUSTER_COMPLETE_API_ENABLEMENTS, "True", "Complete",
                                       "collected complete APIEnablements from the cluster"))
            nodes = self.member_informers.informer(key, member, NODES)
            pods = self.member_informers.informer(key, member, PODS)
            if nodes.synced.is_set() and pods.synced.is_set():
                new_status["nodeSummary"] = node_summary(nodes.lister.list())
                new_status["resourceSummary"] = resource_summary(nodes.lister.list(), pods.lister.list())
            else:
                requeue = min(self.interval, 0.2)  # the first summary as soon as the caches fill
        await self._publish(cluster, new_status, ready, *extra)
        if (cluster.get("metadata") or {}).get("deletionTimestamp"):
            return await self._remove(cluster)
        return Result(requeue_after=requeue)

    async def _remove(self, cluster: Obj) -> Result:
        """Karmada's cluster controller on a deleted Cluster: Works first, then the execution space, then go.

        The member keeps being probed meanwhile, so that the execution controller can still
        delete what the Works created while the member is Ready.
        """
        md = cluster["metadata"]
        name = str(md["name"])
        if CLUSTER_FINALIZER not in (md.get("finalizers") or []):
            return Result(requeue_after=self.interval)
        namespace = kinds.execution_namespace(name)
        try:
            works = (await self.client.list(kinds.WORKS, namespace)).get("items") or []
        except NotFound:
            works = []
        if works:
            if any(not (w.get("metadata") or {}).get("deletionTimestamp") for w in works):
                await self.client.delete_collection(kinds.WORKS, namespace)
            return Result(requeue_after=min(self.interval, 0.5))
        try:
            await self.client.delete(NAMESPACES, namespace)
            return Result(requeue_after=min(self.interval, 0.5))
        except NotFound:
            pass
        finalizers = [f for f in md.get("finalizers") or [] if f != CLUSTER_FINALIZER]
        try:
            await self.client.patch(kinds.CLUSTERS, name, {"metadata": {
                "finalizers": finalizers or None, "resourceVersion": md.get("resourceVersion")}})
        except NotFound:
            pass
        logger.info("cluster %s removed: its Works and execution namespace are gone", name)
        return Result()

    async def _enablements(self, name: str, member: Client) -> tuple[list[Obj], bool]:
        """API enablements, read again when the served group versions change or ``discovery_interval`` passed.

        Listing every group version's resources is a request per group version: a probe
        every two seconds asks only ``/api`` and ``/apis``.
        """
        versions, listed = await group_versions(member)
        cached = self._discovery.get(name)
        now = self.conditions.clock()
        if (cached is not None and cached.complete and listed and cached.versions == tuple(versions)
                and now - cached.at < self.discovery_interval):
            return cached.enablements, True
        enablements, complete = await discover(member, versions)
        complete = complete and listed
        self._discovery[name] = _Discovery(now, tuple(versions), enablements, complete)
        return enablements, complete

    async def _publish(self, cluster: Obj, new_status: Obj, ready: Obj, *extra: Obj) -> None:
        name = cluster["metadata"]["name"]
        old_status = cluster.get("status") or {}
        old_ready = find_condition(old_status.get("conditions"), kinds.CLUSTER_READY)
        now = now_rfc3339()
        conditions = new_status.get("conditions") or []
        for c in (*extra, ready):
            conditions = set_condition(conditions, c, now)
        new_status["conditions"] = conditions
        if new_status != old_status:
            body = copy.deepcopy(cluster)
            body["status"] = new_status
            cluster = await self.client.replace_status(kinds.CLUSTERS, body)  # a Conflict is retried
            if old_ready is None or old_ready.get("status") != ready["status"]:
                level = "Normal" if ready["status"] == "True" else "Warning"
                await self.events.record(cluster, level, ready["reason"], ready["message"])
                logger.info("cluster %s: Ready=%s (%s)", name, ready["status"], ready["reason"])
        await self._taint(cluster, ready, now)

    async def _taint(self, cluster: Obj, ready: Obj, now: str) -> None:
        if (cluster.get("metadata") or {}).get("deletionTimestamp"):
            return
        spec = cluster.get("spec") or {}
        current = list(spec.get("taints") or [])
        wanted = desired_taints(current, ready, now, no_execute=self.no_execute_taints)
        if wanted == current:
            return
        md = cluster["metadata"]
        try:
            updated = await self.client.patch(kinds.CLUSTERS, md["name"], {
                "metadata": {"resourceVersion": md.get("resourceVersion")}, "spec": {"taints": wanted or None}})
        except NotFound:
            return
        except Conflict:
            raise
        except APIError as exc:
            await self.events.record(cluster, "Warning", "TaintClusterFailed", str(exc))
            raise
        await self.events.record(updated, "Normal", "TaintClusterSucceed",
                                 f"Taint cluster succeed: {taints_message(wanted)}.")
