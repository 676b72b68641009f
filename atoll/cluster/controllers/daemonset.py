"""DaemonSet controller: one pod on every node that should run it, updated node by node.

Which nodes: kube's ``NodeShouldRunDaemonPod`` — the pod's ``nodeName`` (if set), its
nodeSelector and required node affinity, and its tolerations against the node's
NoSchedule/NoExecute taints, using the scheduler's own plugin helpers so the two never
disagree. A node with an untolerated NoSchedule taint keeps a pod it already runs; an
untolerated NoExecute taint evicts it. Daemon pods get kube's default tolerations
(not-ready and unreachable NoExecute; disk/memory/PID pressure and unschedulable
NoSchedule; network-unavailable for hostNetwork pods) and are pinned to their node with
required node affinity ``matchFields metadata.name In [node]``, so the default
scheduler binds them (as kube does since 1.12) and resources are still checked.

Per node (:func:`manage_node`): create when missing, delete failed pods (with
per-node backoff so a kubelet that keeps rejecting a pod is not hammered), keep one pod
(two while surging), delete pods from nodes that should not run them. Pods pinned to a
node that does not exist are deleted only while unbound; bound ones are left to the pod
garbage collector, as in kube. Orphans matching the selector are adopted.
Updates (:func:`rolling_update`) are kube's: with ``maxSurge: 0`` up to
``maxUnavailable`` old pods are deleted (old unavailable ones always); with ``maxSurge``
a new pod starts next to the old one, which is deleted once the new one is available.
``OnDelete`` waits for someone else to delete old pods. Revisions are ControllerRevisions
whose hash is the pods' ``controller-revision-hash`` label.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from atoll.api.errors import Conflict, NotFound
from atoll.api.meta import generate_name
from atoll.api.selectors import LabelSelector
from atoll.client import Client, Resource
from atoll.cluster.controllers.history import (
    CONTROLLER_REVISIONS,
    REVISION_LABEL,
    RevisionHistory,
    adopt,
    release,
)
from atoll.cluster.scheduler.framework import CycleContext, NodeInfo
from atoll.cluster.scheduler.plugins.node_affinity import NodeAffinity
from atoll.cluster.scheduler.plugins.taint_toleration import untolerated
from atoll.machinery.controlling import Controller, Result
from atoll.machinery.events import EventRecorder
from atoll.machinery.informing import Informer, key_of

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
PODS = Resource("v1", "pods", True, "Pod")
NODES = Resource("v1", "nodes", False, "Node")
DAEMONSETS = Resource("apps/v1", "daemonsets", True, "DaemonSet")
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
EXPECTATION_TIMEOUT = 300.0
FAILED_POD_BACKOFF = (1.0, 900.0)
"""Delay before deleting the next failed pod on the same node: 1 s doubling to 15 min (kube's)."""

DEFAULT_TOLERATIONS: tuple[Obj, ...] = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
NETWORK_UNAVAILABLE = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                       "effect": "NoSchedule"}


# -- pure decisions ----------------------------------------------------------------------------


def daemon_pod_spec(template_spec: Mapping[str, Any]) -> Obj:
    """The template's pod spec plus the tolerations every daemon pod gets.

    kube's ``AddOrUpdateDaemonPodTolerations``: a daemon must keep running on nodes that
    are not ready, unreachable, under pressure or cordoned.
    """
    spec = copy.deepcopy(dict(template_spec))
    tolerations = list(spec.get("tolerations") or [])
    wanted = [*DEFAULT_TOLERATIONS, *([NETWORK_UNAVAILABLE] if spec.get("hostNetwork") else [])]
    for tol in wanted:
        if not any(t.get("key") == tol["key"] and t.get("effect") == tol["effect"] for t in tolerations):
            tolerations.append(dict(tol))
    spec["tolerations"] = tolerations
    return spec


def pin_to_node(spec: Obj, node: str) -> Obj:
    """Require ``metadata.name In [node]`` in every node selector term.

    kube's ``ReplaceDaemonSetPodNodeNameNodeAffinity``: the scheduler binds the pod, so
    resources and ports are still checked, but only onto this node.
    """
    spec = copy.deepcopy(spec)
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    pin = {"key": "metadata.name", "operator": "In", "values": [node]}
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        terms = [{}]
    required["nodeSelectorTerms"] = [{**term, "matchFields": [pin]} for term in terms]
    return spec


def target_node(pod: Obj) -> str:
    """The node a daemon pod is for: its ``nodeName``, else the node its affinity pins it to."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    terms = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
             .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
    for term in terms:
        for req in term.get("matchFields") or []:
            values = req.get("values") or []
            if req.get("key") == "metadata.name" and req.get("operator") == "In" and len(values) == 1:
                return str(values[0])
    return ""


def should_run_on(node: Obj, pod_spec: Mapping[str, Any]) -> tuple[bool, bool]:
    """(should run a daemon pod there, should keep running one already there) — ``NodeShouldRunDaemonPod``."""
    name = str(node["metadata"]["name"])
    if pod_spec.get("nodeName") and pod_spec["nodeName"] != name:
        return False, False
    info = NodeInfo(node)
    if not NodeAffinity().filter(CycleContext({"spec": dict(pod_spec)}, [info]), info).ok:
        return False, False
    taints = (node.get("spec") or {}).get("taints") or []
    tolerations = list(pod_spec.get("tolerations") or [])
    if untolerated(taints, tolerations, ("NoExecute",)):
        return False, False
    if untolerated(taints, tolerations, ("NoSchedule",)):
        return False, True
    return True, True


@dataclass(frozen=True, slots=True)
class DaemonPod:
    """What the decisions need to know about one daemon pod."""

    name: str
    hash: str = ""
    phase: str = "Running"
    ready: bool = True
    available: bool = True
    terminating: bool = False
    created: str = ""


@dataclass(frozen=True, slots=True)
class NodeActions:
    create: bool = False
    delete: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    """Failed pods among ``delete`` (they start the node's backoff)."""


def manage_node(pods: list[DaemonPod], *, should_run: bool, should_continue: bool, surge: bool = False,
                hash_: str = "", failed_allowed: bool = True) -> NodeActions:
    """kube's ``podsShouldBeOnNode`` for one node."""
    if should_run and not pods:
        return NodeActions(create=True)
    live = [p for p in pods if not p.terminating]
    if not should_continue:
        return NodeActions(delete=tuple(p.name for p in live))
    failed = [p.name for p in live if p.phase == "Failed"] if failed_allowed else []
    succeeded = [p.name for p in live if p.phase == "Succeeded"]
    running = sorted((p for p in live if p.phase not in ("Failed", "Succeeded")), key=lambda p: (p.created, p.name))
    extra: list[str] = []
    if not surge:
        extra = [p.name for p in running[1:]]
    elif len(running) > 1:
        new = next((p for p in running if p.hash == hash_), None)
        old = next((p for p in running if p.hash != hash_ and p.ready), None)
        keep = {new.name} if new is not None else {running[0].name}
        if new is not None and not new.ready and old is not None:
            keep.add(old.name)
        extra = [p.name for p in running if p.name not in keep]
    return NodeActions(delete=tuple(failed + succeeded + extra), failed=tuple(failed))


def scaled(value: Any, total: int) -> int:
    """``intstr.GetScaledValueFromIntOrPercent(value, total, roundUp=true)``."""
    if isinstance(value, str) and value.endswith("%"):
        try:
            return math.ceil(int(value[:-1]) * total / 100)
        except ValueError:
            return 0
    return int(value or 0)


def split_pods(pods: list[DaemonPod], hash_: str) -> tuple[DaemonPod | None, DaemonPod | None, bool]:
    """(the new pod, the old pod, whether there is at most one of each) — ``findUpdatedPodsOnNode``."""
    new = [p for p in pods if not p.terminating and p.hash == hash_]
    old = [p for p in pods if not p.terminating and p.hash != hash_]
    if len(new) > 1 or len(old) > 1:
        return None, None, False
    return (new[0] if new else None), (old[0] if old else None), True


def rolling_update(nodes: Mapping[str, tuple[bool, list[DaemonPod]]], *, hash_: str, max_unavailable: int,
                   max_surge: int) -> tuple[list[str], list[str]]:
    """(old pods to delete, nodes to surge a new pod onto) — kube's ``rollingUpdate``, in node-name order.

    ``nodes`` maps each node holding daemon pods to (should run there, its pods).
    """
    if max_surge == 0:
        unavailable = 0
        replace: list[str] = []
        candidates: list[str] = []
        for name in sorted(nodes):
            new, old, ok = split_pods(nodes[name][1], hash_)
            if not ok or (new is None) == (old is None):
                unavailable += 1  # duplicates, nothing, or both: the manage step sorts it out
            elif new is not None:
                unavailable += not new.available
            elif old is not None and not old.available:
                replace.append(old.name)  # already down: replacing it costs no availability, but it counts
                unavailable += 1
            elif old is not None and unavailable < max_unavailable:
                candidates.append(old.name)
        room = max(0, min(max_unavailable - unavailable, len(candidates)))
        return replace + candidates[:room], []
    to_delete: list[str] = []
    to_create: list[str] = []
    surging = 0
    waiting: list[tuple[str, DaemonPod]] = []
    for name in sorted(nodes):
        should_run, pods = nodes[name]
        new, old, ok = split_pods(pods, hash_)
        if not ok:
            continue
        if not should_run:
            if old is not None:
                to_delete.append(old.name)
            continue
        if old is None:
            continue
        if new is None:
            waiting.append((name, old))
        elif not new.available:
            surging += 1
        else:
            to_delete.append(old.name)
    for name, old in waiting:
        if not old.available:
            to_create.append(name)
        elif surging < max_surge:
            surging += 1
            to_create.append(name)
    return to_delete, to_create


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def ready_seconds(pod: Obj, now: dt.datetime) -> float | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready" and c.get("status") == "True":
            try:
                since = dt.datetime.fromisoformat(str(c.get("lastTransitionTime") or "").replace("Z", "+00:00"))
            except ValueError:
                return 0.0
            return (now - since).total_seconds()
    return None


def controller_of(obj: Obj) -> Obj | None:
    return next((r for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if r.get("controller")), None)


# -- the controller ----------------------------------------------------------------------------


@dataclass
class Expectations:
    """Pods this controller created or deleted for one DaemonSet and has not yet seen so in its cache.

    Acting on a cache that lags behind its own writes would create a second pod on a node
    (or surge past ``maxSurge``); like kube, the controller waits until they show up.
    """

    creates: set[str] = field(default_factory=set)
    deletes: set[str] = field(default_factory=set)
    since: float = 0.0

    def created(self, name: str) -> None:
        self.creates.add(name)
        self.since = time.monotonic()

    def deleted(self, uid: str) -> None:
        self.deletes.add(uid)
        self.since = time.monotonic()

    def observe(self, pods: list[Obj]) -> bool:
        """Forget what the cache now shows; whether nothing is outstanding (or we waited too long)."""
        names = {p["metadata"]["name"] for p in pods}
        live = {p["metadata"].get("uid") for p in pods if not p["metadata"].get("deletionTimestamp")}
        self.creates -= names
        self.deletes &= live
        return (not self.creates and not self.deletes) or time.monotonic() - self.since > EXPECTATION_TIMEOUT


class DaemonSetController(Controller):
    NAME: ClassVar[str] = "daemonset-controller"

    def __init__(self, client: Client, *, failed_pod_backoff: tuple[float, float] = FAILED_POD_BACKOFF) -> None:
        super().__init__()
        self.client = client
        self.events = EventRecorder(client, self.NAME)
        self.history = RevisionHistory(client, kind="DaemonSet", hash_label=REVISION_LABEL)
        self.failed_pod_backoff = failed_pod_backoff
        self._backoff: dict[tuple[str, str], tuple[float, float]] = {}
        """(daemonset uid, node) → (current delay, monotonic time of the last failed-pod deletion)."""
        self._expected: dict[str, Expectations] = {}
        self.daemonsets = self.watch(Informer(client, DAEMONSETS))
        self.pods = self.watch(Informer(client, PODS), key_for=self._pod_keys)
        self.revisions = self.watch(Informer(client, CONTROLLER_REVISIONS), key_for=self._owner_keys)
        self.nodes = self.watch(Informer(client, NODES), key_for=self._all_keys)

    @staticmethod
    def _owner_keys(obj: Obj) -> list[str]:
        ref = controller_of(obj)
        if ref is None or ref.get("kind") != "DaemonSet":
            return []
        return [f"{(obj.get('metadata') or {}).get('namespace')}/{ref['name']}"]

    def _pod_keys(self, pod: Obj) -> list[str]:
        """The owner of a pod, or for an orphan every DaemonSet whose selector matches it."""
        if controller_of(pod) is not None:
            return self._owner_keys(pod)
        md = pod.get("metadata") or {}
        return [key_of(ds) for ds in self.daemonsets.lister.list(md.get("namespace"))
                if LabelSelector.from_dict((ds.get("spec") or {}).get("selector")).matches(md.get("labels") or {})]

    async def _claim_pods(self, ds: Obj) -> list[Obj]:
        """kube's ``ClaimPods``: adopt matching orphans, release pods whose labels stopped matching."""
        md = ds["metadata"]
        selector = LabelSelector.from_dict((ds.get("spec") or {}).get("selector"))
        owned: list[Obj] = []
        for pod in self.pods.lister.list(md.get("namespace")):
            ref, labels = controller_of(pod), (pod.get("metadata") or {}).get("labels") or {}
            if ref is None:
                if selector.matches(labels) and not pod["metadata"].get("deletionTimestamp"):
                    adopted = await adopt(self.client, ds, pod, "DaemonSet")
                    if adopted is not None:
                        owned.append(adopted)
            elif ref.get("uid") == md.get("uid"):
                if selector.matches(labels):
                    owned.append(pod)
                else:
                    await release(self.client, ds, pod)
        return owned

    def _all_keys(self, _node: Obj) -> list[str]:
        return [key_of(ds) for ds in self.daemonsets.lister.list()]

    def _owned(self, informer: Informer, ds: Obj) -> list[Obj]:
        md = ds["metadata"]
        return [o for o in informer.lister.list(md.get("namespace"))
                if (controller_of(o) or {}).get("uid") == md.get("uid")]

    def _in_backoff(self, key: tuple[str, str]) -> float:
        delay, last = self._backoff.get(key, (0.0, 0.0))
        return max(0.0, last + delay - time.monotonic()) if delay else 0.0

    def _next_backoff(self, key: tuple[str, str]) -> None:
        base, cap = self.failed_pod_backoff
        now = time.monotonic()
        delay, last = self._backoff.get(key, (0.0, 0.0))
        if delay and now - last > 2 * cap:
            delay = 0.0  # quiet long enough: start over, as kube's backoff does
        self._backoff[key] = (min(cap, delay * 2 if delay else base), now)
        if len(self._backoff) > 4096:  # kube GCs its failed-pod backoff entries the same way
            self._backoff = {k: v for k, v in self._backoff.items() if now - v[1] <= 2 * cap}

    async def reconcile(self, key: str) -> Result:
        ds = self.daemonsets.lister.get(key)
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            self._expected.pop(key, None)
            return Result()  # the garbage collector removes its pods and revisions
        md, spec = ds["metadata"], ds.get("spec") or {}
        update_rev, collisions, revisions = await self.history.sync(ds, self._owned(self.revisions, ds))
        hash_ = str((update_rev["metadata"].get("labels") or {}).get(REVISION_LABEL)
                    or update_rev["metadata"]["name"].rpartition("-")[2])
        template = (spec.get("template") or {})
        pod_spec = daemon_pod_spec(template.get("spec") or {})
        min_ready = int(spec.get("minReadySeconds") or 0)
        now = dt.datetime.now(dt.UTC)
        recheck: float | None = None

        by_node: dict[str, list[Obj]] = {}
        owned = await self._claim_pods(ds)
        for pod in owned:
            by_node.setdefault(target_node(pod), []).append(pod)
        expect = self._expected.setdefault(key, Expectations())
        settled = expect.observe(owned)
        views: dict[str, list[DaemonPod]] = {}
        for node_name, pods in by_node.items():
            views[node_name] = []
            for p in pods:
                since = ready_seconds(p, now)
                available = since is not None and since >= min_ready
                if since is not None and not available:
                    recheck = min(recheck or min_ready, max(0.1, min_ready - since))
                views[node_name].append(DaemonPod(
                    name=p["metadata"]["name"], hash=(p["metadata"].get("labels") or {}).get(REVISION_LABEL, ""),
                    phase=str((p.get("status") or {}).get("phase") or "Pending"), ready=since is not None,
                    available=available, terminating=bool(p["metadata"].get("deletionTimestamp")),
                    created=str(p["metadata"].get("creationTimestamp") or "")))
        nodes = {n["metadata"]["name"]: n for n in self.nodes.lister.list()}
        eligibility = {name: should_run_on(node, pod_spec) for name, node in nodes.items()}

        strategy = spec.get("updateStrategy") or {}
        rolling = (strategy.get("type") or "RollingUpdate") == "RollingUpdate"
        rolling_params = strategy.get("rollingUpdate") or {}
        desired = sum(1 for run, _ in eligibility.values() if run)
        max_surge = scaled(rolling_params.get("maxSurge"), desired) if rolling else 0
        max_unavailable = scaled(rolling_params.get("maxUnavailable", 1), desired)
        if max_unavailable == 0 and max_surge == 0:
            max_unavailable = 1

        create_on: list[str] = []
        delete: list[str] = []
        failed_nodes: dict[str, str] = {}
        for name in sorted(set(nodes) | set(views)):
            if name not in nodes:
                # No such node (yet, or any more): kube deletes only pods the scheduler has not bound;
                # bound ones are the pod garbage collector's.
                delete += [p["metadata"]["name"] for p in by_node.get(name, [])
                           if not (p.get("spec") or {}).get("nodeName") and not p["metadata"].get("deletionTimestamp")]
                continue
            run, keep = eligibility.get(name, (False, False))
            backoff_key = (str(md.get("uid")), name)
            wait = self._in_backoff(backoff_key)
            if wait:
                recheck = min(recheck or wait, wait)
            actions = manage_node(views.get(name, []), should_run=run, should_continue=keep, surge=max_surge > 0,
                                  hash_=hash_, failed_allowed=not wait)
            if actions.create:
                create_on.append(name)
            delete += actions.delete
            for failed in actions.failed:
                failed_nodes[failed] = name
        if rolling:
            update_view = {n: (eligibility[n][0], v) for n, v in views.items() if n in nodes}
            old, surge_on = rolling_update(update_view, hash_=hash_, max_unavailable=max_unavailable,
                                           max_surge=max_surge)
            delete += [p for p in old if p not in delete]
            create_on += [n for n in surge_on if n not in create_on]

        if not settled:
            create_on, delete = [], []  # our last writes are not in the cache yet (kube's expectations)
        # Deletions first: a surge that replaced an old pod never overlaps the next surge.
        pods_by_name = {p["metadata"]["name"]: p for pods in by_node.values() for p in pods}
        for name in delete:
            pod = pods_by_name[name]
            expect.deleted(pod["metadata"]["uid"])
            if name in failed_nodes:
                self._next_backoff((str(md.get("uid")), failed_nodes[name]))
                await self.events.record(ds, "Warning", "FailedDaemonPod",
                                         f"Found failed daemon pod {md.get('namespace')}/{name} on node "
                                         f"{failed_nodes[name]}, will try to kill it")
            await self._delete(ds, pod)
        for name in create_on:
            expect.created(await self._create(ds, pod_spec, name, hash_))

        await self._update_status(ds, nodes=eligibility, views=views, hash_=hash_, collisions=collisions)
        live = {r["metadata"]["name"] for r in revisions
                if (r["metadata"].get("labels") or {}).get(REVISION_LABEL) in
                {p.hash for pods in views.values() for p in pods} | {hash_}}
        await self.history.truncate(ds, revisions, live=live)
        return Result(requeue_after=recheck)

    async def _create(self, ds: Obj, pod_spec: Obj, node: str, hash_: str) -> str:
        md = ds["metadata"]
        template = (ds.get("spec") or {}).get("template") or {}
        pod_md = copy.deepcopy(template.get("metadata") or {})
        pod_md.pop("name", None)
        pod_md.update({"name": generate_name(f"{md['name']}-"), "namespace": md.get("namespace"),
                       "labels": {**(pod_md.get("labels") or {}), REVISION_LABEL: hash_,
                                  TEMPLATE_GENERATION_LABEL: str(md.get("generation", 1))},
                       "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": md["name"],
                                            "uid": md["uid"], "controller": True, "blockOwnerDeletion": True}]})
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": pod_md, "spec": pin_to_node(pod_spec, node)}
        created = await self.client.create(PODS, pod)
        await self.events.record(ds, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
        return str(created["metadata"]["name"])

    async def _delete(self, ds: Obj, pod: Obj) -> None:
        pmd = pod["metadata"]
        try:
            await self.client.delete(PODS, pmd["name"], pmd.get("namespace"), uid=pmd.get("uid"))
        except (NotFound, Conflict):
            return
        await self.events.record(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {pmd['name']}")

    async def _update_status(self, ds: Obj, *, nodes: Mapping[str, tuple[bool, bool]],
                             views: Mapping[str, list[DaemonPod]], hash_: str, collisions: int) -> None:
        md = ds["metadata"]
        desired = current = ready = available = updated = misscheduled = 0
        for name, (run, _) in nodes.items():  # as kube: pods on unknown nodes are in no count
            pods = sorted((p for p in views.get(name, []) if not p.terminating),
                          key=lambda p: (p.phase != "Running", p.created, p.name))
            if not run:
                misscheduled += bool(pods)
                continue
            desired += 1
            if not pods:
                continue
            current += 1
            first = pods[0]
            ready += first.ready
            available += first.ready and first.available
            updated += first.hash == hash_  # the oldest pod only (kube): a surged node counts once the old goes
        status: Obj = {"observedGeneration": md.get("generation", 1), "desiredNumberScheduled": desired,
                       "currentNumberScheduled": current, "numberReady": ready, "numberAvailable": available,
                       "numberUnavailable": desired - available, "updatedNumberScheduled": updated,
                       "numberMisscheduled": misscheduled, "collisionCount": collisions}
        old = ds.get("status") or {}
        if any(old.get(k, 0) != v for k, v in status.items()):
            try:
                await self.client.patch(DAEMONSETS, md["name"], {"status": status}, md.get("namespace"),
                                        subresource="status")
            except NotFound:
                pass
